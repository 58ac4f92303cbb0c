-- The segment catalogue: every segment model (name, description and owner from its YAML meta,
-- read at compile time) and every behavioural cluster, with its current member count.
{%- set catalog = segment_catalog() %}

with

members as (

    select * from {{ ref('customer_segments') }}

),

clusters as (

    select * from {{ ref('stg_clusters__behavioural_clusters') }}

),

rule_segments as (

    {%- for segment in catalog %}
    select
        {{ sql_string(segment.name) }} as segment,
        {{ sql_string(segment.description) }} as description,
        {{ sql_string(segment.owner) }} as owner,
        'rule' as segment_family,
        {{ sql_string(segment.model) }} as defined_by
    {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if catalog | length == 0 %}
    {{ empty_relation({'segment': 'varchar', 'description': 'varchar', 'owner': 'varchar',
                       'segment_family': 'varchar', 'defined_by': 'varchar'}) }}
    {%- endif %}

),

cluster_segments as (

    select
        segment,
        min(description) as description,
        'behavioural_clusters asset' as owner,
        'behavioural_cluster' as segment_family,
        'segments/behavioural_clusters' as defined_by
    from clusters
    group by segment

),

catalogue as (

    select * from rule_segments
    union all
    select * from cluster_segments

),

sizes as (

    select segment, count(*) as member_count
    from members
    group by segment

),

final as (

    select
        catalogue.segment,
        catalogue.description,
        catalogue.owner,
        catalogue.segment_family,
        catalogue.defined_by,
        coalesce(sizes.member_count, 0) as member_count
    from catalogue
    left join sizes on sizes.segment = catalogue.segment

)

select * from final
