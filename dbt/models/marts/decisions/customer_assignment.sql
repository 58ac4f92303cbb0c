-- Each customer's assignment id: the oldest customer id the person has had, among the customer's
-- own id and every id merged into it (customer_aliases) as of the as-of date. Holdout and
-- experiment arms are hashed from it, so a merge never moves a person to another arm. Identity
-- already keeps the oldest id on a merge (identity/ids.py), so this is the customer's own id for
-- what identity wrote; the mart makes the rule hold for any alias data as well.
-- Oldest = first created, split off or kept from a real-time provisional id
-- (customer_id_history); an id with no such event ranks
-- after those with one; then the customer's own id, then the smallest id.
with

customers as (

    select customer_id from {{ ref('customers') }}

),

aliases as (

    select alias_customer_id, customer_id from {{ ref('customer_aliases') }}

),

history as (

    select * from {{ ref('customer_id_history') }}

),

born as (

    select customer_id, min(occurred_at) as created_at
    from history
    where event_type in ('created', 'split', 'provisional')
    group by customer_id

),

candidates as (

    select customer_id, customer_id as candidate_id from customers

    union all

    select aliases.customer_id, aliases.alias_customer_id as candidate_id
    from aliases
    inner join customers on customers.customer_id = aliases.customer_id

),

ranked as (

    select
        candidates.customer_id,
        candidates.candidate_id,
        born.created_at,
        count(*) over (partition by candidates.customer_id) - 1 as alias_count,
        row_number() over (
            partition by candidates.customer_id
            order by
                born.created_at nulls last,
                candidates.candidate_id = candidates.customer_id desc,
                candidates.candidate_id
        ) as age_rank
    from candidates
    left join born on born.customer_id = candidates.candidate_id

),

final as (

    select
        customer_id,
        candidate_id as assignment_id,
        created_at as assignment_id_created_at,
        alias_count
    from ranked
    where age_rank = 1

)

select * from final
