-- The product catalogue as the recommendations and the API see it: the latest catalogue row of
-- each product over every products source, and whether it is in range (has a positive price;
-- the catalogue carries no discontinued flag, a product without a price is not on sale).
with

products as (

    select * from {{ ref('stg_lake__products') }}

),

latest as (

    select product_id, product_name, category, brand, price
    from products
    where product_id is not null
    qualify row_number() over (
        partition by product_id order by ingested_at desc nulls last, source desc
    ) = 1

),

final as (

    select
        product_id,
        product_name,
        category,
        brand,
        price,
        coalesce(price > 0, false) as is_in_range
    from latest

)

select * from final
