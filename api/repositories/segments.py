"""Segment reads: the catalogue and cursor-paged members."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from api.repositories.customers import CHUNK
from api.repositories.database import Database, Row


class MemberPage(NamedTuple):
    """One page of a segment's members: ``limit`` customer ids after a customer id."""

    segment: str
    limit: int
    after: str | None = None


def all_segments(db: Database) -> list[Row]:
    """The segment catalogue, by name."""
    return db.dicts("select * from segments order by segment")


def member_pages(db: Database, pages: Sequence[MemberPage]) -> list[list[Row]]:
    """The rows of each page, in the order of ``pages`` (one statement per CHUNK pages).

    Members are keyset-paged on the primary key (segment, customer_id).
    """
    results: list[list[Row]] = [[] for _ in pages]
    for start in range(0, len(pages), CHUNK):
        parts = []
        params: list[object] = []
        for offset, page in enumerate(pages[start : start + CHUNK]):
            position = ""
            params.append(page.segment)
            if page.after is not None:
                position = " and customer_id > ?"
                params.append(page.after)
            params.append(page.limit)
            parts.append(
                f"select {start + offset} as _page, * from (select customer_id, entered_at "
                f"from customer_segments where segment = ?{position} "
                "order by customer_id limit ?)"
            )
        for row in db.dicts(" union all ".join(parts), params):
            results[row.pop("_page")].append(row)
    return results
