-- One owning customer per identifier value: the platform's one identifier-ownership rule. A
-- value can sit on records of several customers (a household email, a cookie on a shared
-- computer); the owner is the customer with the most records carrying it, then the most
-- recently seen, then the smallest customer_id. Values are matched on identifier_key (trimmed,
-- lower-cased), as rows carry them as written. Rows resolve to customers through this model
-- (macros/resolve.sql) and the API's identifier_lookup mart is this model per exact value, so
-- a lookup finds the customer the marts attribute the identifier's activity to.
with

identifiers as (

    select * from {{ ref('stg_identity__identity_identifiers') }}

),

claims as (

    select
        identifier_type,
        identifier_key,
        customer_id,
        count(*) as record_count,
        max(last_seen_at) as last_seen_at
    from identifiers
    group by identifier_type, identifier_key, customer_id

),

ranked as (

    select
        *,
        count(*) over (partition by identifier_type, identifier_key) as claimant_count,
        row_number() over (
            partition by identifier_type, identifier_key
            order by record_count desc, last_seen_at desc nulls last, customer_id
        ) as claim_rank
    from claims

),

final as (

    select
        identifier_type,
        identifier_key,
        customer_id,
        claimant_count
    from ranked
    where claim_rank = 1

)

select * from final
