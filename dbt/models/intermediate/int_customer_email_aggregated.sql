-- Email engagement per customer as of the as-of date. Rates are per campaign: of the campaigns
-- sent to the customer in the window, the share they opened (a click counts as an open, since
-- image blocking hides many opens) or clicked in the same window.
with

email_events as (

    select * from {{ ref('int_email_events_resolved') }}
    where customer_id is not null

),

per_campaign as (

    select
        customer_id,
        coalesce(campaign_id, '(none)') as campaign_key,
        {%- for days in [30, 90] %}
        count(*) filter (
            where event_type = 'send' and {{ within_days('occurred_at', days) }}
        ) as sends_{{ days }}d,
        bool_or(
            event_type in ('open', 'click') and {{ within_days('occurred_at', days) }}
        ) as is_opened_{{ days }}d,
        bool_or(
            event_type = 'click' and {{ within_days('occurred_at', days) }}
        ) as is_clicked_{{ days }}d,
        {%- endfor %}
        max(occurred_at) filter (where event_type in ('open', 'click')) as last_engaged_at
    from email_events
    group by customer_id, coalesce(campaign_id, '(none)')

),

final as (

    select
        customer_id,
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
    from per_campaign
    group by customer_id

)

select * from final
