-- Products that go together, as directed pairs (product -> related product):
--   co_purchase: baskets are placed (not cancelled) orders;
--   co_view: baskets are a customer's product views on one day.
-- pair_count = baskets with both; support = pair_count / all baskets; confidence =
-- pair_count / baskets with the product; lift = confidence / share of baskets with the related
-- product. Pairs seen in fewer than var affinity_min_pair_count baskets are left out.
with

order_lines as (

    select * from {{ ref('int_order_lines_priced') }}

),

orders as (

    select * from {{ ref('int_orders_resolved') }}

),

events as (

    select * from {{ ref('int_events_resolved') }}

),

basket_items as (

    select distinct
        'co_purchase' as affinity_type,
        order_lines.order_id as basket_id,
        order_lines.product_id
    from order_lines
    where order_lines.product_id is not null
        and order_lines.order_id in (select order_id from orders where not is_cancelled)

    union all

    select distinct
        'co_view' as affinity_type,
        customer_id || '|' || cast(cast(occurred_at as date) as varchar) as basket_id,
        product_id
    from events
    where event_type = 'product_view'
        and customer_id is not null
        and product_id is not null

),

basket_totals as (

    select affinity_type, count(distinct basket_id) as basket_count
    from basket_items
    group by affinity_type

),

product_totals as (

    select affinity_type, product_id, count(*) as product_basket_count
    from basket_items
    group by affinity_type, product_id

),

pairs as (

    select
        left_items.affinity_type,
        left_items.product_id,
        right_items.product_id as related_product_id,
        count(*) as pair_count
    from basket_items as left_items
    inner join basket_items as right_items
        on right_items.affinity_type = left_items.affinity_type
        and right_items.basket_id = left_items.basket_id
        and right_items.product_id <> left_items.product_id
    group by left_items.affinity_type, left_items.product_id, right_items.product_id
    having count(*) >= {{ var('affinity_min_pair_count', 2) | int }}

),

final as (

    select
        pairs.affinity_type,
        pairs.product_id,
        pairs.related_product_id,
        pairs.pair_count,
        {{ safe_divide('pairs.pair_count', 'basket_totals.basket_count') }} as support,
        {{ safe_divide('pairs.pair_count', 'product_totals.product_basket_count') }} as confidence,
        {{ safe_divide(
            safe_divide('pairs.pair_count', 'product_totals.product_basket_count'),
            safe_divide('related_totals.product_basket_count', 'basket_totals.basket_count')
        ) }} as lift
    from pairs
    inner join basket_totals
        on basket_totals.affinity_type = pairs.affinity_type
    inner join product_totals
        on product_totals.affinity_type = pairs.affinity_type
        and product_totals.product_id = pairs.product_id
    inner join product_totals as related_totals
        on related_totals.affinity_type = pairs.affinity_type
        and related_totals.product_id = pairs.related_product_id

)

select * from final
