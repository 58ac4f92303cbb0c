-- Active before (an order, a web event or an email open or click), nothing in the last 60 days.
select customer_id
from {{ ref('customer_traits') }}
where last_active_at is not null
    and last_active_at <= {{ as_of_ts() }} - interval 60 day
