-- Product catalogue of every products source, cleaned, latest version each.
with

source as (

    {{ lake_source('products') }}

),

renamed as (

    select
        {{ lake_source_name('_lake_file') }} as source,
        {{ clean_text('record_id') }} as record_id,
        {{ clean_text('product_id') }} as product_id,
        {{ clean_text('product_name') }} as product_name,
        {{ clean_text('category') }} as category,
        {{ clean_text('brand') }} as brand,
        cast(price as double) as price,
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
