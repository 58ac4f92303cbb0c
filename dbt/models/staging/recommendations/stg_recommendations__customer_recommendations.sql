-- Top-N recommendations per customer written by the recommendations asset; empty until it has run.
with

source as (

    {{ external_or_empty(
        source('recommendations', 'customer_recommendations'),
        {'customer_id': 'varchar', 'rank': 'integer', 'product_id': 'varchar',
         'score': 'double', 'strategy': 'varchar'}) }}

),

final as (

    select
        cast(customer_id as varchar) as customer_id,
        cast(rank as integer) as rank,
        cast(product_id as varchar) as product_id,
        cast(score as double) as score,
        cast(strategy as varchar) as strategy
    from source
    where customer_id is not null and product_id is not null

)

select * from final
