-- Web behaviour per customer as of the as-of date.
with

events as (

    select * from {{ ref('int_events_resolved') }}
    where customer_id is not null

),

final as (

    select
        customer_id,
        max(occurred_at) as last_visit_at,
        count(distinct cast(occurred_at as date)) filter (
            where {{ within_days('occurred_at', 30) }}
        ) as web_active_days_30d,
        count(*) filter (
            where event_type = 'product_view' and {{ within_days('occurred_at', 30) }}
        ) as product_view_count_30d,
        count(*) filter (
            where event_type = 'add_to_cart' and {{ within_days('occurred_at', 30) }}
        ) as add_to_cart_count_30d
    from events
    group by customer_id

)

select * from final
