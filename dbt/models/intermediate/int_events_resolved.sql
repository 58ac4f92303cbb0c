-- Behavioural events with the customer they belong to (see macros/resolve.sql for the order in
-- which a row's identifiers are tried).
{%- set match_columns = identifier_match_columns('events', ['email']) %}
with

events as (

    select * from {{ ref('stg_lake__events') }}

),

resolved as (

    {{ resolved_customer_ids(ref('stg_lake__events'), match_columns) }}

),

final as (

    select
        events.source || ':' || events.record_id as event_id,
        resolved.customer_id,
        resolved.matched_on as resolved_by,
        events.*
    from events
    left join resolved
        on {{ identifier_match_condition('events', 'resolved', match_columns) }}

)

select * from final
