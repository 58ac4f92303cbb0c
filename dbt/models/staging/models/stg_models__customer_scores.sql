-- Customer model scores written by the models asset; empty until it has run.
with

source as (

    {{ external_or_empty(
        source('models', 'customer_scores'),
        {'customer_id': 'varchar', 'purchase_probability': 'double', 'churn_risk': 'double',
         'predicted_clv': 'double', 'purchase_model_version': 'varchar',
         'churn_model_version': 'varchar', 'clv_model_version': 'varchar'}) }}

),

final as (

    select
        cast(customer_id as varchar) as customer_id,
        cast(purchase_probability as double) as purchase_probability,
        cast(churn_risk as double) as churn_risk,
        cast(predicted_clv as double) as predicted_clv,
        cast(purchase_model_version as varchar) as purchase_model_version,
        cast(churn_model_version as varchar) as churn_model_version,
        cast(clv_model_version as varchar) as clv_model_version
    from source
    where customer_id is not null

)

select * from final
