-- Order lines of orders visible as of the as-of date, with the product's category and brand, the
-- list price in force when the order was placed (price history, else catalogue price) and the
-- line amount (quantity x unit price paid).
with

order_lines as (

    select * from {{ ref('stg_lake__order_lines') }}

),

orders as (

    select * from {{ ref('stg_lake__orders') }}

),

products as (

    select * from {{ ref('stg_lake__products') }}

),

price_changes as (

    select * from {{ ref('stg_lake__price_changes') }}

),

-- An order id may be delivered by several sources; the latest ingested version describes it.
orders_by_id as (

    select order_id, ordered_at, status
    from orders
    qualify row_number() over (
        partition by order_id order by ingested_at desc nulls last, source desc
    ) = 1

),

products_by_id as (

    select product_id, product_name, category, brand, price
    from products
    qualify row_number() over (
        partition by product_id order by ingested_at desc nulls last, source desc
    ) = 1

),

lines as (

    select
        order_lines.source || ':' || order_lines.record_id as order_line_id,
        order_lines.order_id,
        order_lines.line_number,
        order_lines.product_id,
        order_lines.quantity,
        order_lines.unit_price,
        orders_by_id.ordered_at,
        orders_by_id.status
    from order_lines
    inner join orders_by_id
        on orders_by_id.order_id = order_lines.order_id

),

priced as (

    select
        lines.*,
        price_changes.price as price_at_order
    from lines
    asof left join price_changes
        on price_changes.product_id = lines.product_id
        and price_changes.changed_at <= lines.ordered_at

),

final as (

    select
        priced.order_line_id,
        priced.order_id,
        priced.line_number,
        priced.product_id,
        products_by_id.product_name,
        products_by_id.category,
        products_by_id.brand,
        priced.quantity,
        priced.unit_price,
        coalesce(priced.price_at_order, products_by_id.price) as list_price,
        priced.quantity * priced.unit_price as line_amount,
        priced.ordered_at,
        priced.status
    from priced
    left join products_by_id
        on products_by_id.product_id = priced.product_id

)

select * from final
