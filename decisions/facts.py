"""Read what a decision needs from a published serving snapshot (SQLite).

The API decides for one customer per request and the daily batch for every customer; both come
through here so the two read the same facts the same way. Reads are batch-shaped: one statement
per table for a chunk of customers (``customer_id in (...)`` of at most ``MAX_IDS_PER_QUERY``
ids, under SQLite's host-parameter limit; or a key range for the full scan), never one per
customer, which is what lets the batch load 100k customers in seconds. Every per-customer table
is clustered by customer (snapshots/tables.py), so a chunk reads contiguous pages.

Nothing is derived here: shares, last purchases, the assignment id and the sales window are
computed, tested and as-of-filtered in dbt (``dbt/models/marts/decisions/``); this module only
turns rows into ``CustomerFacts`` and ``Sale`` values.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, Final

from decisions.types import DISPLAY_CHANNELS, CustomerFacts, Sale, SaleItem
from snapshots import TIMESTAMP_TEXT_FORMAT

#: Ids per ``in (...)`` statement: below SQLite's historical limit of 999 host parameters.
MAX_IDS_PER_QUERY: Final[int] = 900
#: Channels whose consent the golden record carries (customers.has_<channel>_consent).
CONSENT_CHANNELS: Final[tuple[str, ...]] = ("email", "sms", "push")
#: The resolved consent per customer and channel (dbt/models/marts/consent/customer_consents):
#: what decisions read when the snapshot has it (snapshots published before it read the golden
#: record's columns). Not in FACT_TABLES, so an older snapshot still serves.
CONSENTS_TABLE: Final[str] = "customer_consents"
#: The snapshot tables this module reads (a snapshot published before them cannot serve).
FACT_TABLES: Final[tuple[str, ...]] = (
    "customers",
    "customer_assignment",
    "customer_aliases",
    "customer_segments",
    "customer_traits",
    "customer_category_activity",
    "customer_brands_bought",
    "customer_recommendations",
    "sales",
    "sale_items",
)

_CUSTOMER_COLUMNS: Final[str] = ", ".join(
    [
        "customer_id",
        "first_name",
        "last_name",
        "email",
        "phone",
        *(f"has_{channel}_consent" for channel in CONSENT_CHANNELS),
        *(f"has_{channel}_consent_source" for channel in CONSENT_CHANNELS),
    ]
)


class SnapshotFactsError(RuntimeError):
    """The snapshot lacks a table decisions read: it was published by an older platform."""


def parse_timestamp(value: str | None) -> datetime | None:
    """A snapshot timestamp (fixed-width UTC text, see ``TIMESTAMP_TEXT_FORMAT``) as a datetime."""
    if value is None:
        return None
    return datetime.fromisoformat(value)  # Python 3.11 reads the trailing Z as UTC


def _required_timestamp(value: str) -> datetime:
    parsed = parse_timestamp(value)
    if parsed is None:  # the sales mart tests starts_at and ends_at not null
        raise SnapshotFactsError("a sale without a start or end in the snapshot")
    return parsed


def format_timestamp(moment: datetime) -> str:
    """A datetime as snapshot text, so it compares with stored timestamps as text."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; pass an aware datetime (UTC)")
    return moment.astimezone(UTC).strftime(TIMESTAMP_TEXT_FORMAT)


class _Reader:
    """Runs the per-table statements for one selection of customers.

    A selection is a SQL predicate on ``customer_id`` with its parameters: a list of ids, or a
    key range for the full scan. One statement per table per selection.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._has_consents: bool | None = None

    @property
    def has_consents(self) -> bool:
        """Whether the snapshot carries the resolved consents (asked once per reader)."""
        if self._has_consents is None:
            self._has_consents = (
                self.conn.execute(
                    "select 1 from sqlite_master where type = 'table' and name = ?",
                    (CONSENTS_TABLE,),
                ).fetchone()
                is not None
            )
        return self._has_consents

    def consents(
        self, where: str, params: Sequence[Any]
    ) -> dict[str, dict[str, tuple[bool, datetime | None]]]:
        """customer_id -> {channel: (is_granted, when stated)} of the resolved consents (none:
        no table)."""
        if not self.has_consents:
            return {}
        return {
            customer: {row[1]: (bool(row[2]), parse_timestamp(row[3])) for row in group}
            for customer, group in self.grouped(
                f"select customer_id, channel, is_granted, changed_at from {CONSENTS_TABLE} "
                f"where {where} order by customer_id",
                params,
            )
        }

    def execute(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc) or "no such column" in str(exc):
                raise SnapshotFactsError(
                    f"the serving snapshot cannot serve decisions ({exc}): it needs the tables "
                    f"{', '.join(FACT_TABLES)}; run the pipeline of this platform version "
                    "(`cdp run`) to publish a new snapshot"
                ) from exc
            raise

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.execute(sql, params).fetchall()

    def grouped(
        self, sql: str, params: Sequence[Any]
    ) -> Iterator[tuple[Any, Iterator[tuple[Any, ...]]]]:
        """Rows of a statement ordered by its first column, grouped by it."""
        return groupby(self.execute(sql, params), key=itemgetter(0))

    def facts(self, where: str, params: Sequence[Any]) -> dict[str, CustomerFacts]:
        """Facts of every customer of ``customers`` the predicate on customer_id selects."""
        people = self.rows(f"select {_CUSTOMER_COLUMNS} from customers where {where}", params)
        if not people:
            return {}
        assignment = dict(
            self.rows(
                f"select customer_id, assignment_id from customer_assignment where {where}",
                params,
            )
        )
        aliases = {
            customer: frozenset(row[1] for row in group)
            for customer, group in self.grouped(
                "select customer_id, alias_customer_id from customer_aliases "
                f"where {where} order by customer_id",
                params,
            )
        }
        segments = {
            customer: frozenset(row[1] for row in group)
            for customer, group in self.grouped(
                f"select customer_id, segment from customer_segments where {where} "
                "order by customer_id",
                params,
            )
        }
        traits = self._traits(where, params)
        resolved = self.consents(where, params)
        affinity: dict[str, dict[str, float]] = {}
        purchased: dict[str, dict[str, datetime]] = {}
        for customer, group in self.grouped(
            "select customer_id, category, interaction_share, last_purchased_at "
            f"from customer_category_activity where {where} order by customer_id",
            params,
        ):
            rows = list(group)
            affinity[customer] = {row[1]: row[2] for row in rows if row[2] is not None}
            purchased[customer] = {
                row[1]: datetime.fromisoformat(row[3]) for row in rows if row[3] is not None
            }
        brands = {
            customer: frozenset(row[1] for row in group)
            for customer, group in self.grouped(
                f"select customer_id, brand from customer_brands_bought where {where} "
                "order by customer_id",
                params,
            )
        }
        recommended = {
            customer: {row[1]: row[2] for row in group}
            for customer, group in self.grouped(
                "select customer_id, product_id, score from customer_recommendations "
                f"where {where} order by customer_id, rank",
                params,
            )
        }
        no_names: frozenset[str] = frozenset()

        out: dict[str, CustomerFacts] = {}
        for row in people:
            customer_id, first_name, last_name, email, phone = row[:5]
            n = len(CONSENT_CHANNELS)
            values, sources = row[5 : 5 + n], row[5 + n : 5 + 2 * n]
            trait_row = traits.get(customer_id, {})
            statements = resolved.get(customer_id, {})
            consents = resolved_consents(
                {channel: granted for channel, (granted, _) in statements.items()},
                {
                    channel: _consent(value, source)
                    for channel, value, source in zip(
                        CONSENT_CHANNELS, values, sources, strict=True
                    )
                },
            )
            out[customer_id] = CustomerFacts(
                customer_id=customer_id,
                assignment_id=assignment.get(customer_id) or customer_id,
                first_name=first_name,
                last_name=last_name,
                consents=consents,
                consent_changed_at={
                    channel: at for channel, (_, at) in statements.items() if at is not None
                },
                segments=segments.get(customer_id, no_names),
                traits=trait_row,
                category_last_purchased_at=purchased.get(customer_id, {}),
                category_affinity=affinity.get(customer_id, {}),
                brands_bought=brands.get(customer_id, no_names),
                last_viewed_category=trait_row.get("last_viewed_category"),
                last_viewed_product_id=trait_row.get("last_viewed_product_id"),
                recommended_products=recommended.get(customer_id, {}),
                alias_ids=aliases.get(customer_id, no_names),
                reachable=reachable_channels(email, phone, consents),
            )
        return out

    def _traits(self, where: str, params: Sequence[Any]) -> dict[str, dict[str, Any]]:
        """The customer_traits rows as dicts (values as stored: numbers, ISO text, 0/1)."""
        cursor = self.execute(f"select * from customer_traits where {where}", params)
        names = [d[0] for d in cursor.description]
        out: dict[str, dict[str, Any]] = {}
        for row in cursor.fetchall():
            record = dict(zip(names, row, strict=True))
            out[record.pop("customer_id")] = record
        return out


def _consent(value: int | None, source: str | None) -> bool | None:
    """The golden record's consent: None when no statement was ever recorded.

    The customers mart stores false when there is no statement (and then no source); decisions
    tell "never asked" (``consent:missing``) from "said no" apart, so no source reads as None.
    """
    if value is None or (source is None and not value):
        return None
    return bool(value)


def resolved_consents(
    resolved: Mapping[str, bool] | None, golden: Mapping[str, bool | None]
) -> dict[str, bool | None]:
    """A customer's consent per channel: the resolved consents when they have any statement.

    ``customer_consents`` holds every statement the golden record's columns are made of
    (people records, consents sources) plus email unsubscribes and the decision log's consent
    events, so a customer with rows there is read from them alone; a channel without a row is
    None (never stated: ``consent:missing``), whatever the channel. A customer without rows
    has no statement anywhere, and the golden record's columns say the same (None), except in
    snapshots published before the consent marts, which are read as they were.
    """
    if not resolved:
        return dict(golden)
    out: dict[str, bool | None] = dict.fromkeys(CONSENT_CHANNELS)
    out.update(resolved)
    return out


def reachable_channels(
    email: str | None, phone: str | None, consents: Mapping[str, bool | None]
) -> frozenset[str]:
    """Channels a message can reach: consent alone sends nothing without an address.

    Email needs the golden record's address and sms its phone number. Push needs a device
    token, which the platform does not hold yet (no device data is ingested): a recorded push
    consent (true or false) is the only sign of an app installation, so it stands in for one
    until device registrations are a source. Display channels need nothing.
    """
    channels = set(DISPLAY_CHANNELS)
    if email and email.strip():
        channels.add("email")
    if phone and phone.strip():
        channels.add("sms")
    if consents.get("push") is not None:
        channels.add("push")
    return frozenset(channels)


def _chunks(ids: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for customer_id in ids:
        chunk.append(customer_id)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_facts(conn: sqlite3.Connection, customer_ids: Sequence[str]) -> dict[str, CustomerFacts]:
    """Facts of the given customers by id; ids not in the snapshot are absent (resolve merged ids
    with ``resolve_customer_id`` first). One statement per table per 900 ids."""
    reader = _Reader(conn)
    out: dict[str, CustomerFacts] = {}
    unique = sorted(set(customer_ids))
    for chunk in _chunks(unique, MAX_IDS_PER_QUERY):
        marks = ", ".join("?" * len(chunk))
        out.update(reader.facts(f"customer_id in ({marks})", chunk))
    return out


def iter_all_facts(conn: sqlite3.Connection, chunk: int = 5000) -> Iterator[CustomerFacts]:
    """Facts of every customer, in customer id order, for the daily batch.

    Reads ``chunk`` customers at a time by key range (``customer_id between first and last``),
    which walks each clustered table in order instead of probing it id by id, and has no
    host-parameter limit.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    reader = _Reader(conn)
    after: str | None = None
    while True:
        ids = reader.rows(
            "select customer_id from customers where customer_id > ? order by customer_id limit ?",
            ["" if after is None else after, chunk],
        )
        if not ids:
            return
        first, last = ids[0][0], ids[-1][0]
        facts = reader.facts("customer_id between ? and ?", [first, last])
        for (customer_id,) in ids:
            found = facts.get(customer_id)
            if found is not None:
                yield found
        after = last


def resolve_customer_id(conn: sqlite3.Connection, customer_id: str) -> str | None:
    """The current id of a customer: itself if the snapshot has it, else the survivor it was
    merged into (customer_aliases already follows chains of merges), else None.

    Channels keep the ids they were given; after a merge the older id still reaches the person
    (and so the same decision, caps and assignment).
    """
    reader = _Reader(conn)
    found = reader.rows("select customer_id from customers where customer_id = ?", [customer_id])
    if found:
        return str(found[0][0])
    survivor = reader.rows(
        "select customer_id from customer_aliases where alias_customer_id = ?", [customer_id]
    )
    return str(survivor[0][0]) if survivor else None


def load_sales(conn: sqlite3.Connection, now: datetime) -> list[Sale]:
    """The sales running at ``now`` (starts_at <= now < ends_at) with their items, by start
    then sale id. The snapshot holds the as-of day's sales and the next days' (the sales mart);
    this picks those live at the moment of the decision."""
    reader = _Reader(conn)
    moment = format_timestamp(now)
    headers = reader.rows(
        "select sale_id, title, theme, category, brand, discount_percent, starts_at, ends_at "
        "from sales where starts_at <= ? and ends_at > ? order by starts_at, sale_id",
        [moment, moment],
    )
    items: dict[str, list[SaleItem]] = {}
    sale_ids = [row[0] for row in headers]
    for chunk in _chunks(sale_ids, MAX_IDS_PER_QUERY):
        marks = ", ".join("?" * len(chunk))
        for sale_id, product_id, name, category, brand, regular, price in reader.rows(
            "select sale_id, product_id, product_name, category, brand, regular_price, "
            f"sale_price from sale_items where sale_id in ({marks}) order by sale_id, product_id",
            chunk,
        ):
            items.setdefault(sale_id, []).append(
                SaleItem(
                    product_id=product_id,
                    product_name=name or product_id,
                    category=category or "",
                    brand=brand or "",
                    regular_price=float(regular) if regular is not None else 0.0,
                    sale_price=float(price) if price is not None else 0.0,
                )
            )
    return [
        Sale(
            sale_id=sale_id,
            title=title or sale_id,
            theme=theme or "",
            category=category or "",
            brand=brand,
            discount_percent=float(discount) if discount is not None else 0.0,
            starts_at=_required_timestamp(starts_at),
            ends_at=_required_timestamp(ends_at),
            items=tuple(items.get(sale_id, ())),
        )
        for sale_id, title, theme, category, brand, discount, starts_at, ends_at in headers
    ]
