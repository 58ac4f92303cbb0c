-- Email events with the customer of the recipient (named identifiers, then email address).
{%- set match_columns = identifier_match_columns('email_events', ['email']) %}
with

email_events as (

    select * from {{ ref('stg_lake__email_events') }}

),

resolved as (

    {{ resolved_customer_ids(ref('stg_lake__email_events'), match_columns) }}

),

final as (

    select
        email_events.source || ':' || email_events.record_id as email_event_id,
        resolved.customer_id,
        resolved.matched_on as resolved_by,
        email_events.*
    from email_events
    left join resolved
        on {{ identifier_match_condition('email_events', 'resolved', match_columns) }}

)

select * from final
