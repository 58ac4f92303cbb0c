{#-
  Segment models are the models in models/segments/ (fqn[1] == 'segments'). Each returns
  customer_id, and carries `meta: {name, description, owner}` in _segments__models.yml.
-#}

{#- Names of the segment models in the project graph (run time only; empty while parsing). -#}
{% macro segment_models_in_graph() -%}
    {%- set found = [] -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.resource_type == 'model' and node.package_name == project_name
                and node.fqn | length > 2 and node.fqn[1] == 'segments' -%}
                {%- do found.append(node) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- return(found | sort(attribute='name')) -}}
{%- endmacro %}

{#-
  The segment catalogue: [{model, name, description, owner}] for every segment model, taken from
  each model's YAML meta at compile time. Fails when a segment model is missing from var
  `cdp_segment_models` (its members would otherwise silently stay out of customer_segments).
-#}
{% macro segment_catalog() -%}
    {%- set listed = var('cdp_segment_models', []) -%}
    {%- set catalog = [] -%}
    {%- for node in segment_models_in_graph() -%}
        {%- if node.name not in listed -%}
            {{ exceptions.raise_compiler_error(
                "segment model '" ~ node.name ~ "' is not in var cdp_segment_models " ~ listed
                ~ ": build through Dagster (`cdp run`) or `make dbt-build`, which list "
                ~ "models/segments/ for you, or pass --vars with the full list") }}
        {%- endif -%}
        {%- set meta = node.config.meta if node.config.meta else (node.meta or {}) -%}
        {%- do catalog.append({
            'model': node.name,
            'name': meta.get('name') or node.name,
            'description': meta.get('description') or node.description or '',
            'owner': meta.get('owner') or '',
        }) -%}
    {%- endfor -%}
    {{- return(catalog) -}}
{%- endmacro %}

{#- A SQL string literal (single quotes doubled). -#}
{% macro sql_string(value) -%}
    '{{ (value or '') | string | replace("'", "''") }}'
{%- endmacro %}
