"""The live profile: what a customer did in the last seconds, ahead of the next batch run.

The processor applies each event here, inside its batch transaction: last seen, the recent
product views (one row per customer and product, also what the price-drop trigger searches by
product), the cart (add, remove, cleared by a purchase), counters by event kind and the recent N
events. Serving reads it through ``open_live_reader`` / ``read_live``: a read-only connection on
the WAL file, which never blocks the processor, and a read that merges a customer with the
provisional ids that turned out to be them (``live_aliases``). Product names are the snapshot's
business; the API joins them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from events.config import LiveProfileSettings
from events.outbox import from_micros, to_micros
from events.resolve import record_alias
from events.types import EventKind, LoggedEvent


@dataclass(frozen=True)
class LiveEvent:
    """One recent event of a customer, as the live profile keeps it."""

    offset: int
    message_id: str
    kind: str
    event: str | None
    occurred_at: datetime
    product_id: str | None


@dataclass(frozen=True)
class LiveProfile:
    """A customer's live state, merged over the customer's id and its live aliases."""

    customer_id: str
    customer_ids: tuple[str, ...]
    is_provisional: bool
    first_seen_at: datetime
    last_seen_at: datetime
    #: (product_id, viewed_at), most recent first
    recent_products: tuple[tuple[str, datetime], ...]
    #: (product_id, quantity), by product id
    cart: tuple[tuple[str, int], ...]
    counters: dict[str, int]
    #: most recent first
    recent_events: tuple[LiveEvent, ...]


# --- writing (the processor, in its transaction) ------------------------------------------


def apply_event(
    conn: sqlite3.Connection,
    customer_id: str,
    is_provisional: bool,
    event: LoggedEvent,
    settings: LiveProfileSettings,
) -> None:
    """Apply one event to ``customer_id``'s live profile (caller's transaction)."""
    at = to_micros(event.occurred_at)
    conn.execute(
        "insert into live_profiles (customer_id, is_provisional, first_seen_at, last_seen_at, "
        "event_count, updated_offset) values (?, ?, ?, ?, 1, ?) "
        "on conflict (customer_id) do update set "
        "first_seen_at = min(first_seen_at, excluded.first_seen_at), "
        "last_seen_at = max(last_seen_at, excluded.last_seen_at), "
        "is_provisional = excluded.is_provisional, "
        "event_count = event_count + 1, updated_offset = excluded.updated_offset",
        (customer_id, int(is_provisional), at, at, event.offset),
    )
    conn.execute(
        "insert into live_counters (customer_id, kind, count) values (?, ?, 1) "
        "on conflict (customer_id, kind) do update set count = count + 1",
        (customer_id, event.kind.value),
    )
    first_product = event.products[0].product_id if event.products else None
    conn.execute(
        "insert into live_events (customer_id, offset, message_id, kind, event, occurred_at, "
        "product_id) values (?, ?, ?, ?, ?, ?, ?) on conflict do nothing",
        (
            customer_id,
            event.offset,
            event.message_id,
            event.kind.value,
            event.event,
            at,
            first_product,
        ),
    )
    _trim_events(conn, customer_id, settings.recent_events)
    if event.kind == EventKind.PRODUCT_VIEW:
        for line in event.products:
            conn.execute(
                "insert into live_product_views (customer_id, product_id, viewed_at, view_count, "
                "offset) values (?, ?, ?, 1, ?) on conflict (customer_id, product_id) do update "
                "set viewed_at = max(viewed_at, excluded.viewed_at), "
                "view_count = view_count + 1, offset = excluded.offset",
                (customer_id, line.product_id, at, event.offset),
            )
    elif event.kind == EventKind.ADD_TO_CART:
        for line in event.products:
            conn.execute(
                "insert into live_cart (customer_id, product_id, quantity, price, updated_at) "
                "values (?, ?, ?, ?, ?) on conflict (customer_id, product_id) do update set "
                "quantity = quantity + excluded.quantity, "
                "price = coalesce(excluded.price, price), updated_at = excluded.updated_at",
                (customer_id, line.product_id, max(1, line.quantity), line.price, at),
            )
    elif event.kind == EventKind.REMOVE_FROM_CART:
        for line in event.products:
            conn.execute(
                "update live_cart set quantity = quantity - ?, updated_at = ? "
                "where customer_id = ? and product_id = ?",
                (max(1, line.quantity), at, customer_id, line.product_id),
            )
        conn.execute(
            "delete from live_cart where customer_id = ? and quantity <= 0", (customer_id,)
        )
    elif event.kind == EventKind.PURCHASE:
        conn.execute("delete from live_cart where customer_id = ?", (customer_id,))


def _trim_events(conn: sqlite3.Connection, customer_id: str, keep: int) -> None:
    conn.execute(
        "delete from live_events where customer_id = ? and offset <= ("
        "select offset from live_events where customer_id = ? order by offset desc "
        "limit 1 offset ?)",
        (customer_id, customer_id, keep),
    )


def cart_lines(conn: sqlite3.Connection, customer_id: str) -> list[tuple[str, int, float | None]]:
    """(product_id, quantity, price) of the customer's cart, by product id."""
    return [
        (str(p), int(q), None if price is None else float(price))
        for p, q, price in conn.execute(
            "select product_id, quantity, price from live_cart where customer_id = ? "
            "order by product_id",
            (customer_id,),
        )
    ]


def move_customer(
    conn: sqlite3.Connection,
    from_id: str,
    to_id: str,
    provisional: bool,
    at: int,
    settings: LiveProfileSettings | None = None,
) -> None:
    """Move a provisional customer's live data onto ``to_id`` and record the alias."""
    settings = settings or LiveProfileSettings()
    old = conn.execute(
        "select first_seen_at, last_seen_at, event_count, updated_offset from live_profiles "
        "where customer_id = ?",
        (from_id,),
    ).fetchone()
    if old is not None:
        conn.execute(
            "insert into live_profiles (customer_id, is_provisional, first_seen_at, "
            "last_seen_at, event_count, updated_offset) values (?, ?, ?, ?, ?, ?) "
            "on conflict (customer_id) do update set "
            "first_seen_at = min(first_seen_at, excluded.first_seen_at), "
            "last_seen_at = max(last_seen_at, excluded.last_seen_at), "
            "event_count = event_count + excluded.event_count, "
            "updated_offset = max(updated_offset, excluded.updated_offset)",
            (to_id, int(provisional), *old),
        )
        conn.execute("delete from live_profiles where customer_id = ?", (from_id,))
    conn.execute(
        "insert into live_counters (customer_id, kind, count) "
        "select ?, kind, count from live_counters where customer_id = ? "
        "on conflict (customer_id, kind) do update set count = count + excluded.count",
        (to_id, from_id),
    )
    conn.execute("delete from live_counters where customer_id = ?", (from_id,))
    conn.execute(
        "insert into live_product_views (customer_id, product_id, viewed_at, view_count, offset) "
        "select ?, product_id, viewed_at, view_count, offset from live_product_views "
        "where customer_id = ? on conflict (customer_id, product_id) do update set "
        "viewed_at = max(viewed_at, excluded.viewed_at), "
        "view_count = view_count + excluded.view_count, offset = max(offset, excluded.offset)",
        (to_id, from_id),
    )
    conn.execute("delete from live_product_views where customer_id = ?", (from_id,))
    conn.execute(
        "insert into live_cart (customer_id, product_id, quantity, price, updated_at) "
        "select ?, product_id, quantity, price, updated_at from live_cart where customer_id = ? "
        "on conflict (customer_id, product_id) do update set "
        "quantity = quantity + excluded.quantity, "
        "updated_at = max(updated_at, excluded.updated_at)",
        (to_id, from_id),
    )
    conn.execute("delete from live_cart where customer_id = ?", (from_id,))
    conn.execute("update live_events set customer_id = ? where customer_id = ?", (to_id, from_id))
    _trim_events(conn, to_id, settings.recent_events)
    record_alias(conn, from_id, to_id, provisional, at)


def prune_views(conn: sqlite3.Connection, before: datetime) -> int:
    """Forget product views older than ``before`` (the longest look-back anyone needs)."""
    cursor = conn.execute(
        "delete from live_product_views where viewed_at < ?", (to_micros(before),)
    )
    return cursor.rowcount


# --- reading (serving) --------------------------------------------------------------------


def open_live_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to the state file; WAL readers never block the processor.

    FileNotFoundError when the processor has not created the file yet.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no live state yet (start `cdp stream`)")
    conn = sqlite3.connect(
        path.resolve().as_uri() + "?mode=ro",
        uri=True,
        check_same_thread=False,
        isolation_level=None,
    )
    conn.execute("pragma query_only = 1")
    conn.execute("pragma busy_timeout = 2000")
    return conn


def _marks(values: Collection[str]) -> str:
    return ", ".join("?" * len(values))


def read_live(
    conn: sqlite3.Connection,
    customer_ids: Collection[str],
    *,
    recent_products: int = 20,
    recent_events: int = 50,
) -> LiveProfile | None:
    """The live profile of one person named by ``customer_ids`` (a customer and its merged
    ids), with every live alias of them; None when the live path has not seen them."""
    asked = list(dict.fromkeys(customer_ids))
    if not asked:
        return None
    conn.execute("begin")  # one consistent read across the tables
    try:
        # an alias asked for reads as its customer; a customer reads with all its aliases
        targets = conn.execute(
            f"select customer_id from live_aliases where alias_customer_id in ({_marks(asked)})",
            asked,
        ).fetchall()
        roots = list(dict.fromkeys([*(str(r[0]) for r in targets), *asked]))
        rows = conn.execute(
            f"select alias_customer_id from live_aliases where customer_id in ({_marks(roots)})",
            roots,
        ).fetchall()
        ids = list(dict.fromkeys([*roots, *(str(r[0]) for r in rows)]))
        marks = _marks(ids)
        profiles = conn.execute(
            f"select customer_id, is_provisional, first_seen_at, last_seen_at "
            f"from live_profiles where customer_id in ({marks})",
            ids,
        ).fetchall()
        if not profiles:
            return None
        counters: dict[str, int] = {}
        for kind, count in conn.execute(
            f"select kind, sum(count) from live_counters where customer_id in ({marks}) "
            "group by kind order by kind",
            ids,
        ):
            counters[str(kind)] = int(count)
        products = conn.execute(
            f"select product_id, max(viewed_at) as at from live_product_views "
            f"where customer_id in ({marks}) group by product_id "
            "order by at desc, product_id limit ?",
            [*ids, recent_products],
        ).fetchall()
        cart = conn.execute(
            f"select product_id, sum(quantity) from live_cart where customer_id in ({marks}) "
            "group by product_id order by product_id",
            ids,
        ).fetchall()
        events = conn.execute(
            f"select offset, message_id, kind, event, occurred_at, product_id from live_events "
            f"where customer_id in ({marks}) order by offset desc limit ?",
            [*ids, recent_events],
        ).fetchall()
    finally:
        conn.execute("commit")
    main = next((p for p in profiles if p[0] == roots[0]), profiles[0])
    return LiveProfile(
        customer_id=str(main[0]),
        customer_ids=tuple(ids),
        is_provisional=all(bool(p[1]) for p in profiles),
        first_seen_at=from_micros(min(int(p[2]) for p in profiles)),
        last_seen_at=from_micros(max(int(p[3]) for p in profiles)),
        recent_products=tuple((str(p), from_micros(int(at))) for p, at in products),
        cart=tuple((str(p), int(q)) for p, q in cart if q > 0),
        counters=counters,
        recent_events=tuple(
            LiveEvent(
                offset=int(o),
                message_id=str(m),
                kind=str(k),
                event=e,
                occurred_at=from_micros(int(t)),
                product_id=p,
            )
            for o, m, k, e, t, p in events
        ),
    )
