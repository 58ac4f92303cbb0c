{#- Column cleaning shared by staging models: cleaning only, no business rules. -#}

{#- Trimmed text; empty strings become null. -#}
{% macro clean_text(column) -%}
    nullif(trim(cast({{ column }} as varchar)), '')
{%- endmacro %}

{#- Lower-cased trimmed text, for codes compared case-insensitively (event types, statuses). -#}
{% macro clean_code(column) -%}
    lower({{ clean_text(column) }})
{%- endmacro %}

{#- Lower-cased trimmed email; values without exactly one '@' are not emails and become null. -#}
{% macro clean_email(column) -%}
    case
        when regexp_full_match(lower(trim(cast({{ column }} as varchar))), '[^@\s]+@[^@\s]+\.[^@\s]+')
            then lower(trim(cast({{ column }} as varchar)))
    end
{%- endmacro %}

{#- An ISO date (YYYY-MM-DD) or compact YYYYMMDD text as DATE; anything else is null. -#}
{% macro clean_date(column) -%}
    coalesce(
        try_cast({{ clean_text(column) }} as date),
        cast(try_strptime({{ clean_text(column) }}, '%Y%m%d') as date)
    )
{%- endmacro %}

{#- Key used to match identifier values between rows and identity outputs. -#}
{% macro identifier_key(column) -%}
    lower(trim(cast({{ column }} as varchar)))
{%- endmacro %}

{#- Division that returns null instead of failing on zero. -#}
{% macro safe_divide(numerator, denominator) -%}
    (cast({{ numerator }} as double) / nullif(cast({{ denominator }} as double), 0))
{%- endmacro %}
