-- Top-N products per customer (rank 1 = best), from the recommendations asset: the hybrid of
-- collaborative filtering, content affinity and popularity for customers with history, the
-- popularity list for customers without. Computed from this warehouse's own marts as of the
-- run's as-of date, so every customer_id is a customer of this build.
with

recommendations as (

    select * from {{ ref('stg_recommendations__customer_recommendations') }}

),

final as (

    select
        customer_id,
        rank,
        product_id,
        score,
        strategy
    from recommendations

)

select * from final
