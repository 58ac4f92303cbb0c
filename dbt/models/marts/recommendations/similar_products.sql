-- Products similar to each product (rank 1 = most similar): cosine of the ALS item factors, or
-- of co-occurrence when too little data trained no model. In-range products only.
with

staged as (

    select * from {{ ref('stg_recommendations__similar_products') }}

),

final as (

    select
        product_id,
        rank,
        similar_product_id,
        score
    from staged

)

select * from final
