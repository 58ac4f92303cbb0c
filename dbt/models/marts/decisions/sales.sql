-- The sales a decision may offer from this snapshot: every sale of the calendar running at some
-- moment of the as-of day or starting within var sales_lookahead_days days after it (so the
-- snapshot built today serves tomorrow's daily email too). Readers pick the sales running at
-- their own now (starts_at <= now < ends_at). One row per sale; the header fields come from
-- the latest version of the sale's offer rows.
{%- set lookahead_days = var('sales_lookahead_days', 2) | int %}
with

offers as (

    select * from {{ ref('stg_lake__offers') }}

),

in_window as (

    select *
    from offers
    where ends_at > cast({{ as_of_date() }} as timestamptz)
        and starts_at <= {{ as_of_ts() }} + interval {{ lookahead_days }} day

),

headers as (

    select sale_id, title, theme, category, brand, discount_percent, starts_at, ends_at
    from in_window
    qualify row_number() over (
        partition by sale_id
        order by ingested_at desc nulls last, source desc, record_id
    ) = 1

),

item_counts as (

    select sale_id, count(distinct product_id) as item_count
    from in_window
    where product_id is not null
    group by sale_id

),

final as (

    select
        headers.sale_id,
        headers.title,
        headers.theme,
        headers.category,
        headers.brand,
        headers.discount_percent,
        headers.starts_at,
        headers.ends_at,
        coalesce(item_counts.item_count, 0) as item_count
    from headers
    left join item_counts on item_counts.sale_id = headers.sale_id

)

select * from final
