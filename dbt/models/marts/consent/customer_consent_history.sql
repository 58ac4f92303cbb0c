-- Every consent statement of every customer and channel, oldest first: people records (their
-- has_<channel>_consent at the record's time), consents sources, email unsubscribes (email
-- withdrawn when it happened) and the decision log (unsubscribe outcomes, real-time consent
-- events; its ids of merged customers follow the merge to the survivor).
{%- set people_channels = ['email', 'sms', 'push'] %}
with

people as (

    select * from {{ ref('int_people_resolved') }}
    where customer_id is not null

),

consent_events as (

    select * from {{ ref('int_consents_resolved') }}
    where customer_id is not null

),

email_events as (

    select * from {{ ref('int_email_events_resolved') }}
    where customer_id is not null and event_type = 'unsubscribe'

),

decision_log as (

    select * from {{ ref('stg_decisions__consent_events') }}

),

aliases as (

    select * from {{ ref('stg_identity__customer_aliases') }}

),

people_statements as (

    {%- for channel in people_channels %}
    select
        customer_id,
        '{{ channel }}' as channel,
        has_{{ channel }}_consent as is_granted,
        source,
        observed_at as changed_at,
        trust_rank,
        source || ':' || record_id as statement_key
    from people
    where has_{{ channel }}_consent is not null and observed_at is not null
    {{ 'union all' if not loop.last }}
    {%- endfor %}

),

source_statements as (

    select
        customer_id,
        lower(channel) as channel,
        is_granted,
        source,
        changed_at,
        trust_rank,
        consent_event_id as statement_key
    from consent_events
    where channel is not null and is_granted is not null and changed_at is not null

),

unsubscribe_statements as (

    select
        customer_id,
        'email' as channel,
        false as is_granted,
        source,
        occurred_at as changed_at,
        {{ trust_rank('source') }} as trust_rank,
        email_event_id as statement_key
    from email_events
    where occurred_at is not null

),

decision_log_statements as (

    select
        coalesce(aliases.customer_id, decision_log.customer_id) as customer_id,
        decision_log.channel,
        decision_log.is_granted,
        decision_log.source,
        decision_log.changed_at,
        0 as trust_rank,
        'decisions:' || decision_log.source as statement_key
    from decision_log
    left join aliases
        on aliases.alias_customer_id = decision_log.customer_id

),

unioned as (

    select * from people_statements
    union all
    select * from source_statements
    union all
    select * from unsubscribe_statements
    union all
    select * from decision_log_statements

),

-- A statement seen twice (a replayed real-time event, a record version re-read) counts once.
deduplicated as (

    select distinct customer_id, channel, is_granted, source, changed_at, trust_rank, statement_key
    from unioned

),

final as (

    select
        md5(
            customer_id || '|' || channel || '|' || statement_key || '|'
            || strftime(changed_at at time zone 'UTC', '%Y-%m-%dT%H:%M:%S.%f') || '|'
            || cast(is_granted as varchar)
        ) as consent_statement_id,
        customer_id,
        channel,
        is_granted,
        source,
        changed_at,
        cast(trust_rank as integer) as trust_rank,
        -- the order of statements: latest wins, then the most trusted source, then the key
        row_number() over (
            partition by customer_id, channel
            order by changed_at, trust_rank desc, source desc, statement_key desc
        ) as statement_number
    from deduplicated

)

select * from final
