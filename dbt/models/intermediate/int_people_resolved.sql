-- People records with their customer_id (identity_map on source + record_id; a record the last
-- identity run has not seen falls back to its identifiers), trust rank and observation time.
-- The identity attributes are identity's reading of the record (stg_identity__identity_attributes):
-- email validated and lower-cased, phone E.164, birth date and country normalized, names and
-- address as written; junk and invalid values are null, so survivorship passes over them. The
-- phone as the source wrote it is kept as phone_as_written.
{%- set match_columns = identifier_match_columns('people', ['email']) %}
{%- set attributes = [
    'email', 'phone', 'first_name', 'last_name', 'full_name', 'birth_date',
    'street_address', 'postal_code', 'city', 'region', 'country'] %}
with

people as (

    select * from {{ ref('stg_lake__people') }}

),

identity_map as (

    select * from {{ ref('stg_identity__identity_map') }}

),

identity_attributes as (

    select * from {{ ref('stg_identity__identity_attributes') }}

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
        people.* exclude ({{ attributes | join(', ') }}),
        {%- for attribute in attributes %}
        identity_attributes.{{ attribute }},
        {%- endfor %}
        people.phone as phone_as_written,
        coalesce(people.updated_at, people.signed_up_at, people.ingested_at) as observed_at,
        {{ trust_rank('people.source') }} as trust_rank
    from people
    left join identity_map
        on identity_map.source = people.source
        and identity_map.record_id = people.record_id
    left join identity_attributes
        on identity_attributes.source = people.source
        and identity_attributes.record_id = people.record_id
    left join by_identifier
        on {{ identifier_match_condition('people', 'by_identifier', match_columns) }}

)

select * from final
