-- More than 3 orders placed (not cancelled) in the 30 days up to the as-of date.
select customer_id
from {{ ref('customer_traits') }}
where order_count_30d > 3
