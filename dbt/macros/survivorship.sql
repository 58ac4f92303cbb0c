{#- Survivorship: which source's value of an attribute makes the golden record. -#}

{#- Trust rank of a source name (var `cdp_source_trust`, from cdp.yml `trust`); lower wins. -#}
{% macro trust_rank(source_column) -%}
    {%- set trust = var('cdp_source_trust', {}) or {} -%}
    {%- if trust | length == 0 -%}
    100
    {%- else -%}
    case {{ source_column }}
        {%- for source_name, rank in trust.items() %}
        when '{{ source_name }}' then {{ rank | int }}
        {%- endfor %}
        else 100
    end
    {%- endif -%}
{%- endmacro %}

{#-
  Three aggregate columns for one attribute: the surviving value, the source it came from and
  when that source observed it. Among the rows where the attribute is not null, the first by
  `order_by` wins; callers pass the survivorship order (e.g. trust rank, then most recent).
-#}
{% macro survive(attribute, order_by) -%}
    first({{ attribute }} order by {{ order_by }}) filter (where {{ attribute }} is not null)
        as {{ attribute }},
    first(source order by {{ order_by }}) filter (where {{ attribute }} is not null)
        as {{ attribute }}_source,
    first(observed_at order by {{ order_by }}) filter (where {{ attribute }} is not null)
        as {{ attribute }}_updated_at
{%- endmacro %}
