-- Every identifier of every resolved record, with a case-insensitive match key.
with

source as (

    {{ require_external(source('identity', 'identity_identifiers'),
        'run the identity assets first (`cdp run`), they write lake/identity/') }}

),

renamed as (

    select
        cast(record_uid as varchar) as record_uid,
        cast(customer_id as varchar) as customer_id,
        {{ clean_code('identifier_type') }} as identifier_type,
        {{ clean_text('identifier_value') }} as identifier_value,
        {{ identifier_key('identifier_value') }} as identifier_key,
        cast(source as varchar) as source,
        cast(first_seen_at as timestamptz) as first_seen_at,
        cast(last_seen_at as timestamptz) as last_seen_at
    from source

),

final as (

    select *
    from renamed
    where identifier_value is not null
        and (first_seen_at is null or first_seen_at <= {{ as_of_ts() }})

)

select * from final
