-- Every customer id retired by a merge (as of the as-of date) -> the customer that holds its
-- records now. A chain (older -> old -> current, merges in successive runs) is followed to its
-- end. A chain that loops back (a -> b -> a: damaged data, identity never writes one) stops at
-- the first id seen twice and names no survivor, so its aliases are left out.
with recursive

aliases as (

    select * from {{ ref('stg_identity__customer_aliases') }}

),

-- One row per alias and step; `visited` holds the ids walked so far.
walked as (

    select
        alias_customer_id,
        customer_id,
        [alias_customer_id] as visited
    from aliases

    union all

    select
        walked.alias_customer_id,
        aliases.customer_id,
        list_append(walked.visited, walked.customer_id) as visited
    from walked
    inner join aliases on aliases.alias_customer_id = walked.customer_id
    where not list_contains(walked.visited, walked.customer_id)

),

resolved as (

    select
        alias_customer_id,
        customer_id
    from walked
    qualify row_number() over (partition by alias_customer_id order by len(visited) desc) = 1

),

-- A chain ends at a survivor only if its last id is no alias itself (else it looped back).
final as (

    select
        aliases.alias_customer_id,
        resolved.customer_id,
        aliases.created_at,
        aliases.cause
    from aliases
    inner join resolved on resolved.alias_customer_id = aliases.alias_customer_id
    where resolved.customer_id not in (select alias_customer_id from aliases)

)

select * from final
