-- Per placement, channel, arm (or holdout) and day of delivery: decisions made, messages sent
-- and the outcomes attributed to them (see decision_delivery_outcomes for the rules). Counts are
-- deliveries with at least one such outcome, so every rate is a proportion of decisions (or of
-- sends) that a statistics library can compare between an arm and the holdout.
with

deliveries as (

    select * from {{ ref('decision_delivery_outcomes') }}

),

final as (

    select
        placement,
        channel,
        arm,
        delivered_on,
        any_value(experiment) as experiment,
        bool_or(is_holdout) as is_holdout,
        count(*) as decisions,
        count(*) filter (where is_sent) as sends,
        count(*) filter (where has_opened) as opens,
        count(*) filter (where has_clicked) as clicks,
        count(*) filter (where has_visited) as visits,
        count(*) filter (where has_converted) as conversions,
        cast(sum(revenue) as double) as revenue,
        count(*) filter (where has_unsubscribed) as unsubscribes
    from deliveries
    group by placement, channel, arm, delivered_on

)

select * from final
