-- Deliveries of the decision log (lake/_decisions/deliveries/<day>.parquet); empty until decided.
with

source as (

    {{ external_or_empty(
        source('decisions', 'deliveries'),
        {'delivery_id': 'bigint', 'decision_id': 'varchar', 'customer_id': 'varchar',
         'placement': 'varchar', 'channel': 'varchar', 'policy_version': 'varchar',
         'experiment': 'varchar', 'arm': 'varchar', 'is_holdout': 'boolean',
         'decided_at': 'timestamptz', 'expires_at': 'timestamptz', 'theme': 'varchar',
         'delivered_at': 'timestamptz', 'is_sent': 'boolean', 'reasons': 'varchar[]'}) }}

),

final as (

    select
        cast(delivery_id as bigint) as delivery_id,
        cast(decision_id as varchar) as decision_id,
        cast(customer_id as varchar) as customer_id,
        cast(placement as varchar) as placement,
        cast(channel as varchar) as channel,
        cast(policy_version as varchar) as policy_version,
        cast(experiment as varchar) as experiment,
        cast(arm as varchar) as arm,
        coalesce(cast(is_holdout as boolean), false) as is_holdout,
        cast(decided_at as timestamptz) as decided_at,
        cast(expires_at as timestamptz) as expires_at,
        cast(theme as varchar) as theme,
        cast(delivered_at as timestamptz) as delivered_at,
        coalesce(cast(is_sent as boolean), false) as is_sent,
        cast(reasons as varchar[]) as reasons
    from source
    where decision_id is not null and channel is not null

)

select * from final
