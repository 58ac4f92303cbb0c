"""The stream processor's state: offsets, live profile, real-time identity, timers, firings.

One SQLite file (``CDP_HOME/events/state.sqlite``) in WAL mode holds everything the processor
derives from the log AND the outbox, so a batch's identity links, live-profile changes, timers,
firings, outbox messages and the new offset commit in one transaction: a crash keeps all of a
batch or none of it. ``synchronous=NORMAL`` is enough here: the state is derived from the durable
log, and a commit lost to a power cut is replayed from the offset that was lost with it.

Readers (the API's live profile, the delivery worker) open their own connections; WAL lets them
read while the processor writes. Timestamps are integer microseconds since the epoch (UTC).
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Final

from events.outbox import ensure_schema, to_micros, transaction

#: Bumped when a table changes shape; an older file is migrated, a newer one refused.
SCHEMA_VERSION: Final[int] = 1

STATE_SCHEMA: Final[tuple[str, ...]] = (
    """
    create table if not exists consumer_offsets (
        consumer text primary key,
        offset integer not null,
        updated_at integer not null
    ) strict
    """,
    """
    create table if not exists live_identities (
        identifier_type text not null,
        identifier_value text not null,
        customer_id text not null,
        is_provisional integer not null,
        linked_at integer not null,
        primary key (identifier_type, identifier_value)
    ) strict, without rowid
    """,
    "create index if not exists live_identities_customer on live_identities (customer_id)",
    """
    create table if not exists live_aliases (
        alias_customer_id text primary key,
        customer_id text not null,
        linked_at integer not null
    ) strict, without rowid
    """,
    "create index if not exists live_aliases_customer on live_aliases (customer_id)",
    """
    create table if not exists live_profiles (
        customer_id text primary key,
        is_provisional integer not null,
        first_seen_at integer not null,
        last_seen_at integer not null,
        event_count integer not null,
        updated_offset integer not null
    ) strict, without rowid
    """,
    """
    create table if not exists live_counters (
        customer_id text not null,
        kind text not null,
        count integer not null,
        primary key (customer_id, kind)
    ) strict, without rowid
    """,
    """
    create table if not exists live_product_views (
        customer_id text not null,
        product_id text not null,
        viewed_at integer not null,
        view_count integer not null,
        offset integer not null,
        primary key (customer_id, product_id)
    ) strict, without rowid
    """,
    "create index if not exists live_product_views_product "
    "on live_product_views (product_id, viewed_at)",
    """
    create table if not exists live_cart (
        customer_id text not null,
        product_id text not null,
        quantity integer not null,
        price real,
        updated_at integer not null,
        primary key (customer_id, product_id)
    ) strict, without rowid
    """,
    """
    create table if not exists live_events (
        customer_id text not null,
        offset integer not null,
        message_id text not null,
        kind text not null,
        event text,
        occurred_at integer not null,
        product_id text,
        primary key (customer_id, offset)
    ) strict, without rowid
    """,
    """
    create table if not exists product_prices (
        product_id text primary key,
        price real not null,
        previous_price real,
        changed_at integer not null,
        offset integer not null
    ) strict, without rowid
    """,
    """
    create table if not exists timers (
        timer_key text primary key,
        trigger_name text not null,
        customer_id text not null,
        due_at integer not null,
        payload text not null,
        fired_at integer
    ) strict
    """,
    "create index if not exists timers_due on timers (fired_at, due_at)",
    """
    create table if not exists trigger_firings (
        firing_key text primary key,
        trigger_name text not null,
        customer_id text not null,
        decision_id text,
        fired_at integer not null,
        sent integer not null,
        reasons text not null
    ) strict
    """,
    """
    create table if not exists segment_watch (
        watch_id integer primary key check (watch_id = 1),
        snapshot_id text not null,
        segments text not null, -- JSON list of the segments whose members are stored
        processed_at integer not null
    ) strict
    """,
    """
    create table if not exists segment_members (
        segment text not null,
        customer_id text not null,
        primary key (segment, customer_id)
    ) strict, without rowid
    """,
    """
    create table if not exists dead_events (
        offset integer primary key,
        message_id text not null,
        kind text not null,
        error text not null,
        event text not null,
        failed_at integer not null
    ) strict
    """,
)


class StateError(RuntimeError):
    """The state file cannot be used (written by a newer platform, or not a database)."""


def now_micros() -> int:
    """The wall clock in integer microseconds (UTC)."""
    return time.time_ns() // 1000


def state_path(home: Path) -> Path:
    """Where the processor's state lives under ``CDP_HOME``."""
    return Path(home) / "events" / "state.sqlite"


def connect(path: Path, *, busy_timeout_ms: int = 10_000) -> sqlite3.Connection:
    """A read-write connection in WAL mode (autocommit; callers open transactions)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=busy_timeout_ms / 1000,
        cached_statements=256,
    )
    conn.execute(f"pragma busy_timeout = {int(busy_timeout_ms)}")
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        # several processes creating the file at once may see "database is locked" here
        try:
            mode = conn.execute("pragma journal_mode = wal").fetchone()[0]
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.01)
        except sqlite3.DatabaseError:
            conn.close()
            raise
    if str(mode).lower() != "wal":
        conn.close()
        raise StateError(f"{path}: cannot switch the state file to WAL (got {mode})")
    conn.execute("pragma synchronous = NORMAL")
    conn.execute("pragma temp_store = memory")
    conn.execute("pragma cache_size = -32768")
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create or upgrade the schema (state tables and the outbox) in one transaction."""
    conn.execute("begin immediate")
    try:
        version = conn.execute("pragma user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{path}: state schema version {version} is newer than this platform's "
                f"({SCHEMA_VERSION}); upgrade the platform or remove the file to rebuild it "
                "from the log"
            )
        for statement in STATE_SCHEMA:
            conn.execute(statement)
        ensure_schema(conn)
        conn.execute(f"pragma user_version = {SCHEMA_VERSION}")
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise


def connect_checked(path: Path) -> sqlite3.Connection:
    """``connect``, with a file that is not a database reported as a StateError."""
    try:
        return connect(path)
    except sqlite3.DatabaseError as exc:
        raise StateError(f"{path}: not a usable state database ({exc})") from exc


class StateStore:
    """The processor's state file: open, migrate, transactions and committed offsets."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.conn = connect_checked(self.path)
        try:
            migrate(self.conn, self.path)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise StateError(f"{self.path}: not a usable state database ({exc})") from exc
        except BaseException:
            self.conn.close()
            raise

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction (``begin immediate``): committed on exit, rolled back on error."""
        return transaction(self.conn)

    def offset(self, consumer: str) -> int:
        """The committed offset of ``consumer`` (0: nothing processed yet)."""
        row = self.conn.execute(
            "select offset from consumer_offsets where consumer = ?", (consumer,)
        ).fetchone()
        return int(row[0]) if row else 0

    def count(self, table: str) -> int:
        """Rows in one of the state tables (metrics and tests)."""
        known = {"outbox", "dead_events", "trigger_firings", "timers", "live_profiles"}
        if table not in known:
            raise ValueError(f"unknown table '{table}' (known: {sorted(known)})")
        return int(self.conn.execute(f"select count(*) from {table}").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def set_offset(conn: sqlite3.Connection, consumer: str, offset: int, at: datetime) -> None:
    """Record ``consumer``'s offset in the caller's transaction."""
    conn.execute(
        "insert into consumer_offsets (consumer, offset, updated_at) values (?, ?, ?) "
        "on conflict (consumer) do update set offset = excluded.offset, "
        "updated_at = excluded.updated_at",
        (consumer, offset, to_micros(at)),
    )
