-- Per email campaign: delivery and engagement counts, conversions and the shop funnel of the
-- customers who clicked. A conversion is a clicking customer placing an order within
-- var conversion_window_days after their first click in the campaign; the funnel counts, among
-- clicking customers, those who then viewed a product, added to cart and placed an order in the
-- same window. An order can convert for several campaigns (no last-touch attribution).
{%- set window_days = var('conversion_window_days', 7) | int %}

with

email_events as (

    select * from {{ ref('int_email_events_resolved') }}
    where campaign_id is not null

),

web_events as (

    select * from {{ ref('int_events_resolved') }}
    where customer_id is not null

),

orders as (

    select * from {{ ref('int_orders_resolved') }}
    where customer_id is not null and not is_cancelled

),

delivery as (

    select
        campaign_id,
        min(occurred_at) filter (where event_type = 'send') as first_sent_at,
        count(*) filter (where event_type = 'send') as send_count,
        count(distinct email) filter (where event_type = 'send') as recipient_count,
        count(distinct email) filter (where event_type in ('open', 'click')) as open_count,
        count(distinct email) filter (where event_type = 'click') as click_count,
        count(distinct email) filter (where event_type = 'unsubscribe') as unsubscribe_count,
        count(distinct email) filter (where event_type = 'bounce') as bounce_count
    from email_events
    group by campaign_id

),

first_clicks as (

    select campaign_id, customer_id, min(occurred_at) as clicked_at
    from email_events
    where event_type = 'click' and customer_id is not null
    group by campaign_id, customer_id

),

after_click_web as (

    select
        first_clicks.campaign_id,
        first_clicks.customer_id,
        bool_or(web_events.event_type = 'product_view') as has_viewed_product,
        bool_or(web_events.event_type = 'add_to_cart') as has_added_to_cart
    from first_clicks
    inner join web_events
        on web_events.customer_id = first_clicks.customer_id
        and web_events.occurred_at between first_clicks.clicked_at
            and first_clicks.clicked_at + interval {{ window_days }} day
    group by first_clicks.campaign_id, first_clicks.customer_id

),

after_click_orders as (

    select
        first_clicks.campaign_id,
        first_clicks.customer_id,
        sum(orders.order_amount) as converted_amount
    from first_clicks
    inner join orders
        on orders.customer_id = first_clicks.customer_id
        and orders.ordered_at between first_clicks.clicked_at
            and first_clicks.clicked_at + interval {{ window_days }} day
    group by first_clicks.campaign_id, first_clicks.customer_id

),

journeys as (

    select
        first_clicks.campaign_id,
        first_clicks.customer_id,
        coalesce(after_click_web.has_viewed_product, false) as has_viewed_product,
        coalesce(after_click_web.has_added_to_cart, false) as has_added_to_cart,
        after_click_orders.customer_id is not null as has_converted,
        coalesce(after_click_orders.converted_amount, 0) as converted_amount
    from first_clicks
    left join after_click_web
        on after_click_web.campaign_id = first_clicks.campaign_id
        and after_click_web.customer_id = first_clicks.customer_id
    left join after_click_orders
        on after_click_orders.campaign_id = first_clicks.campaign_id
        and after_click_orders.customer_id = first_clicks.customer_id

),

funnel as (

    select
        campaign_id,
        count(*) as clicked_customer_count,
        count(*) filter (where has_viewed_product) as product_view_customer_count,
        count(*) filter (where has_added_to_cart) as add_to_cart_customer_count,
        count(*) filter (where has_converted) as conversion_count,
        sum(converted_amount) as conversion_revenue
    from journeys
    group by campaign_id

),

final as (

    select
        delivery.campaign_id,
        delivery.first_sent_at,
        delivery.send_count,
        delivery.recipient_count,
        delivery.open_count,
        delivery.click_count,
        delivery.unsubscribe_count,
        delivery.bounce_count,
        {{ safe_divide('delivery.open_count', 'delivery.recipient_count') }} as open_rate,
        {{ safe_divide('delivery.click_count', 'delivery.recipient_count') }} as click_rate,
        coalesce(funnel.clicked_customer_count, 0) as clicked_customer_count,
        coalesce(funnel.product_view_customer_count, 0) as product_view_customer_count,
        coalesce(funnel.add_to_cart_customer_count, 0) as add_to_cart_customer_count,
        coalesce(funnel.conversion_count, 0) as conversion_count,
        coalesce(funnel.conversion_revenue, 0) as conversion_revenue,
        {{ safe_divide('funnel.conversion_count', 'funnel.clicked_customer_count') }}
            as conversion_rate
    from delivery
    left join funnel on funnel.campaign_id = delivery.campaign_id

)

select * from final
