-- Order lines of every order_lines source, cleaned, latest version each. Lines carry no time of
-- their own: the as-of cut happens through their order (int_order_lines_priced).
with

source as (

    {{ lake_source('order_lines') }}

),

renamed as (

    select
        {{ lake_source_name('_lake_file') }} as source,
        {{ clean_text('record_id') }} as record_id,
        {{ clean_text('order_id') }} as order_id,
        cast(line_number as bigint) as line_number,
        {{ clean_text('product_id') }} as product_id,
        cast(quantity as bigint) as quantity,
        cast(unit_price as double) as unit_price,
        cast(_ingested_at as timestamptz) as ingested_at,
        cast(_source_file as varchar) as source_file,
        cast(_source_line as bigint) as source_line
    from source

),

final as (

    select *
    from renamed
    {{ latest_version('source, record_id') }}

)

select * from final
