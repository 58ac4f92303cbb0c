-- Orders with their customer (named identifiers such as account_id, then email) and amounts:
-- order_amount is the order's total, or the sum of its lines when the source has no total.
{%- set match_columns = identifier_match_columns('orders', ['email']) %}
with

orders as (

    select * from {{ ref('stg_lake__orders') }}

),

order_lines as (

    select * from {{ ref('int_order_lines_priced') }}

),

resolved as (

    {{ resolved_customer_ids(ref('stg_lake__orders'), match_columns) }}

),

line_totals as (

    select
        order_id,
        count(*) as line_count,
        sum(quantity) as item_count,
        sum(line_amount) as line_amount_total
    from order_lines
    group by order_id

),

final as (

    select
        orders.source || ':' || orders.record_id as order_key,
        resolved.customer_id,
        resolved.matched_on as resolved_by,
        orders.source,
        orders.record_id,
        orders.order_id,
        orders.ordered_at,
        orders.status,
        orders.status in {{ cancelled_statuses() }} as is_cancelled,
        orders.status in {{ returned_statuses() }} as is_returned,
        orders.currency,
        orders.total_amount,
        coalesce(line_totals.line_count, 0) as line_count,
        coalesce(line_totals.item_count, 0) as item_count,
        line_totals.line_amount_total,
        coalesce(orders.total_amount, line_totals.line_amount_total, 0) as order_amount
    from orders
    left join resolved
        on {{ identifier_match_condition('orders', 'resolved', match_columns) }}
    left join line_totals
        on line_totals.order_id = orders.order_id

)

select * from final
