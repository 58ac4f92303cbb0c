"""Segment reads: the catalogue and cursor-paged members."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from api.repositories.batch import rows_per_page
from api.repositories.database import Database, Row


class MemberPage(NamedTuple):
    """One page of a segment's members: ``limit`` customer ids after a customer id."""

    segment: str
    limit: int
    after: str | None = None


def all_segments(db: Database) -> list[Row]:
    """The segment catalogue, by name."""
    return db.dicts("select * from segments order by segment")


def _member_page_sql(page: MemberPage) -> tuple[str, list[object]]:
    params: list[object] = [page.segment]
    position = ""
    if page.after is not None:
        position = " and customer_id > ?"
        params.append(page.after)
    sql = (
        "select customer_id, entered_at from customer_segments "
        f"where segment = ?{position} order by customer_id limit ?"
    )
    return sql, [*params, page.limit]


def member_pages(db: Database, pages: Sequence[MemberPage]) -> list[list[Row]]:
    """The rows of each page, in the order of ``pages`` (one statement per CHUNK pages).

    Members are keyset-paged on the primary key (segment, customer_id).
    """
    return rows_per_page(db, pages, _member_page_sql)
