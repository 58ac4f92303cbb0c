-- Customer ids retired by merges and the customer id that replaced each.
with

source as (

    -- Optional: a first identity run has merged nothing yet.
    {{ external_or_empty(
        source('identity', 'customer_aliases'),
        {'alias_customer_id': 'varchar', 'customer_id': 'varchar',
         'created_at': 'timestamptz', 'cause': 'varchar'}) }}

),

final as (

    select
        cast(alias_customer_id as varchar) as alias_customer_id,
        cast(customer_id as varchar) as customer_id,
        cast(created_at as timestamptz) as created_at,
        cast(cause as varchar) as cause
    from source
    where created_at is null or created_at <= {{ as_of_ts() }}

)

select * from final
