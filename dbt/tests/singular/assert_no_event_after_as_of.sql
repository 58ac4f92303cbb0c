-- Nothing after the end of the as-of day may reach the timeline or the traits. A check of
-- customer_traits: the later of its two models (the dbt stage that builds it runs this test).
{{ config(meta={'dagster': {'ref': {'name': 'customer_traits'}}}) }}
select event_id, occurred_at
from {{ ref('customer_events') }}
where occurred_at > {{ as_of_ts() }}

union all

select customer_id, last_active_at
from {{ ref('customer_traits') }}
where last_active_at > {{ as_of_ts() }}
