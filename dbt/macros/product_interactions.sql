{#-
  A customer's interactions with products and what each is worth: the one definition of
  interest in a product that the features macro (favourite category and brand) and the
  decision marts (category activity, last viewed product) share, so the two never disagree.

  A product view scores 1, an add to cart 2, and each unit bought in a kept order (placed, not
  cancelled, not returned) 3: a purchase says more than a look, a return takes it back.

  Arguments are relations (CTE names) already cut at a cutoff, each with `cutoff_date`:
  `web_events` (customer_id, event_type, product_id, occurred_at), `orders` (placed orders:
  customer_id, order_id, ordered_at, is_returned) and `order_lines` (order_id, product_id,
  quantity). Returns customer_id, cutoff_date, product_id, interaction_type (product_view,
  add_to_cart, purchase), score, occurred_at and order_id (purchases only).
-#}
{% macro product_interactions(web_events, orders, order_lines) -%}
    select
        {{ web_events }}.customer_id,
        {{ web_events }}.cutoff_date,
        {{ web_events }}.product_id,
        {{ web_events }}.event_type as interaction_type,
        case {{ web_events }}.event_type when 'add_to_cart' then 2 else 1 end as score,
        {{ web_events }}.occurred_at,
        cast(null as varchar) as order_id
    from {{ web_events }}
    where {{ web_events }}.product_id is not null
        and {{ web_events }}.event_type in ('product_view', 'add_to_cart')

    union all

    select
        {{ orders }}.customer_id,
        {{ orders }}.cutoff_date,
        {{ order_lines }}.product_id,
        'purchase' as interaction_type,
        3 * greatest(coalesce({{ order_lines }}.quantity, 1), 0) as score,
        {{ orders }}.ordered_at as occurred_at,
        {{ orders }}.order_id
    from {{ orders }}
    inner join {{ order_lines }}
        on {{ order_lines }}.order_id = {{ orders }}.order_id
    where not {{ orders }}.is_returned
{%- endmacro %}
