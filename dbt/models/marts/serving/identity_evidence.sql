-- Every link identity considered, once from each of its two records, with the other record's
-- source, id and customer: a customer's explanation reads only its own rows.
with

records as (

    select * from {{ ref('identity_records') }}

),

edges as (

    select * from {{ ref('stg_identity__identity_edges') }}

),

both_directions as (

    select
        record_uid_l as record_uid,
        record_uid_r as other_record_uid,
        * exclude (record_uid_l, record_uid_r)
    from edges

    union all

    select
        record_uid_r as record_uid,
        record_uid_l as other_record_uid,
        * exclude (record_uid_l, record_uid_r)
    from edges

),

final as (

    select
        mine.customer_id,
        both_directions.record_uid,
        both_directions.other_record_uid,
        other.customer_id as other_customer_id,
        other.source as other_source,
        other.record_id as other_record_id,
        both_directions.evidence_type,
        both_directions.rule,
        both_directions.identifier_type,
        both_directions.match_probability,
        both_directions.match_weight,
        both_directions.details,
        both_directions.is_accepted,
        both_directions.rejected_reason
    from both_directions
    inner join records as mine on mine.record_uid = both_directions.record_uid
    left join records as other on other.record_uid = both_directions.other_record_uid

)

-- Stored by customer and record: the order the snapshot copies (and so lists ties in).
select * from final
order by customer_id, record_uid
