-- People records with their customer_id (identity_map on source + record_id; a record the last
-- identity run has not seen falls back to its identifiers), trust rank and observation time.
{%- set match_columns = identifier_match_columns('people', ['email']) %}
with

people as (

    select * from {{ ref('stg_lake__people') }}

),

identity_map as (

    select * from {{ ref('stg_identity__identity_map') }}

),

by_identifier as (

    {{ resolved_customer_ids(ref('stg_lake__people'), match_columns) }}

),

final as (

    select
        coalesce(identity_map.customer_id, by_identifier.customer_id) as customer_id,
        case
            when identity_map.customer_id is not null then 'identity_map'
            else by_identifier.matched_on
        end as resolved_by,
        people.*,
        coalesce(people.updated_at, people.signed_up_at, people.ingested_at) as observed_at,
        {{ trust_rank('people.source') }} as trust_rank
    from people
    left join identity_map
        on identity_map.source = people.source
        and identity_map.record_id = people.record_id
    left join by_identifier
        on {{ identifier_match_condition('people', 'by_identifier', match_columns) }}

)

select * from final
