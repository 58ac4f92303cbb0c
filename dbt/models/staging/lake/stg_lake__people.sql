-- People records of every people source, cleaned, as of the as-of date, latest version each.
with

source as (

    {{ lake_source('people') }}

),

renamed as (

    select
        {{ lake_source_name('_lake_file') }} as source,
        {{ clean_text('record_id') }} as record_id,
        {{ clean_email('email') }} as email,
        {{ clean_text('phone') }} as phone,
        {{ clean_text('first_name') }} as first_name,
        {{ clean_text('last_name') }} as last_name,
        {{ clean_text('full_name') }} as full_name,
        {{ clean_date('birth_date') }} as birth_date,
        {{ clean_text('street_address') }} as street_address,
        {{ clean_text('postal_code') }} as postal_code,
        {{ clean_text('city') }} as city,
        {{ clean_text('region') }} as region,
        upper({{ clean_text('country') }}) as country,
        cast(signed_up_at as timestamptz) as signed_up_at,
        cast(updated_at as timestamptz) as updated_at,
        cast(has_email_consent as boolean) as has_email_consent,
        cast(has_sms_consent as boolean) as has_sms_consent,
        cast(has_push_consent as boolean) as has_push_consent,
        cast(_ingested_at as timestamptz) as ingested_at,
        cast(_source_file as varchar) as source_file,
        cast(_source_line as bigint) as source_line,
        cast(_record_hash as varchar) as record_hash
        {{ select_identifier_columns('people') }}
    from source

),

-- A version is visible as of the as-of day when it was last changed (or signed up) by then.
visible as (

    select *
    from renamed
    where coalesce(updated_at, signed_up_at) is null
        or coalesce(updated_at, signed_up_at) <= {{ as_of_ts() }}

),

final as (

    select *
    from visible
    {{ latest_version('source, record_id') }}

)

select * from final
