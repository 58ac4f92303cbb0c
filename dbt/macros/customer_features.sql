{#-
  The behavioural features of every customer at one or more cutoff dates: the one definition
  that customer_traits (cutoff = the as-of date) and training_examples (past cutoffs, labels
  from the following horizon) share. No second definition exists in Python.

  `cutoffs` is a SQL query returning one column `cutoff_date` (a DATE; one or more rows). At a
  cutoff C a row is visible when its timestamp falls on or before C (UTC), exactly as `--as-of C`
  would show it (as_of_ts: the end of day C); windows of N days are the N days ending with C.
  Returns one row per (customer_id, cutoff_date) for customers with any visible order, web
  event or email event.

  Status caveat: the lake keeps an order's latest status and no time for it, so a return (or
  cancellation) recorded after a past cutoff is already seen at that cutoff. The columns built
  from placed orders and gross amounts (order_count*, gross_revenue*, recency, tenure) do not
  depend on it; the status-based ones (return_count, kept_order_count, returned_revenue) and
  the favourite category/brand do. The customer models train on the former only.
-#}

{% macro customer_features(cutoffs) -%}
with

cutoffs as (

    select distinct cast(cutoff_date as date) as cutoff_date
    from ({{ cutoffs }})

),

orders as (

    select customer_id, order_id, ordered_at, is_returned, order_amount
    from {{ ref('int_orders_resolved') }}
    where customer_id is not null and not is_cancelled

),

web_events as (

    select customer_id, event_type, product_id, occurred_at
    from {{ ref('int_events_resolved') }}
    where customer_id is not null

),

email_events as (

    select customer_id, event_type, campaign_id, occurred_at
    from {{ ref('int_email_events_resolved') }}
    where customer_id is not null

),

order_lines as (

    select order_id, product_id, quantity
    from {{ ref('int_order_lines_priced') }}

),

products as (

    select product_id, category, brand
    from {{ ref('stg_lake__products') }}
    qualify row_number() over (
        partition by product_id order by ingested_at desc nulls last, source desc
    ) = 1

),

-- Every visible row at every cutoff, with its age in days (0 = on the cutoff day).
orders_at_cutoff as (

    select
        cutoffs.cutoff_date,
        orders.*,
        cutoffs.cutoff_date - cast(orders.ordered_at as date) as age_days
    from orders
    inner join cutoffs
        on cast(orders.ordered_at as date) <= cutoffs.cutoff_date

),

web_at_cutoff as (

    select
        cutoffs.cutoff_date,
        web_events.*,
        cutoffs.cutoff_date - cast(web_events.occurred_at as date) as age_days
    from web_events
    inner join cutoffs
        on cast(web_events.occurred_at as date) <= cutoffs.cutoff_date

),

email_at_cutoff as (

    select
        cutoffs.cutoff_date,
        email_events.*,
        cutoffs.cutoff_date - cast(email_events.occurred_at as date) as age_days
    from email_events
    inner join cutoffs
        on cast(email_events.occurred_at as date) <= cutoffs.cutoff_date

),

order_features as (

    select
        customer_id,
        cutoff_date,
        count(*) as order_count,
        count(*) filter (where is_returned) as return_count,
        count(*) filter (where not is_returned) as kept_order_count,
        sum(order_amount) as gross_revenue,
        coalesce(sum(order_amount) filter (where is_returned), 0) as returned_revenue,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        count(*) filter (where age_days < 30) as order_count_30d,
        count(*) filter (where age_days < 90) as order_count_90d,
        count(*) filter (where age_days < 365) as order_count_365d,
        coalesce(sum(order_amount) filter (where age_days < 365), 0) as gross_revenue_365d
    from orders_at_cutoff
    group by customer_id, cutoff_date

),

web_features as (

    select
        customer_id,
        cutoff_date,
        max(occurred_at) as last_visit_at,
        count(distinct cast(occurred_at as date)) filter (where age_days < 30)
            as web_active_days_30d,
        count(distinct cast(occurred_at as date)) filter (where age_days < 90)
            as web_active_days_90d,
        count(*) filter (where event_type = 'product_view' and age_days < 30)
            as product_view_count_30d,
        count(*) filter (where event_type = 'add_to_cart' and age_days < 30)
            as add_to_cart_count_30d
    from web_at_cutoff
    group by customer_id, cutoff_date

),

-- Email rates are per campaign: of the campaigns sent in the window, the share opened (a click
-- counts as an open, since image blocking hides many opens) or clicked in the same window.
email_per_campaign as (

    select
        customer_id,
        cutoff_date,
        coalesce(campaign_id, '(none)') as campaign_key,
        {%- for days in [30, 90] %}
        count(*) filter (where event_type = 'send' and age_days < {{ days }}) as sends_{{ days }}d,
        bool_or(event_type in ('open', 'click') and age_days < {{ days }}) as is_opened_{{ days }}d,
        bool_or(event_type = 'click' and age_days < {{ days }}) as is_clicked_{{ days }}d,
        {%- endfor %}
        max(occurred_at) filter (where event_type in ('open', 'click')) as last_engaged_at
    from email_at_cutoff
    group by customer_id, cutoff_date, coalesce(campaign_id, '(none)')

),

email_features as (

    select
        customer_id,
        cutoff_date,
        {%- for days in [30, 90] %}
        cast(sum(sends_{{ days }}d) as bigint) as email_sends_{{ days }}d,
        {{ safe_divide(
            'count(*) filter (where sends_' ~ days ~ 'd > 0 and is_opened_' ~ days ~ 'd)',
            'count(*) filter (where sends_' ~ days ~ 'd > 0)') }} as open_rate_{{ days }}d,
        {{ safe_divide(
            'count(*) filter (where sends_' ~ days ~ 'd > 0 and is_clicked_' ~ days ~ 'd)',
            'count(*) filter (where sends_' ~ days ~ 'd > 0)') }} as click_rate_{{ days }}d,
        {%- endfor %}
        max(last_engaged_at) as last_email_engaged_at
    from email_per_campaign
    group by customer_id, cutoff_date

),

-- Category and brand affinity: the interaction scores of macros/product_interactions.sql (a
-- product view 1, an add to cart 2, each unit bought in a kept order 3). Ties go to the most
-- recent interaction, then alphabetical order.
interactions as (

    {{ product_interactions('web_at_cutoff', 'orders_at_cutoff', 'order_lines') }}

),

with_products as (

    select interactions.*, products.category, products.brand
    from interactions
    inner join products
        on products.product_id = interactions.product_id

),

{%- for dimension in ['category', 'brand'] %}

{{ dimension }}_ranked as (

    select
        customer_id,
        cutoff_date,
        {{ dimension }},
        sum(score) as {{ dimension }}_score,
        sum(sum(score)) over (partition by customer_id, cutoff_date) as total_score,
        count(*) over (partition by customer_id, cutoff_date) as {{ dimension }}_count,
        row_number() over (
            partition by customer_id, cutoff_date
            order by sum(score) desc, max(occurred_at) desc, {{ dimension }}
        ) as preference_rank
    from with_products
    where {{ dimension }} is not null
    group by customer_id, cutoff_date, {{ dimension }}

),

{%- endfor %}

preference_features as (

    select
        coalesce(category_ranked.customer_id, brand_ranked.customer_id) as customer_id,
        coalesce(category_ranked.cutoff_date, brand_ranked.cutoff_date) as cutoff_date,
        category_ranked.category as favourite_category,
        brand_ranked.brand as favourite_brand,
        {{ safe_divide('category_ranked.category_score', 'category_ranked.total_score') }}
            as favourite_category_share,
        category_ranked.category_count,
        brand_ranked.brand_count
    from (select * from category_ranked where preference_rank = 1) as category_ranked
    full outer join (select * from brand_ranked where preference_rank = 1) as brand_ranked
        on brand_ranked.customer_id = category_ranked.customer_id
        and brand_ranked.cutoff_date = category_ranked.cutoff_date

),

customers_at_cutoff as (

    select customer_id, cutoff_date from order_features
    union
    select customer_id, cutoff_date from web_features
    union
    select customer_id, cutoff_date from email_features

),

final as (

    select
        customers_at_cutoff.customer_id,
        customers_at_cutoff.cutoff_date,
        coalesce(order_features.order_count, 0) as order_count,
        coalesce(order_features.return_count, 0) as return_count,
        coalesce(order_features.kept_order_count, 0) as kept_order_count,
        coalesce(order_features.gross_revenue, 0) as gross_revenue,
        coalesce(order_features.returned_revenue, 0) as returned_revenue,
        coalesce(order_features.gross_revenue, 0) - coalesce(order_features.returned_revenue, 0)
            as kept_revenue,
        order_features.first_order_at,
        order_features.last_order_at,
        customers_at_cutoff.cutoff_date - cast(order_features.last_order_at as date)
            as recency_days,
        customers_at_cutoff.cutoff_date - cast(order_features.first_order_at as date)
            as tenure_days,
        coalesce(order_features.order_count_30d, 0) as order_count_30d,
        coalesce(order_features.order_count_90d, 0) as order_count_90d,
        coalesce(order_features.order_count_365d, 0) as order_count_365d,
        coalesce(order_features.gross_revenue_365d, 0) as gross_revenue_365d,
        {{ safe_divide('order_features.gross_revenue', 'order_features.order_count') }}
            as average_gross_order_value,
        -- placed orders per year of tenure (tenure counted as at least 30 days)
        {{ safe_divide(
            '365 * order_features.order_count',
            'greatest(customers_at_cutoff.cutoff_date - cast(order_features.first_order_at as date) + 1, 30)'
        ) }} as orders_per_year,
        web_features.last_visit_at,
        customers_at_cutoff.cutoff_date - cast(web_features.last_visit_at as date)
            as days_since_last_visit,
        coalesce(web_features.web_active_days_30d, 0) as web_active_days_30d,
        coalesce(web_features.web_active_days_90d, 0) as web_active_days_90d,
        coalesce(web_features.product_view_count_30d, 0) as product_view_count_30d,
        coalesce(web_features.add_to_cart_count_30d, 0) as add_to_cart_count_30d,
        preference_features.favourite_category,
        preference_features.favourite_brand,
        preference_features.favourite_category_share,
        coalesce(preference_features.category_count, 0) as category_count,
        coalesce(preference_features.brand_count, 0) as brand_count,
        coalesce(email_features.email_sends_30d, 0) as email_sends_30d,
        coalesce(email_features.email_sends_90d, 0) as email_sends_90d,
        email_features.open_rate_30d,
        email_features.open_rate_90d,
        email_features.click_rate_30d,
        email_features.click_rate_90d,
        email_features.last_email_engaged_at,
        customers_at_cutoff.cutoff_date - cast(email_features.last_email_engaged_at as date)
            as days_since_last_email_engagement
    from customers_at_cutoff
    left join order_features
        on order_features.customer_id = customers_at_cutoff.customer_id
        and order_features.cutoff_date = customers_at_cutoff.cutoff_date
    left join web_features
        on web_features.customer_id = customers_at_cutoff.customer_id
        and web_features.cutoff_date = customers_at_cutoff.cutoff_date
    left join email_features
        on email_features.customer_id = customers_at_cutoff.customer_id
        and email_features.cutoff_date = customers_at_cutoff.cutoff_date
    left join preference_features
        on preference_features.customer_id = customers_at_cutoff.customer_id
        and preference_features.cutoff_date = customers_at_cutoff.cutoff_date

)

select * from final
{%- endmacro %}

{#- The customer models' settings (cdp.yml `models:`, passed by the platform as var
    `cdp_models`; these defaults match dagster_project/lib/config.py ModelsConfig). -#}
{% macro customer_model_settings() -%}
    {%- set given = var('cdp_models', {}) or {} -%}
    {%- set settings = {
        'purchase_horizon_days': 30,
        'churn_horizon_days': 90,
        'clv_horizon_days': 365,
        'training_cutoffs': 6,
        'cutoff_step_days': 30,
    } -%}
    {%- do settings.update(given) -%}
    {{- return(settings) -}}
{%- endmacro %}

{#-
  The past cutoff dates training_examples evaluates the features at: for each model's horizon
  h, `training_cutoffs` dates as_of - h - k x `cutoff_step_days` (k = 0, 1, ...), so every
  model's most recent cutoff is exactly as_of - h (its label horizon ends on the as-of date: the
  backtest's test cutoff), and as many again from as_of - 2h (the backtest trains on cutoffs
  whose horizon ended by its test cutoff). Cutoffs before the first data give no rows.
  Deduplicated and sorted, as YYYY-MM-DD strings.
-#}
{% macro training_cutoff_dates() -%}
    {%- set settings = customer_model_settings() -%}
    {%- set as_of = modules.datetime.datetime.strptime(as_of_string(), '%Y-%m-%d').date() -%}
    {%- set dates = [] -%}
    {%- for key in ['purchase_horizon_days', 'churn_horizon_days', 'clv_horizon_days'] -%}
        {%- for horizons in [1, 2] -%}
        {%- for k in range(settings['training_cutoffs'] | int) -%}
            {%- set days = horizons * (settings[key] | int)
                + k * (settings['cutoff_step_days'] | int) -%}
            {%- set value = (as_of - modules.datetime.timedelta(days=days)).isoformat() -%}
            {%- if value not in dates -%}{%- do dates.append(value) -%}{%- endif -%}
        {%- endfor -%}
        {%- endfor -%}
    {%- endfor -%}
    {{- return(dates | sort) -}}
{%- endmacro %}
