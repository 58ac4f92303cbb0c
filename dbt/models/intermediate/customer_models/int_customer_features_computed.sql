-- The behavioural features of every customer with some history, as of the as-of date: the
-- features macro (macros/customer_features.sql) at cutoff = as_of. customer_traits reads its
-- trait columns from here and the customer models score these rows.
with

features as (

    {{ customer_features('select ' ~ as_of_date() ~ ' as cutoff_date') }}

),

final as (

    select * from features

)

select * from final
