-- Order figures per customer as of the as-of date. Placed orders are every order not cancelled;
-- returned orders were placed and refunded in full; kept orders = placed - returned.
with

orders as (

    select * from {{ ref('int_orders_resolved') }}
    where customer_id is not null

),

placed as (

    select * from orders where not is_cancelled

),

final as (

    select
        customer_id,
        count(*) as order_count,
        count(*) filter (where is_returned) as return_count,
        count(*) filter (where not is_returned) as kept_order_count,
        sum(order_amount) as gross_revenue,
        coalesce(sum(order_amount) filter (where is_returned), 0) as returned_revenue,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        count(*) filter (where {{ within_days('ordered_at', 30) }}) as order_count_30d,
        count(*) filter (where {{ within_days('ordered_at', 90) }}) as order_count_90d
    from placed
    group by customer_id

)

select * from final
