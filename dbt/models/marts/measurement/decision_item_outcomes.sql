-- One row per item shown in a decision (a decision delivered with is_sent on some channel):
-- the probability the logging policy chose it with (propensity) and whether the customer bought
-- that product within var decision_order_window_days of the decision. The input of the
-- off-policy estimates (decisions.measure.off_policy_estimate) in decision_measurement.
{%- set order_days = var('decision_order_window_days', 7) | int %}
with

items as (

    select * from {{ ref('stg_decisions__decision_items') }}

),

deliveries as (

    select * from {{ ref('decision_delivery_outcomes') }}

),

orders as (

    select * from {{ ref('int_orders_resolved') }}
    where customer_id is not null and not is_cancelled

),

order_lines as (

    select * from {{ ref('int_order_lines_priced') }}

),

shown as (

    select
        decision_id,
        any_value(holder_customer_id) as holder_customer_id,
        any_value(arm) as arm,
        min(delivered_at) as shown_at
    from deliveries
    where is_sent
    group by decision_id

),

bought as (

    select
        orders.customer_id,
        order_lines.product_id,
        orders.ordered_at,
        order_lines.line_amount as line_revenue
    from order_lines
    inner join orders on orders.order_id = order_lines.order_id

),

item_rewards as (

    select
        items.decision_id,
        items.position,
        count(bought.product_id) > 0 as has_purchased_item,
        coalesce(sum(bought.line_revenue), 0) as item_revenue
    from items
    inner join shown on shown.decision_id = items.decision_id
    left join bought
        on bought.customer_id = shown.holder_customer_id
        and bought.product_id = items.product_id
        and bought.ordered_at >= shown.shown_at
        and bought.ordered_at < shown.shown_at + interval {{ order_days }} day
    group by items.decision_id, items.position

),

final as (

    select
        items.decision_id,
        items.position,
        items.customer_id,
        items.placement,
        shown.arm,
        shown.shown_at,
        items.product_id,
        items.sale_id,
        items.score,
        items.propensity,
        items.is_wildcard,
        item_rewards.has_purchased_item,
        cast(item_rewards.item_revenue as double) as item_revenue
    from items
    inner join shown on shown.decision_id = items.decision_id
    inner join item_rewards
        on item_rewards.decision_id = items.decision_id
        and item_rewards.position = items.position

)

select * from final
