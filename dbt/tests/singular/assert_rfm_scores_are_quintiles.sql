-- Each RFM score splits the buyers into 5 groups whose sizes differ by at most one (ntile).
{{ config(meta={'dagster': {'ref': {'name': 'customer_traits'}}}) }}
with

buyers as (

    select * from {{ ref('customer_traits') }} where order_count > 0

),

{%- for score in ['r_score', 'f_score', 'm_score'] %}

{{ score }}_sizes as (

    select '{{ score }}' as score, {{ score }} as value, count(*) as members
    from buyers
    group by {{ score }}

),

{%- endfor %}

sizes as (

    select * from r_score_sizes
    union all select * from f_score_sizes
    union all select * from m_score_sizes

)

select score, max(members) - min(members) as spread
from sizes
group by score
having max(members) - min(members) > 1
