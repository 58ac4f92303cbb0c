-- Each people record's attributes as identity read them (identity_attributes.parquet): email,
-- phone (E.164), birth date and country in identity's normalized form, names and address as
-- written; a value identity found invalid or junk is null, with <attribute>_status saying which.
{%- set attributes = [
    'email', 'phone', 'first_name', 'last_name', 'full_name', 'birth_date',
    'street_address', 'postal_code', 'city', 'region', 'country'] %}
with

source as (

    {{ require_external(source('identity', 'identity_attributes'),
        'run the identity assets first (`cdp run`), they write lake/identity/') }}

),

final as (

    select
        cast(record_uid as varchar) as record_uid,
        cast(source as varchar) as source,
        cast(record_id as varchar) as record_id,
        {%- for attribute in attributes %}
        {%- if attribute == 'birth_date' %}
        try_cast({{ attribute }} as date) as {{ attribute }},
        {%- else %}
        cast({{ attribute }} as varchar) as {{ attribute }},
        {%- endif %}
        cast({{ attribute }}_status as varchar) as {{ attribute }}_status
        {{- "," if not loop.last }}
        {%- endfor %}
    from source

)

select * from final
