-- Outcomes reported against decision ids (lake/_decisions/outcomes/<day>.parquet); empty until any.
with

source as (

    {{ external_or_empty(
        source('decisions', 'outcomes'),
        {'decision_id': 'varchar', 'customer_id': 'varchar', 'placement': 'varchar',
         'channel': 'varchar', 'kind': 'varchar', 'occurred_at': 'timestamptz',
         'revenue': 'double'}) }}

),

final as (

    select
        cast(decision_id as varchar) as decision_id,
        cast(customer_id as varchar) as customer_id,
        cast(placement as varchar) as placement,
        cast(channel as varchar) as channel,
        lower(cast(kind as varchar)) as kind,
        cast(occurred_at as timestamptz) as occurred_at,
        cast(revenue as double) as revenue
    from source
    where decision_id is not null and kind is not null

)

select * from final
