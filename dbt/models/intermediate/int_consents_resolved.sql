-- Consent changes with the customer they belong to (named identifiers, then email address).
{%- set match_columns = identifier_match_columns('consents', ['email']) %}
with

consents as (

    select * from {{ ref('stg_lake__consents') }}

),

resolved as (

    {{ resolved_customer_ids(ref('stg_lake__consents'), match_columns) }}

),

final as (

    select
        consents.source || ':' || consents.record_id as consent_event_id,
        resolved.customer_id,
        consents.*,
        {{ trust_rank('consents.source') }} as trust_rank
    from consents
    left join resolved
        on {{ identifier_match_condition('consents', 'resolved', match_columns) }}

)

select * from final
