-- One timeline per customer across web events, orders and email events (resolved rows only).
with

web_events as (

    select * from {{ ref('int_events_resolved') }}
    where customer_id is not null

),

orders as (

    select * from {{ ref('int_orders_resolved') }}
    where customer_id is not null

),

email_events as (

    select * from {{ ref('int_email_events_resolved') }}
    where customer_id is not null

),

unioned as (

    select
        event_id,
        customer_id,
        occurred_at,
        'web' as channel,
        event_type,
        source,
        product_id,
        order_id,
        utm_campaign as campaign_id,
        cast(null as double) as amount,
        coalesce(search_query, page_url) as detail
    from web_events

    union all

    select
        order_key as event_id,
        customer_id,
        ordered_at as occurred_at,
        'orders' as channel,
        'order_' || status as event_type,
        source,
        cast(null as varchar) as product_id,
        order_id,
        cast(null as varchar) as campaign_id,
        order_amount as amount,
        cast(line_count as varchar) || ' line(s)' as detail
    from orders

    union all

    select
        email_event_id as event_id,
        customer_id,
        occurred_at,
        'email' as channel,
        'email_' || event_type as event_type,
        source,
        cast(null as varchar) as product_id,
        cast(null as varchar) as order_id,
        campaign_id,
        cast(null as double) as amount,
        link_url as detail
    from email_events

),

final as (

    select * from unioned

)

select * from final
