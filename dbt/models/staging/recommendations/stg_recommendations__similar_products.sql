-- Similar products per product written by the recommendations asset; empty until it has run.
with

source as (

    {{ external_or_empty(
        source('recommendations', 'similar_products'),
        {'product_id': 'varchar', 'rank': 'integer', 'similar_product_id': 'varchar',
         'score': 'double'}) }}

),

final as (

    select
        cast(product_id as varchar) as product_id,
        cast(rank as integer) as rank,
        cast(similar_product_id as varchar) as similar_product_id,
        cast(score as double) as score
    from source
    where product_id is not null and similar_product_id is not null

)

select * from final
