-- Every link identity considered between two records, accepted or refused by a guard.
with

source as (

    -- Optional (worlds written without it, e.g. by tests): customers then have no evidence.
    {{ external_or_empty(
        source('identity', 'identity_edges'),
        {'record_uid_l': 'varchar', 'record_uid_r': 'varchar', 'evidence_type': 'varchar',
         'rule': 'varchar', 'identifier_type': 'varchar', 'match_probability': 'double',
         'match_weight': 'double', 'details': 'varchar', 'is_accepted': 'boolean',
         'rejected_reason': 'varchar'}) }}

),

final as (

    select
        cast(record_uid_l as varchar) as record_uid_l,
        cast(record_uid_r as varchar) as record_uid_r,
        cast(evidence_type as varchar) as evidence_type,
        cast(rule as varchar) as rule,
        cast(identifier_type as varchar) as identifier_type,
        cast(match_probability as double) as match_probability,
        cast(match_weight as double) as match_weight,
        cast(details as varchar) as details,
        cast(is_accepted as boolean) as is_accepted,
        cast(rejected_reason as varchar) as rejected_reason
    from source

)

select * from final
