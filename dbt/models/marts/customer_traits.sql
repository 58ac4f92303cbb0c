-- Behavioural traits per customer, computed as of the as-of date (definitions and the engagement
-- score formula in _marts__models.yml).
with

customers as (

    select customer_id from {{ ref('customers') }}

),

orders as (

    select * from {{ ref('int_customer_orders_aggregated') }}

),

web as (

    select * from {{ ref('int_customer_web_aggregated') }}

),

email as (

    select * from {{ ref('int_customer_email_aggregated') }}

),

preferences as (

    select * from {{ ref('int_customer_preferences_ranked') }}

),

joined as (

    select
        customers.customer_id,
        coalesce(orders.order_count, 0) as order_count,
        coalesce(orders.return_count, 0) as return_count,
        coalesce(orders.kept_order_count, 0) as frequency,
        coalesce(orders.gross_revenue, 0) - coalesce(orders.returned_revenue, 0)
            as lifetime_revenue,
        orders.first_order_at,
        orders.last_order_at,
        {{ days_before_as_of('orders.last_order_at') }} as recency_days,
        coalesce(orders.order_count_30d, 0) as order_count_30d,
        coalesce(orders.order_count_90d, 0) as order_count_90d,
        web.last_visit_at,
        {{ days_before_as_of('web.last_visit_at') }} as days_since_last_visit,
        coalesce(web.web_active_days_30d, 0) as web_active_days_30d,
        coalesce(web.product_view_count_30d, 0) as product_view_count_30d,
        coalesce(web.add_to_cart_count_30d, 0) as add_to_cart_count_30d,
        preferences.favourite_category,
        preferences.favourite_brand,
        coalesce(email.email_sends_30d, 0) as email_sends_30d,
        coalesce(email.email_sends_90d, 0) as email_sends_90d,
        email.open_rate_30d,
        email.open_rate_90d,
        email.click_rate_30d,
        email.click_rate_90d,
        greatest(orders.last_order_at, web.last_visit_at, email.last_email_engaged_at)
            as last_active_at
    from customers
    left join orders on orders.customer_id = customers.customer_id
    left join web on web.customer_id = customers.customer_id
    left join email on email.customer_id = customers.customer_id
    left join preferences on preferences.customer_id = customers.customer_id

),

-- RFM scores (1-5, 5 best) rank buyers only: customers with at least one placed order.
scored as (

    select
        customer_id,
        ntile(5) over (order by recency_days desc, customer_id desc) as r_score,
        ntile(5) over (order by frequency, customer_id) as f_score,
        ntile(5) over (order by lifetime_revenue, customer_id) as m_score
    from joined
    where order_count > 0

),

final as (

    select
        joined.customer_id,
        {{ as_of_date() }} as as_of_date,
        joined.recency_days,
        joined.frequency,
        joined.lifetime_revenue as monetary,
        scored.r_score,
        scored.f_score,
        scored.m_score,
        joined.order_count,
        joined.lifetime_revenue,
        {{ safe_divide('joined.lifetime_revenue', 'joined.frequency') }} as average_order_value,
        joined.first_order_at,
        joined.last_order_at,
        joined.return_count,
        joined.order_count_30d,
        joined.order_count_90d,
        joined.days_since_last_visit,
        joined.web_active_days_30d,
        joined.product_view_count_30d,
        joined.add_to_cart_count_30d,
        joined.favourite_category,
        joined.favourite_brand,
        joined.email_sends_30d,
        joined.email_sends_90d,
        joined.open_rate_30d,
        joined.open_rate_90d,
        joined.click_rate_30d,
        joined.click_rate_90d,
        round(100 * (
            0.4 * least(joined.web_active_days_30d, 10) / 10.0
            + 0.3 * (0.5 * coalesce(joined.open_rate_90d, 0) + 0.5 * coalesce(joined.click_rate_90d, 0))
            + 0.3 * least(joined.order_count_90d, 3) / 3.0
        ), 1) as engagement_score,
        joined.last_active_at
    from joined
    left join scored on scored.customer_id = joined.customer_id

)

select * from final
