"""Identity explanations: records (by customer or uid), the evidence between them, history."""

from __future__ import annotations

from collections.abc import Sequence

from api.repositories.batch import many_per_key, one_per_key
from api.repositories.database import Database, Row


def records_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """Each customer's source records, by source and record id."""
    return many_per_key(
        db,
        "select * from identity_records where customer_id in ({keys}) "
        "order by customer_id, source, record_id",
        ids,
        "customer_id",
    )


def evidence_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """Every link considered from each customer's records (accepted or refused)."""
    return many_per_key(
        db,
        "select * from identity_evidence where customer_id in ({keys}) "
        "order by customer_id, record_uid, is_accepted desc, match_probability desc, "
        "other_record_uid, rule",
        ids,
        "customer_id",
    )


def history_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """Merges and splits that involved each customer id, oldest first."""
    grouped = many_per_key(
        db,
        "select customer_id as _owner, * from customer_id_history "
        "where customer_id in ({keys}) union all "
        "select related_customer_id as _owner, * from customer_id_history "
        "where related_customer_id in ({keys}) and related_customer_id <> customer_id "
        "order by _owner, occurred_at, event_number",
        ids,
        "_owner",
    )
    for rows in grouped.values():
        for row in rows:
            del row["_owner"]
    return grouped


def records_by_uid(db: Database, uids: Sequence[str]) -> dict[str, Row]:
    """identity_records rows by record uid ('<source>:<record_id>'); unknown uids are absent."""
    return one_per_key(
        db, "select * from identity_records where record_uid in ({keys})", uids, "record_uid"
    )
