-- The products each sale of the sales mart covers, at its sale price, with the catalogue's name,
-- category and brand (the offer row's category and brand when the catalogue lacks the product).
with

sales as (

    select sale_id from {{ ref('sales') }}

),

offers as (

    select * from {{ ref('stg_lake__offers') }}
    where product_id is not null

),

products as (

    select product_id, product_name, category, brand
    from {{ ref('products') }}

),

latest_offers as (

    select offers.*
    from offers
    inner join sales on sales.sale_id = offers.sale_id
    qualify row_number() over (
        partition by offers.sale_id, offers.product_id
        order by offers.ingested_at desc nulls last, offers.source desc, offers.record_id
    ) = 1

),

final as (

    select
        latest_offers.sale_id,
        latest_offers.product_id,
        products.product_name,
        coalesce(products.category, latest_offers.category) as category,
        coalesce(products.brand, latest_offers.brand) as brand,
        latest_offers.regular_price,
        latest_offers.sale_price
    from latest_offers
    left join products on products.product_id = latest_offers.product_id

)

select * from final
