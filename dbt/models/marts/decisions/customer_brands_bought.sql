-- The brands each customer has bought as of the as-of date, from placed orders (not cancelled).
-- A returned order still counts: the customer has tried the brand, so it is no longer new to
-- them (the decision engine's novelty is "a brand never bought").
with

orders as (

    select customer_id, order_id, ordered_at, is_returned
    from {{ ref('int_orders_resolved') }}
    where customer_id is not null and not is_cancelled and ordered_at <= {{ as_of_ts() }}

),

order_lines as (

    select order_id, brand
    from {{ ref('int_order_lines_priced') }}
    where brand is not null

),

final as (

    select
        orders.customer_id,
        order_lines.brand,
        min(orders.ordered_at) as first_bought_at,
        max(orders.ordered_at) as last_bought_at,
        count(distinct orders.order_id) as order_count,
        count(distinct orders.order_id) filter (where not orders.is_returned) as kept_order_count
    from orders
    inner join order_lines
        on order_lines.order_id = orders.order_id
    group by orders.customer_id, order_lines.brand

)

select * from final
