"""Customer reads: golden records, identifier lookups, traits, identifiers, segments, events.

Every function takes a batch of keys and runs one statement per batch (``api.repositories.batch``
chunks only beyond SQLite's variable limits), which is what lets the DataLoaders keep a page of
customers at a fixed number of queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from api.repositories.batch import many_per_key, one_per_key, rows_per_page
from api.repositories.database import Database, Row

#: Comparison operators a trait condition may use, mapped to SQL.
TRAIT_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "="}


def customers_by_id(db: Database, ids: Sequence[str]) -> dict[str, Row]:
    """Golden records by customer id (missing ids are absent)."""
    return one_per_key(
        db, "select * from customers where customer_id in ({keys})", ids, "customer_id"
    )


def current_ids(db: Database, alias_ids: Sequence[str]) -> dict[str, str]:
    """The surviving customer id of each retired (merged) id that has one."""
    rows = one_per_key(
        db,
        "select alias_customer_id, customer_id from customer_aliases "
        "where alias_customer_id in ({keys})",
        alias_ids,
        "alias_customer_id",
    )
    return {alias: row["customer_id"] for alias, row in rows.items()}


class LookupHit(NamedTuple):
    """A customer found by an identifier, and how many customers share that identifier."""

    customer: Row
    customer_count: int


def lookup_customer(db: Database, identifier_type: str, identifier_value: str) -> LookupHit | None:
    """The customer owning a normalized identifier (one statement, customer row included)."""
    row = db.one(
        "select l.customer_count as _customer_count, c.* from identifier_lookup as l "
        "join customers as c on c.customer_id = l.customer_id "
        "where l.identifier_type = ? and l.identifier_value = ?",
        (identifier_type, identifier_value),
    )
    if row is None:
        return None
    count = int(row.pop("_customer_count"))
    return LookupHit(customer=row, customer_count=count)


def traits_by_customer(db: Database, ids: Sequence[str]) -> dict[str, Row]:
    """Trait rows by customer id."""
    return one_per_key(
        db, "select * from customer_traits where customer_id in ({keys})", ids, "customer_id"
    )


def identifiers_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """Every identifier row of each customer, ordered by type, value and source."""
    return many_per_key(
        db,
        "select * from customer_identifiers where customer_id in ({keys}) "
        "order by customer_id, identifier_type, identifier_value, source",
        ids,
        "customer_id",
    )


def segments_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """Current segment memberships of each customer, by segment name."""
    return many_per_key(
        db,
        "select customer_id, segment, entered_at from customer_segments "
        "where customer_id in ({keys}) order by customer_id, segment",
        ids,
        "customer_id",
    )


class EventPage(NamedTuple):
    """One request for a customer's events: newest first, ``limit`` rows after a position."""

    customer_id: str
    limit: int
    after_occurred_at: str | None = None
    after_event_id: str | None = None


def _event_page_sql(page: EventPage) -> tuple[str, list[object]]:
    params: list[object] = [page.customer_id]
    position = ""
    if page.after_occurred_at is not None:
        position = " and (occurred_at < ? or (occurred_at = ? and event_id < ?))"
        params += [page.after_occurred_at, page.after_occurred_at, page.after_event_id]
    sql = (
        f"select * from customer_events where customer_id = ?{position} "
        "order by occurred_at desc, event_id desc limit ?"
    )
    return sql, [*params, page.limit]


def event_pages(db: Database, pages: Sequence[EventPage]) -> list[list[Row]]:
    """The rows of each page, in the order of ``pages`` (one statement per CHUNK pages)."""
    return rows_per_page(db, pages, _event_page_sql)


class TraitCondition(NamedTuple):
    """``<column> <operator> <value>`` on customer_traits; column and operator pre-validated."""

    column: str
    operator: str
    value: float


def _filter_sql(
    segment: str | None, conditions: Sequence[TraitCondition]
) -> tuple[str, list[str], list[object]]:
    joins = []
    where = []
    params: list[object] = []
    if segment is not None:
        joins.append(
            "join customer_segments as s on s.customer_id = c.customer_id and s.segment = ?"
        )
        params.append(segment)
    if conditions:
        joins.append("join customer_traits as t on t.customer_id = c.customer_id")
        for condition in conditions:
            operator = TRAIT_OPERATORS[condition.operator]
            where.append(f't."{condition.column}" {operator} ?')
            params.append(condition.value)
    return " ".join(joins), where, params


def filter_customers(
    db: Database,
    *,
    segment: str | None,
    conditions: Sequence[TraitCondition],
    limit: int,
    after: str | None,
) -> list[Row]:
    """Customers in ``segment`` (if given) meeting every condition, by customer id."""
    joins, where, params = _filter_sql(segment, conditions)
    if after is not None:
        where.append("c.customer_id > ?")
        params.append(after)
    clause = f" where {' and '.join(where)}" if where else ""
    sql = f"select c.* from customers as c {joins}{clause} order by c.customer_id limit ?"
    return db.dicts(sql, [*params, limit])


def count_customers(
    db: Database, *, segment: str | None, conditions: Sequence[TraitCondition]
) -> int:
    """How many customers a filter matches."""
    joins, where, params = _filter_sql(segment, conditions)
    clause = f" where {' and '.join(where)}" if where else ""
    return int(db.rows(f"select count(*) from customers as c {joins}{clause}", params)[0][0])
