-- Email events with the customer of the recipient (named identifiers, then email address, then
-- the identity record of the address as the ESP wrote it: identity corrects typos such as
-- gmial.com in its normalized identifiers, so the raw address only matches its own record).
{%- set match_columns = identifier_match_columns('email_events', ['email']) %}
with

email_events as (

    select * from {{ ref('stg_lake__email_events') }}

),

resolved as (

    {{ resolved_customer_ids(ref('stg_lake__email_events'), match_columns) }}

),

address_records as (

    select
        source,
        lower(record_id) as record_key,
        min(customer_id) as customer_id
    from {{ ref('stg_identity__identity_map') }}
    where record_id like 'email:%'
    group by source, lower(record_id)

),

final as (

    select
        email_events.source || ':' || email_events.record_id as email_event_id,
        coalesce(resolved.customer_id, address_records.customer_id) as customer_id,
        case
            when resolved.customer_id is not null then resolved.matched_on
            when address_records.customer_id is not null then 'identity_record'
        end as resolved_by,
        email_events.*
    from email_events
    left join resolved
        on {{ identifier_match_condition('email_events', 'resolved', match_columns) }}
    left join address_records
        on address_records.source = email_events.source
        and address_records.record_key = 'email:' || email_events.email

)

select * from final
