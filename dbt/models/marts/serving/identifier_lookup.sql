-- Each identifier value -> the customer that owns it, by the one ownership rule
-- (int_identifiers_deduplicated), so a lookup finds the customer the marts attribute the
-- identifier's activity to. customer_count > 1 flags a value several customers share.
with

identifiers as (

    select * from {{ ref('stg_identity__identity_identifiers') }}

),

owners as (

    select * from {{ ref('int_identifiers_deduplicated') }}

),

identifier_values as (

    select distinct
        identifier_type,
        identifier_value,
        identifier_key
    from identifiers

),

final as (

    select
        identifier_values.identifier_type,
        identifier_values.identifier_value,
        owners.customer_id,
        cast(owners.claimant_count as bigint) as customer_count
    from identifier_values
    inner join owners
        on owners.identifier_type = identifier_values.identifier_type
        and owners.identifier_key = identifier_values.identifier_key

)

select * from final
