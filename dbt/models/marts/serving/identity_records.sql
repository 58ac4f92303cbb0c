-- The source records of every customer, for the API's identity explanations: the same records
-- (the identity map) the customers mart is built from, so every customer has its records.
with

identity_map as (

    select * from {{ ref('stg_identity__identity_map') }}

),

final as (

    select
        record_uid,
        customer_id,
        source,
        record_id,
        cluster_size
    from identity_map

)

select * from final
