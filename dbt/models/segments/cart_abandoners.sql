-- Added to cart in the last var cart_abandonment_lookback_days (30) days and placed no order (web
-- purchase event or order) within var cart_abandonment_hours (24) hours after; only carts whose
-- 24 hours have elapsed by the end of the as-of day count.
{%- set hours = var('cart_abandonment_hours', 24) | int %}
{%- set lookback_days = var('cart_abandonment_lookback_days', 30) | int %}

with

events as (

    select * from {{ ref('int_events_resolved') }}
    where customer_id is not null

),

orders as (

    select * from {{ ref('int_orders_resolved') }}
    where customer_id is not null and not is_cancelled

),

carts as (

    select customer_id, occurred_at as added_at
    from events
    where event_type = 'add_to_cart'
        and {{ within_days('occurred_at', lookback_days) }}
        and occurred_at + interval {{ hours }} hour <= {{ as_of_ts() }}

),

purchases as (

    select customer_id, occurred_at as purchased_at from events where event_type = 'purchase'
    union all
    select customer_id, ordered_at as purchased_at from orders

),

abandoned as (

    select carts.customer_id
    from carts
    where not exists (
        select 1
        from purchases
        where purchases.customer_id = carts.customer_id
            and purchases.purchased_at between carts.added_at
                and carts.added_at + interval {{ hours }} hour
    )

),

final as (

    select distinct customer_id from abandoned

)

select * from final
