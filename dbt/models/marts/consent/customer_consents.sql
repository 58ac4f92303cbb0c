-- One resolved consent per customer and channel: the latest statement of the history (the
-- highest statement_number: latest time, then trust). No row = no statement = no consent.
with

history as (

    select * from {{ ref('customer_consent_history') }}

),

counted as (

    select
        customer_id,
        channel,
        count(*) as statement_count,
        max(statement_number) as latest_number
    from history
    group by customer_id, channel

),

final as (

    select
        history.customer_id,
        history.channel,
        history.is_granted,
        history.source,
        history.changed_at,
        counted.statement_count
    from history
    inner join counted
        on counted.customer_id = history.customer_id
        and counted.channel = history.channel
        and counted.latest_number = history.statement_number

)

select * from final
