-- Customer id events (created, merged, split, retired) up to the as-of date.
with

source as (

    -- Optional: written by the first identity run; absent in worlds built without it.
    {{ external_or_empty(
        source('identity', 'customer_id_history'),
        {'occurred_at': 'timestamptz', 'run_id': 'varchar', 'event_type': 'varchar',
         'customer_id': 'varchar', 'related_customer_id': 'varchar', 'cause': 'varchar',
         'file_row_number': 'bigint'}) }}

),

final as (

    select
        cast(file_row_number as bigint) as event_number,
        cast(occurred_at as timestamptz) as occurred_at,
        cast(run_id as varchar) as run_id,
        cast(event_type as varchar) as event_type,
        cast(customer_id as varchar) as customer_id,
        cast(related_customer_id as varchar) as related_customer_id,
        cast(cause as varchar) as cause
    from source
    where occurred_at is null or occurred_at <= {{ as_of_ts() }}

)

select * from final
