-- Unsubscribed from email: the latest email unsubscribe is not followed by an email consent
-- grant (consents sources) up to the as-of date.
with

email_events as (

    select * from {{ ref('int_email_events_resolved') }}
    where customer_id is not null and event_type = 'unsubscribe'

),

consents as (

    select * from {{ ref('int_consents_resolved') }}
    where customer_id is not null and channel = 'email' and is_granted

),

unsubscribes as (

    select customer_id, max(occurred_at) as unsubscribed_at
    from email_events
    group by customer_id

),

regrants as (

    select customer_id, max(changed_at) as granted_at
    from consents
    group by customer_id

),

final as (

    select unsubscribes.customer_id
    from unsubscribes
    left join regrants on regrants.customer_id = unsubscribes.customer_id
    where regrants.granted_at is null or regrants.granted_at < unsubscribes.unsubscribed_at

)

select * from final
