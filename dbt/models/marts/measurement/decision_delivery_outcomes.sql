-- One row per delivery (a decision told to one channel) with the outcomes attributed to it.
--
-- Attribution, in order of precedence:
-- 1. By id: an email event whose campaign_id is the decision id, a web event whose utm_campaign
--    is (a sending platform passes the decision id back), and the order of such a purchase event,
--    count for the sent message deliveries of that decision.
-- 2. By window, for events that carry no decision id: the same customer's email engagement
--    within var decision_engagement_window_days (3) of an email delivery, web visits within the
--    same window and completed orders within var decision_order_window_days (7) of any delivery.
--    An event counts once per (placement, channel): for the latest delivery at or before it
--    (the message the customer saw last). Email events with another campaign id belong to that
--    campaign, not to a decision.
-- 3. Outcomes reported against the decision id straight to the decision store.
-- Windows apply to deliveries that were not sent too (holdout, caps, consent), so an arm and the
-- holdout are compared on every decision made (intention to treat). Delivery customer ids are
-- followed through merges (customer_aliases) to the customer that holds the events now.
{%- set engagement_days = var('decision_engagement_window_days', 3) | int %}
{%- set order_days = var('decision_order_window_days', 7) | int %}
with

deliveries as (

    select * from {{ ref('stg_decisions__deliveries') }}
    where delivered_at <= {{ as_of_ts() }}

),

aliases as (

    select * from {{ ref('customer_aliases') }}

),

email_events as (

    select * from {{ ref('int_email_events_resolved') }}

),

web_events as (

    select * from {{ ref('int_events_resolved') }}

),

orders as (

    select * from {{ ref('int_orders_resolved') }}
    where customer_id is not null and not is_cancelled

),

store_outcomes as (

    select * from {{ ref('stg_decisions__outcomes') }}
    where occurred_at <= {{ as_of_ts() }}

),

delivered as (

    select
        deliveries.*,
        coalesce(aliases.customer_id, deliveries.customer_id) as holder_customer_id,
        deliveries.is_sent and deliveries.channel in ('email', 'sms', 'push') as is_message_sent
    from deliveries
    left join aliases on aliases.alias_customer_id = deliveries.customer_id

),

decision_ids as (

    select distinct decision_id from deliveries

),

email_by_id as (

    select
        delivered.delivery_id,
        email_events.event_type
    from email_events
    inner join delivered
        on delivered.decision_id = email_events.campaign_id
        and delivered.channel = 'email'
        and delivered.is_sent

),

email_by_window as (

    select
        delivered.delivery_id,
        email_events.event_type
    from email_events
    inner join delivered
        on delivered.holder_customer_id = email_events.customer_id
        and delivered.channel = 'email'
        and delivered.is_sent
        and email_events.occurred_at >= delivered.delivered_at
        and email_events.occurred_at
            < delivered.delivered_at + interval {{ engagement_days }} day
    where email_events.campaign_id is null
        and email_events.customer_id is not null
    qualify row_number() over (
        partition by email_events.email_event_id, delivered.placement
        order by delivered.delivered_at desc, delivered.delivery_id desc
    ) = 1

),

email_attributed as (

    select
        delivery_id,
        bool_or(event_type in ('open', 'click')) as has_opened,
        bool_or(event_type = 'click') as has_clicked,
        bool_or(event_type = 'unsubscribe') as has_unsubscribed
    from (
        select * from email_by_id
        union all
        select * from email_by_window
    )
    group by delivery_id

),

web_by_id as (

    select
        delivered.delivery_id,
        web_events.event_id,
        web_events.event_type,
        web_events.order_id
    from web_events
    inner join delivered
        on delivered.decision_id = web_events.utm_campaign
        and delivered.is_message_sent

),

web_by_window as (

    select
        delivered.delivery_id,
        web_events.event_id
    from web_events
    inner join delivered
        on delivered.holder_customer_id = web_events.customer_id
        and web_events.occurred_at >= delivered.delivered_at
        and web_events.occurred_at
            < delivered.delivered_at + interval {{ engagement_days }} day
    where web_events.customer_id is not null
        and (
            web_events.utm_campaign is null
            or web_events.utm_campaign not in (select decision_id from decision_ids)
        )
    qualify row_number() over (
        partition by web_events.event_id, delivered.placement, delivered.channel
        order by delivered.delivered_at desc, delivered.delivery_id desc
    ) = 1

),

visits as (

    select delivery_id from web_by_id
    union
    select delivery_id from web_by_window

),

orders_by_id as (

    select distinct
        web_by_id.delivery_id,
        orders.order_key,
        orders.order_amount
    from web_by_id
    inner join orders on orders.order_id = web_by_id.order_id
    where web_by_id.event_type = 'purchase'

),

orders_by_window as (

    select
        delivered.delivery_id,
        orders.order_key,
        orders.order_amount
    from orders
    inner join delivered
        on delivered.holder_customer_id = orders.customer_id
        and orders.ordered_at >= delivered.delivered_at
        and orders.ordered_at < delivered.delivered_at + interval {{ order_days }} day
    where orders.order_key not in (select order_key from orders_by_id)
    qualify row_number() over (
        partition by orders.order_key, delivered.placement, delivered.channel
        order by delivered.delivered_at desc, delivered.delivery_id desc
    ) = 1

),

order_attributed as (

    select
        delivery_id,
        count(distinct order_key) as order_count,
        sum(order_amount) as order_revenue
    from (
        select * from orders_by_id
        union all
        select * from orders_by_window
    )
    group by delivery_id

),

store_attributed as (

    select
        delivered.delivery_id,
        bool_or(store_outcomes.kind in ('open', 'click')) as has_opened,
        bool_or(store_outcomes.kind = 'click') as has_clicked,
        bool_or(store_outcomes.kind = 'visit') as has_visited,
        bool_or(store_outcomes.kind = 'purchase') as has_purchased,
        sum(store_outcomes.revenue) filter (where store_outcomes.kind = 'purchase')
            as purchase_revenue,
        bool_or(store_outcomes.kind = 'unsubscribe') as has_unsubscribed
    from store_outcomes
    inner join delivered
        on delivered.decision_id = store_outcomes.decision_id
        and delivered.channel = store_outcomes.channel
    group by delivered.delivery_id

),

final as (

    select
        delivered.delivery_id,
        delivered.decision_id,
        delivered.customer_id,
        delivered.holder_customer_id,
        delivered.placement,
        delivered.channel,
        delivered.policy_version,
        delivered.experiment,
        case
            when delivered.is_holdout then 'holdout'
            when delivered.experiment is not null
                then delivered.experiment || '/' || coalesce(delivered.arm, 'unknown')
            else 'personalized'
        end as arm,
        delivered.is_holdout,
        delivered.decided_at,
        delivered.delivered_at,
        cast(delivered.delivered_at as date) as delivered_on,
        delivered.is_sent,
        delivered.reasons,
        coalesce(email_attributed.has_opened, false)
            or coalesce(store_attributed.has_opened, false) as has_opened,
        coalesce(email_attributed.has_clicked, false)
            or coalesce(store_attributed.has_clicked, false) as has_clicked,
        visits.delivery_id is not null
            or coalesce(store_attributed.has_visited, false) as has_visited,
        coalesce(order_attributed.order_count, 0) > 0
            or coalesce(store_attributed.has_purchased, false) as has_converted,
        coalesce(order_attributed.order_count, 0) as order_count,
        -- a purchase reported both to the store and in the orders source counts once
        greatest(
            coalesce(order_attributed.order_revenue, 0),
            coalesce(store_attributed.purchase_revenue, 0)
        ) as revenue,
        coalesce(email_attributed.has_unsubscribed, false)
            or coalesce(store_attributed.has_unsubscribed, false) as has_unsubscribed
    from delivered
    left join email_attributed on email_attributed.delivery_id = delivered.delivery_id
    left join visits on visits.delivery_id = delivered.delivery_id
    left join order_attributed on order_attributed.delivery_id = delivered.delivery_id
    left join store_attributed on store_attributed.delivery_id = delivered.delivery_id

)

select * from final
