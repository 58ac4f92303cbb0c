-- Behavioural traits per customer, computed as of the as-of date (definitions and the engagement
-- score formula in _marts__models.yml): the features macro at the as-of date
-- (int_customer_features_computed) plus the customer models' scores (null until scored) and the
-- product last viewed (int_customer_products_scored).
with

customers as (

    select customer_id from {{ ref('customers') }}

),

features as (

    select * from {{ ref('int_customer_features_computed') }}

),

scores as (

    select * from {{ ref('stg_models__customer_scores') }}

),

-- The product the customer viewed last (ties: the smallest product id) and its category.
last_viewed as (

    select customer_id, product_id, category, last_viewed_at
    from {{ ref('int_customer_products_scored') }}
    where last_viewed_at is not null
    qualify row_number() over (
        partition by customer_id order by last_viewed_at desc, product_id
    ) = 1

),

joined as (

    select
        customers.customer_id,
        coalesce(features.order_count, 0) as order_count,
        coalesce(features.return_count, 0) as return_count,
        coalesce(features.kept_order_count, 0) as frequency,
        coalesce(features.kept_revenue, 0) as lifetime_revenue,
        features.first_order_at,
        features.last_order_at,
        features.recency_days,
        coalesce(features.order_count_30d, 0) as order_count_30d,
        coalesce(features.order_count_90d, 0) as order_count_90d,
        features.last_visit_at,
        features.days_since_last_visit,
        coalesce(features.web_active_days_30d, 0) as web_active_days_30d,
        coalesce(features.product_view_count_30d, 0) as product_view_count_30d,
        coalesce(features.add_to_cart_count_30d, 0) as add_to_cart_count_30d,
        features.favourite_category,
        features.favourite_brand,
        coalesce(features.email_sends_30d, 0) as email_sends_30d,
        coalesce(features.email_sends_90d, 0) as email_sends_90d,
        features.open_rate_30d,
        features.open_rate_90d,
        features.click_rate_30d,
        features.click_rate_90d,
        greatest(features.last_order_at, features.last_visit_at, features.last_email_engaged_at)
            as last_active_at,
        scores.purchase_probability,
        scores.churn_risk,
        scores.predicted_clv,
        last_viewed.product_id as last_viewed_product_id,
        last_viewed.category as last_viewed_category,
        last_viewed.last_viewed_at
    from customers
    left join features on features.customer_id = customers.customer_id
    left join scores on scores.customer_id = customers.customer_id
    left join last_viewed on last_viewed.customer_id = customers.customer_id

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
        joined.last_active_at,
        joined.purchase_probability,
        joined.churn_risk,
        joined.predicted_clv,
        joined.last_viewed_product_id,
        joined.last_viewed_category,
        joined.last_viewed_at
    from joined
    left join scored on scored.customer_id = joined.customer_id

)

select * from final
