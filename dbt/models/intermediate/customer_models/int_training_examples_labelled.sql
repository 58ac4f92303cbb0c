-- Training examples for the customer models: the same features macro as customer_traits,
-- evaluated at past cutoffs (macros/customer_features.sql training_cutoff_dates: for each
-- model's horizon h, as_of - h - k x step), each with its labels from the days after the cutoff.
-- A label is null when its horizon does not end by the as-of date (not yet observable), and the
-- churn label is null for customers who had not bought before the cutoff.
{%- set settings = customer_model_settings() %}
{%- set cutoff_dates = training_cutoff_dates() %}
with

features as (

    {%- set literals = [] %}
    {%- for value in cutoff_dates %}{% do literals.append("date '" ~ value ~ "'") %}{% endfor %}
    {{ customer_features('select unnest([' ~ literals | join(', ') ~ ']) as cutoff_date') }}

),

orders as (

    select customer_id, cast(ordered_at as date) as ordered_on, is_returned, order_amount
    from {{ ref('int_orders_resolved') }}
    where customer_id is not null and not is_cancelled

),

-- Orders in each label horizon after the cutoff (cutoff < order day <= cutoff + h).
future as (

    select
        features.customer_id,
        features.cutoff_date,
        {%- for name in ['purchase', 'churn', 'clv'] %}
        {%- set days = settings[name ~ '_horizon_days'] | int %}
        count(orders.customer_id) filter (
            where orders.ordered_on <= features.cutoff_date + {{ days }}
        ) as orders_next_{{ name }}_horizon,
        {%- endfor %}
        coalesce(sum(orders.order_amount) filter (
            where orders.ordered_on <= features.cutoff_date + {{ settings['clv_horizon_days'] | int }}
                and not orders.is_returned
        ), 0) as revenue_next_clv_horizon
    from features
    left join orders
        on orders.customer_id = features.customer_id
        and orders.ordered_on > features.cutoff_date
    group by features.customer_id, features.cutoff_date

),

final as (

    select
        features.*,
        {%- for name in ['purchase', 'churn', 'clv'] %}
        features.cutoff_date + {{ settings[name ~ '_horizon_days'] | int }} <= {{ as_of_date() }}
            as is_{{ name }}_horizon_complete,
        {%- endfor %}
        case when features.cutoff_date + {{ settings['purchase_horizon_days'] | int }}
                <= {{ as_of_date() }}
            then future.orders_next_purchase_horizon > 0
        end as purchase_label,
        case when features.cutoff_date + {{ settings['churn_horizon_days'] | int }}
                <= {{ as_of_date() }} and features.order_count > 0
            then future.orders_next_churn_horizon = 0
        end as churn_label,
        case when features.cutoff_date + {{ settings['clv_horizon_days'] | int }}
                <= {{ as_of_date() }}
            then future.orders_next_clv_horizon
        end as clv_order_count_label,
        case when features.cutoff_date + {{ settings['clv_horizon_days'] | int }}
                <= {{ as_of_date() }}
            then future.revenue_next_clv_horizon
        end as clv_revenue_label
    from features
    inner join future
        on future.customer_id = features.customer_id
        and future.cutoff_date = features.cutoff_date

)

select * from final
