-- Every segment's members: each model in models/segments/ (one row per customer_id, segment name
-- from its YAML meta) plus the behavioural clusters computed by the clustering asset.
{#- refs come from var cdp_segment_models so dbt records the dependencies while parsing (the
    graph is empty then); segment_catalog() checks the list against the graph at run time. -#}
{%- set segment_refs = {} -%}
{%- for model_name in var('cdp_segment_models', []) -%}
    {%- do segment_refs.update({model_name: ref(model_name)}) -%}
{%- endfor -%}
{%- set catalog = segment_catalog() %}

with

clusters as (

    select * from {{ ref('stg_clusters__behavioural_clusters') }}

),

members as (

    {%- for segment in catalog %}

    select distinct
        cast(customer_id as varchar) as customer_id,
        {{ sql_string(segment.name) }} as segment,
        'rule' as segment_family
    from {{ segment_refs[segment.model] }}
    where customer_id is not null

    union all
    {%- endfor %}

    select distinct
        customer_id,
        segment,
        'behavioural_cluster' as segment_family
    from clusters

),

final as (

    select distinct * from members

)

select * from final
