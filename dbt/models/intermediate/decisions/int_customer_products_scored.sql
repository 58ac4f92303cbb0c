-- Each customer's interest in each product as of the as-of date: the product_interactions macro
-- (views 1, adds to cart 2, kept units bought 3; the features macro's own definition) at
-- cutoff = as_of, summed per product, with the catalogue's category and brand. The decision
-- marts read it: customer_category_activity and the last-viewed traits of customer_traits.
with

web_events as (

    select customer_id, event_type, product_id, occurred_at, {{ as_of_date() }} as cutoff_date
    from {{ ref('int_events_resolved') }}
    where customer_id is not null and occurred_at <= {{ as_of_ts() }}

),

orders as (

    select customer_id, order_id, ordered_at, is_returned, {{ as_of_date() }} as cutoff_date
    from {{ ref('int_orders_resolved') }}
    where customer_id is not null and not is_cancelled and ordered_at <= {{ as_of_ts() }}

),

order_lines as (

    select order_id, product_id, quantity
    from {{ ref('int_order_lines_priced') }}

),

-- The catalogue row the features macro joins (latest version of each product).
products as (

    select product_id, category, brand
    from {{ ref('stg_lake__products') }}
    qualify row_number() over (
        partition by product_id order by ingested_at desc nulls last, source desc
    ) = 1

),

interactions as (

    {{ product_interactions('web_events', 'orders', 'order_lines') }}

),

per_product as (

    select
        customer_id,
        product_id,
        sum(score) as interaction_score,
        count(*) filter (where interaction_type = 'product_view') as view_count,
        count(*) filter (where interaction_type = 'add_to_cart') as add_to_cart_count,
        count(distinct order_id) as kept_order_count,
        max(occurred_at) filter (where interaction_type = 'product_view') as last_viewed_at,
        max(occurred_at) filter (where interaction_type = 'purchase') as last_purchased_at,
        max(occurred_at) as last_interacted_at
    from interactions
    group by customer_id, product_id

),

final as (

    select
        per_product.customer_id,
        per_product.product_id,
        products.category,
        products.brand,
        per_product.interaction_score,
        per_product.view_count,
        per_product.add_to_cart_count,
        per_product.kept_order_count,
        per_product.last_viewed_at,
        per_product.last_purchased_at,
        per_product.last_interacted_at
    from per_product
    inner join products
        on products.product_id = per_product.product_id

)

select * from final
