-- Behavioural cluster membership written by the clustering asset; empty until it has run.
with

source as (

    {{ external_or_empty(
        source('clusters', 'behavioural_clusters'),
        {'customer_id': 'varchar', 'segment': 'varchar', 'description': 'varchar'}) }}

),

final as (

    select distinct
        cast(customer_id as varchar) as customer_id,
        cast(segment as varchar) as segment,
        cast(description as varchar) as description
    from source
    where customer_id is not null and segment is not null

)

select * from final
