-- Favourite category and brand per customer: the one with the highest interaction score, where a
-- product view scores 1, an add to cart 2 and each unit bought in a kept order 3. Ties go to the
-- most recent interaction, then alphabetical order.
with

events as (

    select * from {{ ref('int_events_resolved') }}
    where customer_id is not null
        and product_id is not null
        and event_type in ('product_view', 'add_to_cart')

),

orders as (

    select * from {{ ref('int_orders_resolved') }}
    where customer_id is not null and not is_cancelled and not is_returned

),

order_lines as (

    select * from {{ ref('int_order_lines_priced') }}

),

products as (

    select product_id, category, brand
    from {{ ref('stg_lake__products') }}
    qualify row_number() over (
        partition by product_id order by ingested_at desc nulls last, source desc
    ) = 1

),

interactions as (

    select
        events.customer_id,
        events.product_id,
        case events.event_type when 'add_to_cart' then 2 else 1 end as score,
        events.occurred_at
    from events

    union all

    select
        orders.customer_id,
        order_lines.product_id,
        3 * greatest(coalesce(order_lines.quantity, 1), 0) as score,
        orders.ordered_at as occurred_at
    from orders
    inner join order_lines
        on order_lines.order_id = orders.order_id

),

with_products as (

    select interactions.*, products.category, products.brand
    from interactions
    inner join products
        on products.product_id = interactions.product_id

),

{%- for dimension in ['category', 'brand'] %}

{{ dimension }}_ranked as (

    select
        customer_id,
        {{ dimension }},
        row_number() over (
            partition by customer_id
            order by sum(score) desc, max(occurred_at) desc, {{ dimension }}
        ) as preference_rank
    from with_products
    where {{ dimension }} is not null
    group by customer_id, {{ dimension }}

),

{%- endfor %}

final as (

    select
        coalesce(category_ranked.customer_id, brand_ranked.customer_id) as customer_id,
        category_ranked.category as favourite_category,
        brand_ranked.brand as favourite_brand
    from (select * from category_ranked where preference_rank = 1) as category_ranked
    full outer join (select * from brand_ranked where preference_rank = 1) as brand_ranked
        on brand_ranked.customer_id = category_ranked.customer_id

)

select * from final
