-- lifetime_revenue and frequency must equal what the resolved orders say (kept orders only).
{{ config(meta={'dagster': {'ref': {'name': 'customer_traits'}}}) }}
with

orders as (

    select
        customer_id,
        sum(order_amount) filter (where not is_returned) as kept_revenue,
        count(*) filter (where not is_returned) as kept_orders
    from {{ ref('int_orders_resolved') }}
    where customer_id is not null and not is_cancelled
    group by customer_id

),

traits as (

    select * from {{ ref('customer_traits') }}

)

select traits.customer_id, traits.lifetime_revenue, orders.kept_revenue
from traits
left join orders on orders.customer_id = traits.customer_id
where abs(traits.lifetime_revenue - coalesce(orders.kept_revenue, 0)) > 0.005
    or traits.frequency <> coalesce(orders.kept_orders, 0)
