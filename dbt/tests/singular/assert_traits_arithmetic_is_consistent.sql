-- Trait arithmetic that must hold for every customer, whatever the data.
{{ config(meta={'dagster': {'ref': {'name': 'customer_traits'}}}) }}
select *
from {{ ref('customer_traits') }}
where frequency + return_count <> order_count
    or order_count_30d > order_count_90d
    or order_count_90d > order_count
    or monetary <> lifetime_revenue
    or (frequency > 0 and abs(average_order_value * frequency - lifetime_revenue) > 0.01)
    or (frequency = 0 and average_order_value is not null)
    or recency_days < 0
    or days_since_last_visit < 0
    or (order_count > 0) <> (r_score is not null)
    or (order_count > 0) <> (first_order_at is not null)
    or first_order_at > last_order_at
    or open_rate_30d not between 0 and 1
    or open_rate_90d not between 0 and 1
    or click_rate_30d > open_rate_30d
    or click_rate_90d > open_rate_90d
    or (email_sends_30d = 0) <> (open_rate_30d is null)
    or email_sends_30d > email_sends_90d
    or engagement_score not between 0 and 100
    or as_of_date <> {{ as_of_date() }}
