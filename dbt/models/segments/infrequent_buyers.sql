-- Buyers placing fewer than 1 order per 3 months (90 days) since their first order. The span is
-- at least 90 days, so a first order placed last week does not make anyone infrequent.
with

traits as (

    select * from {{ ref('customer_traits') }}

),

final as (

    select customer_id
    from traits
    where order_count > 0
        and order_count * 90.0 / greatest({{ days_before_as_of('first_order_at') }}, 90) < 1

)

select * from final
