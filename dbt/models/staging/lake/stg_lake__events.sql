-- Behavioural events of every events source, cleaned, up to the as-of date, latest version each.
with

source as (

    {{ lake_source('events') }}

),

renamed as (

    select
        {{ lake_source_name('_lake_file') }} as source,
        {{ clean_text('record_id') }} as record_id,
        {{ clean_code('event_type') }} as event_type,
        cast(occurred_at as timestamptz) as occurred_at,
        {{ clean_email('email') }} as email,
        {{ clean_text('page_url') }} as page_url,
        {{ clean_text('product_id') }} as product_id,
        {{ clean_text('search_query') }} as search_query,
        {{ clean_text('order_id') }} as order_id,
        {{ clean_text('user_agent') }} as user_agent,
        {{ clean_code('utm_source') }} as utm_source,
        {{ clean_code('utm_medium') }} as utm_medium,
        {{ clean_text('utm_campaign') }} as utm_campaign,
        cast(_ingested_at as timestamptz) as ingested_at,
        cast(_source_file as varchar) as source_file,
        cast(_source_line as bigint) as source_line
        {{ select_identifier_columns('events') }}
    from source

),

final as (

    select *
    from renamed
    where occurred_at <= {{ as_of_ts() }}
    {{ latest_version('source, record_id') }}

)

select * from final
