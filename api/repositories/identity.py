"""Identity explanations: a customer's source records, the evidence between them, history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from api.repositories.customers import CHUNK
from api.repositories.database import Database, Row


def _grouped(
    db: Database, sql_head: str, sql_tail: str, ids: Sequence[str]
) -> dict[str, list[Row]]:
    found: dict[str, list[Row]] = defaultdict(list)
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        marks = ", ".join("?" * len(chunk))
        for row in db.dicts(f"{sql_head} ({marks}) {sql_tail}", chunk):
            found[row["customer_id"]].append(row)
    return found


def records_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """Each customer's source records, by source and record id."""
    return _grouped(
        db,
        "select * from identity_records where customer_id in",
        "order by customer_id, source, record_id",
        ids,
    )


def evidence_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """Every link considered from each customer's records (accepted or refused)."""
    return _grouped(
        db,
        "select * from identity_evidence where customer_id in",
        "order by customer_id, record_uid, is_accepted desc, match_probability desc",
        ids,
    )


def history_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """Merges and splits that involved each customer id, oldest first."""
    unique = list(dict.fromkeys(ids))
    found: dict[str, list[Row]] = defaultdict(list)
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        marks = ", ".join("?" * len(chunk))
        sql = (
            "select customer_id as _owner, * from customer_id_history "
            f"where customer_id in ({marks}) union all "
            "select related_customer_id as _owner, * from customer_id_history "
            f"where related_customer_id in ({marks}) and related_customer_id <> customer_id "
            "order by _owner, occurred_at"
        )
        for row in db.dicts(sql, [*chunk, *chunk]):
            found[row.pop("_owner")].append(row)
    return found
