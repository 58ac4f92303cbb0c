-- Sales calendar of every offers source, cleaned: one row per product a sale covers, latest
-- version each. A calendar is planned ahead, so sales starting up to var sales_lookahead_days
-- days after the as-of day are visible (the daily email for tomorrow is decided from today's
-- build); later ones are not visible yet.
with

source as (

    {{ lake_source('offers') }}

),

renamed as (

    select
        {{ lake_source_name('_lake_file') }} as source,
        {{ clean_text('record_id') }} as record_id,
        {{ clean_text('offer_id') }} as offer_id,
        {{ clean_text('sale_id') }} as sale_id,
        {{ clean_text('product_id') }} as product_id,
        cast(starts_at as timestamptz) as starts_at,
        cast(ends_at as timestamptz) as ends_at,
        cast(discount_percent as double) as discount_percent,
        cast(regular_price as double) as regular_price,
        cast(sale_price as double) as sale_price,
        {{ clean_text('title') }} as title,
        {{ clean_code('theme') }} as theme,
        {{ clean_text('brand') }} as brand,
        {{ clean_text('category') }} as category,
        cast(_ingested_at as timestamptz) as ingested_at,
        cast(_source_file as varchar) as source_file,
        cast(_source_line as bigint) as source_line
    from source

),

final as (

    select *
    from renamed
    where starts_at <= {{ as_of_ts() }} + interval {{ var('sales_lookahead_days', 2) | int }} day
    {{ latest_version('source, record_id') }}

)

select * from final
