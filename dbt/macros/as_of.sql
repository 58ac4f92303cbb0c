{#- The as-of date every model reads data up to (var `as_of`, default: the run's start date). -#}

{% macro as_of_string() -%}
    {%- set raw = var('as_of', none) -%}
    {%- if raw is none or (raw | string | trim) == '' -%}
        {%- set raw = run_started_at.strftime('%Y-%m-%d') -%}
    {%- endif -%}
    {%- set raw = raw | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', raw) -%}
        {{ exceptions.raise_compiler_error(
            "var 'as_of' must be a date as YYYY-MM-DD (e.g. --vars '{as_of: 2025-01-31}'), got '"
            ~ raw ~ "'") }}
    {%- endif -%}
    {{- raw -}}
{%- endmacro %}

{#- The as-of day as a DATE literal; recency in days is measured from it. -#}
{% macro as_of_date() -%}
    date '{{ as_of_string() }}'
{%- endmacro %}

{#- The last instant of the as-of day (UTC): data with a timestamp after it is invisible. -#}
{% macro as_of_ts() -%}
    timestamptz '{{ as_of_string() }} 23:59:59.999999+00'
{%- endmacro %}

{#- Whole days from a timestamp's UTC date to the as-of date (null stays null). -#}
{% macro days_before_as_of(ts) -%}
    ({{ as_of_date() }} - cast({{ ts }} as date))
{%- endmacro %}

{#- True when a timestamp falls in the N days ending with the as-of day. -#}
{% macro within_days(ts, days) -%}
    ({{ ts }} > {{ as_of_ts() }} - interval {{ days | int }} day and {{ ts }} <= {{ as_of_ts() }})
{%- endmacro %}
