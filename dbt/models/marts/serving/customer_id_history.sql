-- Merges, splits, creations and retirements of customer ids up to the as-of date, in the order
-- identity recorded them.
with

history as (

    select * from {{ ref('stg_identity__customer_id_history') }}

),

final as (

    select
        event_number,
        occurred_at,
        run_id,
        event_type,
        customer_id,
        related_customer_id,
        cause
    from history

)

select * from final
