"""Segment reads: the catalogue and cursor-paged members."""

from __future__ import annotations

from api.repositories.database import Row, SnapshotDatabase


def all_segments(db: SnapshotDatabase) -> list[Row]:
    """The segment catalogue, by name."""
    return db.dicts("select * from segments order by segment")


def segment_members(
    db: SnapshotDatabase, segment: str, *, limit: int, after: str | None
) -> list[Row]:
    """Members of a segment by customer id, after a customer id (keyset on the primary key)."""
    if after is None:
        return db.dicts(
            "select customer_id, entered_at from customer_segments where segment = ? "
            "order by customer_id limit ?",
            (segment, limit),
        )
    return db.dicts(
        "select customer_id, entered_at from customer_segments "
        "where segment = ? and customer_id > ? order by customer_id limit ?",
        (segment, after, limit),
    )
