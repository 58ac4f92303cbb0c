{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
) }}
-- Segment entries and exits, appended by each build: the current members are compared with the
-- state this table left after the previous build (latest event per customer and segment by
-- built_at). Events are dated at the end of the build's as-of day.
with

current_members as (

    select distinct customer_id, segment
    from {{ ref('int_segment_members_unioned') }}

),

{%- if is_incremental() %}

previous_events as (

    select * from {{ this }}

),

previous_members as (

    select customer_id, segment
    from previous_events
    qualify row_number() over (
        partition by customer_id, segment order by built_at desc, event_type desc
    ) = 1
        and event_type = 'entered'

),

{%- else %}

previous_members as (

    select cast(null as varchar) as customer_id, cast(null as varchar) as segment
    where false

),

{%- endif %}

entered as (

    select customer_id, segment, 'entered' as event_type
    from current_members
    anti join previous_members using (customer_id, segment)

),

exited as (

    select customer_id, segment, 'exited' as event_type
    from previous_members
    anti join current_members using (customer_id, segment)

),

changes as (

    select * from entered
    union all
    select * from exited

),

final as (

    select
        md5(concat_ws('|', customer_id, segment, '{{ invocation_id }}')) as membership_event_id,
        customer_id,
        segment,
        event_type,
        {{ as_of_ts() }} as occurred_at,
        '{{ invocation_id }}' as build_id,
        cast('{{ run_started_at.isoformat() }}' as timestamptz) as built_at
    from changes

)

select * from final
