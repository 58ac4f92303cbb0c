-- Each customer's interest per category as of the as-of date: the interaction scores of
-- int_customer_products_scored (views 1, adds to cart 2, kept units bought 3) summed per
-- category, the customer's share of them, and when the customer last bought (kept) and viewed
-- something in it. category_rank 1 is customer_traits.favourite_category (same ties).
with

products as (

    select * from {{ ref('int_customer_products_scored') }}
    where category is not null

),

per_category as (

    select
        customer_id,
        category,
        sum(interaction_score) as interaction_score,
        cast(sum(view_count) as bigint) as view_count,
        cast(sum(add_to_cart_count) as bigint) as add_to_cart_count,
        max(last_purchased_at) as last_purchased_at,
        max(last_viewed_at) as last_viewed_at,
        max(last_interacted_at) as last_interacted_at
    from products
    group by customer_id, category

),

final as (

    select
        customer_id,
        category,
        cast(interaction_score as bigint) as interaction_score,
        {{ safe_divide('interaction_score', 'sum(interaction_score) over (partition by customer_id)') }}
            as interaction_share,
        row_number() over (
            partition by customer_id
            order by interaction_score desc, last_interacted_at desc, category
        ) as category_rank,
        view_count,
        add_to_cart_count,
        last_purchased_at,
        last_viewed_at,
        last_interacted_at
    from per_category

)

select * from final
