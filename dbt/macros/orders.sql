{#- Order status rules, configurable for sources with other status vocabularies. -#}

{#- Statuses of orders that never happened (no revenue, not counted as orders). -#}
{% macro cancelled_statuses() -%}
    ({%- for s in var('cdp_cancelled_statuses', ['cancelled', 'canceled']) -%}'{{ s }}'{{ ", " if not loop.last }}{%- endfor -%})
{%- endmacro %}

{#- Statuses of orders that were placed and paid, then refunded in full. -#}
{% macro returned_statuses() -%}
    ({%- for s in var('cdp_returned_statuses', ['returned', 'refunded']) -%}'{{ s }}'{{ ", " if not loop.last }}{%- endfor -%})
{%- endmacro %}
