-- The golden record: one row per customer_id of the identity map. Survivorship rules are
-- documented in _marts__models.yml. Attribute values are identity's reading of each record
-- (int_people_resolved): E.164 phones, validated emails, junk and invalid values already null.
{%- set attributes = [
    'email', 'phone', 'first_name', 'last_name', 'full_name', 'birth_date',
    'street_address', 'postal_code', 'city', 'region', 'country'] %}
{%- set consent_attributes = ['has_email_consent', 'has_sms_consent', 'has_push_consent'] %}

with

identity_map as (

    select * from {{ ref('stg_identity__identity_map') }}

),

people as (

    select * from {{ ref('int_people_resolved') }}
    where customer_id is not null

),

consent_events as (

    select * from {{ ref('int_consents_resolved') }}
    where customer_id is not null

),

customer_ids as (

    select
        customer_id,
        count(*) as record_count,
        count(distinct source) as source_count
    from identity_map
    group by customer_id

),

attributes_survived as (

    select
        customer_id,
        {%- for attribute in attributes %}
        {{ survive(attribute, 'trust_rank, observed_at desc nulls last, source, record_id') }},
        {%- endfor %}
        min(signed_up_at) as signed_up_at,
        count(*) as profile_record_count
    from people
    group by customer_id

),

-- Consent statements from people records and from consent events, one column per channel.
consent_statements as (

    select
        customer_id, source, record_id, observed_at, trust_rank,
        has_email_consent, has_sms_consent, has_push_consent
    from people

    union all

    select
        customer_id,
        source,
        record_id,
        changed_at as observed_at,
        trust_rank,
        case when channel = 'email' then is_granted end as has_email_consent,
        case when channel = 'sms' then is_granted end as has_sms_consent,
        case when channel = 'push' then is_granted end as has_push_consent
    from consent_events

),

consents_survived as (

    select
        customer_id,
        {%- for attribute in consent_attributes %}
        {{ survive(attribute, 'observed_at desc nulls last, trust_rank, source, record_id') }}
        {{- "," if not loop.last }}
        {%- endfor %}
    from consent_statements
    group by customer_id

),

final as (

    select
        customer_ids.customer_id,
        {%- for attribute in attributes %}
        attributes_survived.{{ attribute }},
        attributes_survived.{{ attribute }}_source,
        attributes_survived.{{ attribute }}_updated_at,
        {%- endfor %}
        {%- for attribute in consent_attributes %}
        coalesce(consents_survived.{{ attribute }}, false) as {{ attribute }},
        consents_survived.{{ attribute }}_source,
        consents_survived.{{ attribute }}_updated_at,
        {%- endfor %}
        attributes_survived.signed_up_at,
        coalesce(attributes_survived.profile_record_count, 0) = 0 as is_anonymous,
        coalesce(attributes_survived.profile_record_count, 0) as profile_record_count,
        customer_ids.record_count,
        customer_ids.source_count
    from customer_ids
    left join attributes_survived
        on attributes_survived.customer_id = customer_ids.customer_id
    left join consents_survived
        on consents_survived.customer_id = customer_ids.customer_id

)

select * from final
