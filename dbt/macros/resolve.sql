{#-
  Joining rows (events, orders, email events, ...) to customers through the identity outputs.
  A row may carry several identifiers (account_id, email, cookie_id, ...): each is looked up in
  int_identifiers_deduplicated, and the first that resolves wins, in this order: person
  identifiers (any named identifier not listed in var `cdp_device_identifiers`, alphabetically),
  then the given attributes (e.g. email), then device identifiers (in the var's order). So a
  login on a shared computer belongs to the account that logged in, not to the cookie's owner.
-#}

{#- Identifier columns of a staged kind, in resolution priority order. -#}
{% macro identifier_match_columns(kind, attributes=[]) -%}
    {%- set devices = var('cdp_device_identifiers', []) -%}
    {%- set named = lake_identifier_columns(kind) -%}
    {%- set person = [] -%}
    {%- set device = [] -%}
    {%- for name in named -%}
        {%- if name in devices -%}{%- do device.append(name) -%}{%- else -%}{%- do person.append(name) -%}{%- endif -%}
    {%- endfor -%}
    {%- set ordered_devices = [] -%}
    {%- for name in devices -%}
        {%- if name in device -%}{%- do ordered_devices.append(name) -%}{%- endif -%}
    {%- endfor -%}
    {{- return(person + attributes + ordered_devices) -}}
{%- endmacro %}

{#-
  One row per distinct combination of the `columns` values in `relation` that resolves, with
  customer_id and matched_on (the column that resolved it), by the priority of `columns` (see
  above); ties go to the smaller customer_id. Resolving distinct combinations instead of rows
  keeps the lookups small (millions of events share a few hundred thousand cookies); join the
  rows back with identifier_match_condition().
-#}
{% macro resolved_customer_ids(relation, columns) -%}
    {%- set owners = ref('int_identifiers_deduplicated') -%}
    {%- if columns | length == 0 -%}
    select cast(null as varchar) as customer_id, cast(null as varchar) as matched_on
    where false
    {%- else -%}
    {%- set quoted = [] -%}
    {%- for column in columns -%}{%- do quoted.append('"' ~ column ~ '"') -%}{%- endfor -%}
    with keys as (

        select distinct {{ quoted | join(', ') }} from {{ relation }}

    ),

    candidates as (
        {%- for column in columns %}

        select
            keys.*,
            owners.customer_id,
            '{{ column }}' as matched_on,
            {{ loop.index }} as match_priority
        from keys
        inner join {{ owners }} as owners
            on owners.identifier_type = '{{ column }}'
            and owners.identifier_key = {{ identifier_key('keys."' ~ column ~ '"') }}
        {{ "union all" if not loop.last }}
        {%- endfor %}

    )

    select * exclude (match_priority)
    from candidates
    qualify row_number() over (
        partition by {{ quoted | join(', ') }} order by match_priority, customer_id
    ) = 1
    {%- endif -%}
{%- endmacro %}

{#- Join condition between rows and resolved_customer_ids() output (null matches null). -#}
{% macro identifier_match_condition(rows, resolved, columns) -%}
    {%- if columns | length == 0 -%}
    false
    {%- else -%}
    {%- for column in columns -%}
    {{ rows }}."{{ column }}" is not distinct from {{ resolved }}."{{ column }}"
    {{- " and " if not loop.last }}
    {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
