-- The identifier-ownership rule lives once (int_identifiers_deduplicated): every value the API
-- can look up names the owner the marts resolve rows to, and every owned key can be looked up.
{{ config(meta={'dagster': {'ref': {'name': 'identifier_lookup'}}}) }}
with

lookup as (

    select
        identifier_type,
        {{ identifier_key('identifier_value') }} as identifier_key,
        customer_id,
        customer_count
    from {{ ref('identifier_lookup') }}

),

owners as (

    select * from {{ ref('int_identifiers_deduplicated') }}

)

select
    coalesce(lookup.identifier_type, owners.identifier_type) as identifier_type,
    lookup.customer_id as lookup_customer_id,
    owners.customer_id as owner_customer_id,
    lookup.customer_count,
    owners.claimant_count
from lookup
full outer join owners
    on owners.identifier_type = lookup.identifier_type
    and owners.identifier_key = lookup.identifier_key
where lookup.customer_id is distinct from owners.customer_id
    or lookup.customer_count is distinct from owners.claimant_count
