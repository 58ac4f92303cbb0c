-- customer_segments holds exactly the members the segment models return now, and the history's
-- latest event of every current member is an entry.
{{ config(meta={'dagster': {'ref': {'name': 'customer_segments'}}}) }}
with

members as (

    select customer_id, segment from {{ ref('int_segment_members_unioned') }}

),

published as (

    select customer_id, segment from {{ ref('customer_segments') }}

),

latest as (

    select customer_id, segment, event_type
    from {{ ref('segment_membership_history') }}
    qualify row_number() over (
        partition by customer_id, segment order by built_at desc
    ) = 1

)

(select *, 'missing from customer_segments' as problem from members except select *, 'missing from customer_segments' from published)
union all
(select *, 'not a current member' as problem from published except select *, 'not a current member' from members)
union all
select latest.customer_id, latest.segment, 'current member whose latest event is an exit'
from latest
inner join members using (customer_id, segment)
where latest.event_type <> 'entered'
