-- Orders of every orders source, cleaned, placed up to the as-of date, latest version each
-- (a later version carries a status change such as completed -> returned).
with

source as (

    {{ lake_source('orders') }}

),

renamed as (

    select
        {{ lake_source_name('_lake_file') }} as source,
        {{ clean_text('record_id') }} as record_id,
        {{ clean_text('order_id') }} as order_id,
        cast(ordered_at as timestamptz) as ordered_at,
        {{ clean_code('status') }} as status,
        {{ clean_email('email') }} as email,
        {{ clean_text('phone') }} as phone,
        upper({{ clean_text('currency') }}) as currency,
        cast(total_amount as double) as total_amount,
        cast(_ingested_at as timestamptz) as ingested_at,
        cast(_source_file as varchar) as source_file,
        cast(_source_line as bigint) as source_line
        {{ select_identifier_columns('orders') }}
    from source

),

final as (

    select *
    from renamed
    where ordered_at <= {{ as_of_ts() }}
    {{ latest_version('source, record_id') }}

)

select * from final
