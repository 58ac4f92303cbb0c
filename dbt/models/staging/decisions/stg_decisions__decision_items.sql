-- Chosen items of the decision log (lake/_decisions/decision_items/<day>.parquet); empty until
-- decided.
with

source as (

    {{ external_or_empty(
        source('decisions', 'decision_items'),
        {'decision_id': 'varchar', 'customer_id': 'varchar', 'placement': 'varchar',
         'position': 'integer', 'product_id': 'varchar', 'sale_id': 'varchar',
         'score': 'double', 'propensity': 'double', 'is_wildcard': 'boolean',
         'reasons': 'varchar[]'}) }}

),

final as (

    select
        cast(decision_id as varchar) as decision_id,
        cast(customer_id as varchar) as customer_id,
        cast(placement as varchar) as placement,
        cast(position as integer) as position,
        cast(product_id as varchar) as product_id,
        cast(sale_id as varchar) as sale_id,
        cast(score as double) as score,
        cast(propensity as double) as propensity,
        coalesce(cast(is_wildcard as boolean), false) as is_wildcard,
        cast(reasons as varchar[]) as reasons
    from source
    where decision_id is not null and product_id is not null

)

select * from final
