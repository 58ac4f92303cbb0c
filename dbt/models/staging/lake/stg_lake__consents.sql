-- Consent changes of every consents source, cleaned, up to the as-of date, latest version each.
with

source as (

    {{ lake_source('consents') }}

),

renamed as (

    select
        {{ lake_source_name('_lake_file') }} as source,
        {{ clean_text('record_id') }} as record_id,
        {{ clean_code('channel') }} as channel,
        cast(is_granted as boolean) as is_granted,
        cast(changed_at as timestamptz) as changed_at,
        {{ clean_email('email') }} as email,
        {{ clean_text('phone') }} as phone,
        cast(_ingested_at as timestamptz) as ingested_at,
        cast(_source_file as varchar) as source_file,
        cast(_source_line as bigint) as source_line
        {{ select_identifier_columns('consents') }}
    from source

),

final as (

    select *
    from renamed
    where changed_at <= {{ as_of_ts() }}
    {{ latest_version('source, record_id') }}

)

select * from final
