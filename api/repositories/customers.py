"""Customer reads: golden records, identifier lookups, traits, identifiers, segments, events.

Every function takes a batch of keys and runs one statement per batch (chunked only beyond
SQLite's variable limits), which is what lets the DataLoaders keep a page of customers at a
fixed number of queries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from api.repositories.database import Database, Row

#: Keys per statement (SQLite allows 32766 variables and 500 compound selects).
CHUNK = 400

#: Comparison operators a trait condition may use, mapped to SQL.
TRAIT_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "="}


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _chunks(keys: Sequence[str]) -> list[Sequence[str]]:
    return [keys[i : i + CHUNK] for i in range(0, len(keys), CHUNK)] or [[]]


def customers_by_id(db: Database, ids: Sequence[str]) -> dict[str, Row]:
    """Golden records by customer id (missing ids are absent)."""
    found: dict[str, Row] = {}
    for chunk in _chunks(list(dict.fromkeys(ids))):
        if chunk:
            sql = f"select * from customers where customer_id in ({_marks(len(chunk))})"
            found.update((row["customer_id"], row) for row in db.dicts(sql, chunk))
    return found


def current_ids(db: Database, alias_ids: Sequence[str]) -> dict[str, str]:
    """The surviving customer id of each retired (merged) id that has one."""
    found: dict[str, str] = {}
    for chunk in _chunks(list(dict.fromkeys(alias_ids))):
        if chunk:
            sql = (
                "select alias_customer_id, customer_id from customer_aliases "
                f"where alias_customer_id in ({_marks(len(chunk))})"
            )
            found.update(db.rows(sql, chunk))
    return found


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
    found: dict[str, Row] = {}
    for chunk in _chunks(list(dict.fromkeys(ids))):
        if chunk:
            sql = f"select * from customer_traits where customer_id in ({_marks(len(chunk))})"
            found.update((row["customer_id"], row) for row in db.dicts(sql, chunk))
    return found


def identifiers_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """Every identifier row of each customer, ordered by type, value and source."""
    found: dict[str, list[Row]] = defaultdict(list)
    for chunk in _chunks(list(dict.fromkeys(ids))):
        if chunk:
            sql = (
                "select * from customer_identifiers "
                f"where customer_id in ({_marks(len(chunk))}) "
                "order by customer_id, identifier_type, identifier_value, source"
            )
            for row in db.dicts(sql, chunk):
                found[row["customer_id"]].append(row)
    return found


def segments_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """Current segment memberships of each customer, by segment name."""
    found: dict[str, list[Row]] = defaultdict(list)
    for chunk in _chunks(list(dict.fromkeys(ids))):
        if chunk:
            sql = (
                "select customer_id, segment, entered_at from customer_segments "
                f"where customer_id in ({_marks(len(chunk))}) order by customer_id, segment"
            )
            for row in db.dicts(sql, chunk):
                found[row["customer_id"]].append(row)
    return found


class EventPage(NamedTuple):
    """One request for a customer's events: newest first, ``limit`` rows after a position."""

    customer_id: str
    limit: int
    after_occurred_at: str | None = None
    after_event_id: str | None = None


def event_pages(db: Database, pages: Sequence[EventPage]) -> list[list[Row]]:
    """The rows of each page, in the order of ``pages`` (one statement per CHUNK pages)."""
    results: list[list[Row]] = [[] for _ in pages]
    for start in range(0, len(pages), CHUNK):
        parts = []
        params: list[object] = []
        for offset, page in enumerate(pages[start : start + CHUNK]):
            position = ""
            params.append(page.customer_id)
            if page.after_occurred_at is not None:
                position = " and (occurred_at < ? or (occurred_at = ? and event_id < ?))"
                params += [page.after_occurred_at, page.after_occurred_at, page.after_event_id]
            params.append(page.limit)
            parts.append(
                f"select {start + offset} as _page, * from (select * from customer_events "
                f"where customer_id = ?{position} "
                "order by occurred_at desc, event_id desc limit ?)"
            )
        for row in db.dicts(" union all ".join(parts), params):
            results[row.pop("_page")].append(row)
    return results


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
