-- More than 10 product views and no order placed in the 30 days up to the as-of date.
select customer_id
from {{ ref('customer_traits') }}
where product_view_count_30d > 10
    and order_count_30d = 0
