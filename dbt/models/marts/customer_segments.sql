-- Current segment members with the time they (last) entered the segment, from
-- segment_membership_history as left by this build.
with

members as (

    select distinct customer_id, segment
    from {{ ref('int_segment_members_unioned') }}

),

history as (

    select * from {{ ref('segment_membership_history') }}

),

last_entries as (

    select
        customer_id,
        segment,
        arg_max(occurred_at, built_at) as entered_at
    from history
    where event_type = 'entered'
    group by customer_id, segment

),

final as (

    select
        members.customer_id,
        members.segment,
        last_entries.entered_at
    from members
    inner join last_entries
        on last_entries.customer_id = members.customer_id
        and last_entries.segment = members.segment

)

select * from final
