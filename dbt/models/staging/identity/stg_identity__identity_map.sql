-- Which customer each resolved record belongs to.
with

source as (

    {{ require_external(source('identity', 'identity_map'),
        'run the identity assets first (`cdp run`), they write lake/identity/') }}

),

final as (

    select
        cast(record_uid as varchar) as record_uid,
        cast(source as varchar) as source,
        cast(record_id as varchar) as record_id,
        cast(customer_id as varchar) as customer_id,
        cast(cluster_size as bigint) as cluster_size,
        cast(resolved_at as timestamptz) as resolved_at
    from source

)

select * from final
