-- The top 10% of customers with revenue by lifetime revenue (completed minus returned).
with

buyers as (

    select customer_id, lifetime_revenue
    from {{ ref('customer_traits') }}
    where lifetime_revenue > 0

),

ranked as (

    select
        customer_id,
        ntile(10) over (order by lifetime_revenue desc, customer_id) as revenue_decile
    from buyers

),

final as (

    select customer_id from ranked where revenue_decile = 1

)

select * from final
