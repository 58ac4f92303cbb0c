{#-
  Reading the lake: one dbt source per source *kind* (`source('lake', '<kind>')`), whose
  external_location is read_parquet over every glob of that kind (var `cdp_lake_globs`). A kind
  with no globs, or whose globs match no file yet, reads as an empty relation with the lake's
  columns, so every model compiles for any cdp.yml.
-#}

{#- The quoted file globs inside a dbt-duckdb external relation (read_parquet([...], ...)). -#}
{% macro external_globs(relation) -%}
    {%- set external = relation.external if relation.external is defined else none -%}
    {%- if not external -%}{{ return([]) }}{%- endif -%}
    {%- set bracket = modules.re.search('\[(.*)\]', external) -%}
    {%- set inside = bracket.group(1) if bracket else external -%}
    {{- return(modules.re.findall("'([^']+)'", inside)) -}}
{%- endmacro %}

{#- Whether any glob of an external relation matches a file (asked of DuckDB at run time). -#}
{% macro external_has_files(relation) -%}
    {%- if not execute -%}{{ return(true) }}{%- endif -%}
    {%- set globs = external_globs(relation) -%}
    {%- if globs | length == 0 -%}{{ return(false) }}{%- endif -%}
    {%- set parts = [] -%}
    {%- for glob in globs -%}
        {%- do parts.append("select count(*) as n from glob('" ~ glob ~ "')") -%}
    {%- endfor -%}
    {%- set result = run_query('select sum(n) from (' ~ parts | join(' union all ') ~ ')') -%}
    {{- return(result.columns[0].values()[0] | int > 0) -}}
{%- endmacro %}

{#- A select of typed nulls returning no rows: the empty stand-in for a missing relation. -#}
{% macro empty_relation(columns) -%}
    select
    {%- for name, data_type in columns.items() %}
        cast(null as {{ data_type }}) as "{{ name }}"{{ "," if not loop.last }}
    {%- endfor %}
    where false
{%- endmacro %}

{#- Lake columns of a kind: lineage columns plus its canonical fields, with DuckDB types. -#}
{% macro lake_columns(kind) -%}
    {%- set kinds = var('cdp_kind_columns') -%}
    {%- if kind not in kinds -%}
        {{ exceptions.raise_compiler_error("unknown source kind '" ~ kind ~ "'; known: " ~ (kinds.keys() | list | join(', '))) }}
    {%- endif -%}
    {%- set columns = {} -%}
    {%- do columns.update(var('cdp_lake_lineage_columns')) -%}
    {%- do columns.update(kinds[kind]) -%}
    {%- do columns.update({'_lake_file': 'varchar'}) -%}
    {{- return(columns) -}}
{%- endmacro %}

{#- The rows of every source of a kind, or an empty typed relation when there are none yet. -#}
{% macro lake_source(kind) -%}
    {%- set relation = source('lake', kind) -%}
    {%- if external_has_files(relation) -%}
    select * from {{ relation }}
    {%- else -%}
    {{ empty_relation(lake_columns(kind)) }}
    {%- endif -%}
{%- endmacro %}

{#-
  Named identifier columns (loyalty_id, account_id, cookie_id, ...) present in a kind's Parquet:
  every column that is neither lineage nor a canonical field. Sorted for stable output.
-#}
{% macro lake_identifier_columns(kind) -%}
    {%- set relation = source('lake', kind) -%}
    {%- if not execute or not external_has_files(relation) -%}{{ return([]) }}{%- endif -%}
    {%- set known = lake_columns(kind) -%}
    {%- set described = run_query('describe select * from ' ~ relation) -%}
    {%- set names = [] -%}
    {%- for name in described.columns[0].values() -%}
        {%- if name not in known -%}{%- do names.append(name) -%}{%- endif -%}
    {%- endfor -%}
    {{- return(names | sort) -}}
{%- endmacro %}

{#- Identifier columns of a kind as text, one `, "<name>"` item per column (nothing if none). -#}
{% macro select_identifier_columns(kind) -%}
    {%- for name in lake_identifier_columns(kind) %}
        , {{ clean_text('"' ~ name ~ '"') }} as "{{ name }}"
    {%- endfor %}
{%- endmacro %}

{#- The source name of a lake row: the folder its Parquet part lives in (lake/<source>/part-*). -#}
{% macro lake_source_name(file_column) -%}
    regexp_extract({{ file_column }}, '([^/\\]+)[/\\][^/\\]+$', 1)
{%- endmacro %}

{#- Latest version of each record: latest ingest, then latest file and line. -#}
{% macro latest_version(partition_by) -%}
    qualify row_number() over (
        partition by {{ partition_by }}
        order by ingested_at desc nulls last, source_file desc nulls last, source_line desc nulls last
    ) = 1
{%- endmacro %}

{#- Fail with a hint when a required external input (e.g. the identity outputs) is missing. -#}
{% macro require_external(relation, hint) -%}
    {%- if execute and not external_has_files(relation) -%}
        {{ exceptions.raise_compiler_error(
            "no file for " ~ relation ~ ": " ~ hint) }}
    {%- endif -%}
    select * from {{ relation }}
{%- endmacro %}

{#- An external relation, or an empty typed relation while its file does not exist yet. -#}
{% macro external_or_empty(relation, columns) -%}
    {%- if external_has_files(relation) -%}
    select * from {{ relation }}
    {%- else -%}
    {{ empty_relation(columns) }}
    {%- endif -%}
{%- endmacro %}
