-- Merges and id events after the end of the as-of day must not reach the snapshot: a customer
-- merged later is still separate in a build as of an earlier date.
{{ config(meta={'dagster': {'ref': {'name': 'customer_aliases'}}}) }}
select alias_customer_id as customer_id, created_at as changed_at
from {{ ref('customer_aliases') }}
where created_at > {{ as_of_ts() }}

union all

select customer_id, occurred_at
from {{ ref('customer_id_history') }}
where occurred_at > {{ as_of_ts() }}
