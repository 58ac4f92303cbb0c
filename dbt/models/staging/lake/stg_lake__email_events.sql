-- Email events of every email_events source, cleaned, up to the as-of date, latest version each.
with

source as (

    {{ lake_source('email_events') }}

),

renamed as (

    select
        {{ lake_source_name('_lake_file') }} as source,
        {{ clean_text('record_id') }} as record_id,
        {{ clean_code('event_type') }} as event_type,
        cast(occurred_at as timestamptz) as occurred_at,
        {{ clean_email('email') }} as email,
        {{ clean_text('campaign_id') }} as campaign_id,
        {{ clean_text('link_url') }} as link_url,
        cast(_ingested_at as timestamptz) as ingested_at,
        cast(_source_file as varchar) as source_file,
        cast(_source_line as bigint) as source_line
        {{ select_identifier_columns('email_events') }}
    from source

),

final as (

    select *
    from renamed
    where occurred_at <= {{ as_of_ts() }}
    {{ latest_version('source, record_id') }}

)

select * from final
