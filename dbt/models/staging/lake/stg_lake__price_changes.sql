-- Price history of every price_changes source, cleaned, up to the as-of date, latest version each.
with

source as (

    {{ lake_source('price_changes') }}

),

renamed as (

    select
        {{ lake_source_name('_lake_file') }} as source,
        {{ clean_text('record_id') }} as record_id,
        {{ clean_text('product_id') }} as product_id,
        cast(price as double) as price,
        cast(changed_at as timestamptz) as changed_at,
        cast(_ingested_at as timestamptz) as ingested_at,
        cast(_source_file as varchar) as source_file,
        cast(_source_line as bigint) as source_line
    from source

),

final as (

    select *
    from renamed
    where changed_at <= {{ as_of_ts() }}
    {{ latest_version('source, record_id') }}

)

select * from final
