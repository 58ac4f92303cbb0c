-- Consent changes of the decision log (lake/_decisions/consent_events/<day>.parquet): unsubscribe
-- outcomes, recordConsent calls and real-time `Consent Updated` events; empty until any.
with

source as (

    {{ external_or_empty(
        source('decisions', 'consent_events'),
        {'customer_id': 'varchar', 'channel': 'varchar', 'is_granted': 'boolean',
         'changed_at': 'timestamptz', 'source': 'varchar'}) }}

),

-- A statement the log holds twice (a real-time event applied again after a crash of the stream
-- processor, before its offset commit) is one statement.
final as (

    select distinct
        cast(customer_id as varchar) as customer_id,
        lower(cast(channel as varchar)) as channel,
        cast(is_granted as boolean) as is_granted,
        cast(changed_at as timestamptz) as changed_at,
        cast(source as varchar) as source
    from source
    where customer_id is not null and channel is not null and is_granted is not null
        and changed_at is not null and changed_at <= {{ as_of_ts() }}

)

select * from final
