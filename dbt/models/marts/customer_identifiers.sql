-- Every identifier of every customer (from the identity outputs), plus the customer ids that
-- merges retired into each customer (identifier_type = 'alias_customer_id'; chains of merges
-- resolved to the survivor by customer_aliases).
with

identifiers as (

    select * from {{ ref('stg_identity__identity_identifiers') }}

),

aliases as (

    select * from {{ ref('customer_aliases') }}

),

identifier_rows as (

    select
        customer_id,
        identifier_type,
        identifier_value,
        source,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at,
        count(*) as record_count
    from identifiers
    group by customer_id, identifier_type, identifier_value, source

),

alias_rows as (

    select
        customer_id,
        'alias_customer_id' as identifier_type,
        alias_customer_id as identifier_value,
        'identity' as source,
        min(created_at) as first_seen_at,
        max(created_at) as last_seen_at,
        0 as record_count
    from aliases
    group by customer_id, alias_customer_id

),

unioned as (

    select * from identifier_rows
    union all
    select * from alias_rows

),

final as (

    select
        md5(concat_ws('|', customer_id, identifier_type, identifier_value, source))
            as customer_identifier_id,
        customer_id,
        identifier_type,
        identifier_value,
        source,
        first_seen_at,
        last_seen_at,
        cast(record_count as bigint) as record_count
    from unioned

)

select * from final
