"""The outbox: messages triggers decided to send, written in the processor's transaction.

A trigger's message is inserted in the same SQLite transaction (``CDP_HOME/events/state.sqlite``)
as the processor's offset and live-profile changes, so a crash either keeps both or neither;
the delivery worker (``events.delivery``) reads it from there. The key (the decision id and the
channel) is unique: a batch processed again after a crash finds its messages already there and
inserts nothing, so a trigger never fires twice with different keys.

A message's life: ``pending`` (due when ``next_attempt_at`` has passed) -> ``delivered`` after a
2xx, or ``dead`` (the dead-letter store) when it kept failing past its retry window, or at once
when its channel has no webhook. ``replay`` puts dead messages back to pending with a fresh
window (``replayed_at``). A claim only records the attempt (``attempts``, ``last_attempt_at``):
the message stays pending until its outcome is written, so a worker killed mid-request leaves
it due and it is sent again with the same key (at-least-once). The single worker per file is
guaranteed by the worker's lock, not by the table. Mutating functions run in the caller's
transaction (:func:`transaction`), like :func:`enqueue`; all times are integer microseconds UTC.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import orjson

# One conversion for every SQLite store of the platform (exact integer arithmetic, UTC);
# re-exported here for the events library's modules.
from decisions.store import from_micros, to_micros

#: Message states: waiting to be (re)tried, delivered, or given up on (dead letter).
PENDING: Final[str] = "pending"
DELIVERED: Final[str] = "delivered"
DEAD: Final[str] = "dead"
STATUSES: Final[tuple[str, ...]] = (PENDING, DELIVERED, DEAD)

OUTBOX_SCHEMA: Final[tuple[str, ...]] = (
    """
    create table if not exists outbox (
        message_id integer primary key,
        message_key text not null unique,
        channel text not null,
        trigger_name text not null,
        customer_id text not null,
        decision_id text not null,
        payload text not null,
        created_at integer not null,
        status text not null default 'pending',
        attempts integer not null default 0,
        next_attempt_at integer not null,
        last_attempt_at integer,
        last_error text,
        delivered_at integer,
        dead_at integer,
        replayed_at integer
    ) strict
    """,
    "create index if not exists outbox_due on outbox (status, next_attempt_at)",
)

#: Columns added after the first release of the table: name -> declaration (ensure_schema).
_ADDED_COLUMNS: Final[dict[str, str]] = {"replayed_at": "integer"}


@dataclass(frozen=True)
class OutboxMessage:
    """One message for one channel; ``key`` is the idempotency key the receiver sees."""

    key: str
    channel: str
    trigger: str
    customer_id: str
    decision_id: str
    payload: Mapping[str, Any]
    created_at: datetime


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the outbox tables if missing (idempotent; call inside the state migration)."""
    for statement in OUTBOX_SCHEMA:
        conn.execute(statement)
    present = {row[1] for row in conn.execute("pragma table_info(outbox)")}
    for name, declaration in _ADDED_COLUMNS.items():
        if name not in present:
            conn.execute(f"alter table outbox add column {name} {declaration}")


def enqueue(conn: sqlite3.Connection, messages: Sequence[OutboxMessage]) -> int:
    """Insert ``messages`` in the caller's transaction; ones whose key exists are skipped.

    Returns how many were new.
    """
    before = conn.total_changes
    conn.executemany(
        "insert into outbox (message_key, channel, trigger_name, customer_id, decision_id, "
        "payload, created_at, next_attempt_at) values (?, ?, ?, ?, ?, ?, ?, ?) "
        "on conflict (message_key) do nothing",
        [
            (
                m.key,
                m.channel,
                m.trigger,
                m.customer_id,
                m.decision_id,
                orjson.dumps(m.payload, option=orjson.OPT_SORT_KEYS).decode(),
                to_micros(m.created_at),
                to_micros(m.created_at),
            )
            for m in messages
        ],
    )
    return conn.total_changes - before


def _at(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


@dataclass(frozen=True)
class OutboxRecord:
    """A stored message with its delivery state (what ``cdp outbox show`` prints)."""

    message_id: int
    key: str
    channel: str
    trigger: str
    customer_id: str
    decision_id: str
    #: the payload exactly as stored (sorted-key JSON): the body the webhook receives
    payload_json: str
    created_at: datetime
    status: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    dead_at: datetime | None
    replayed_at: datetime | None

    @property
    def payload(self) -> Any:
        """The payload, parsed."""
        return orjson.loads(self.payload_json)

    def retry_deadline(self, max_age: timedelta) -> datetime:
        """When retrying stops: ``max_age`` after creation, or after the last replay."""
        start = self.replayed_at if self.replayed_at is not None else self.created_at
        return start + max_age


_COLUMNS: Final[str] = (
    "message_id, message_key, channel, trigger_name, customer_id, decision_id, payload, "
    "created_at, status, attempts, next_attempt_at, last_attempt_at, last_error, delivered_at, "
    "dead_at, replayed_at"
)


def _record(row: Sequence[Any]) -> OutboxRecord:
    return OutboxRecord(
        message_id=row[0],
        key=row[1],
        channel=row[2],
        trigger=row[3],
        customer_id=row[4],
        decision_id=row[5],
        payload_json=row[6],
        created_at=from_micros(row[7]),
        status=row[8],
        attempts=row[9],
        next_attempt_at=from_micros(row[10]),
        last_attempt_at=_at(row[11]),
        last_error=row[12],
        delivered_at=_at(row[13]),
        dead_at=_at(row[14]),
        replayed_at=_at(row[15]),
    )


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One short write transaction (``begin immediate``) on an autocommit connection."""
    conn.execute("begin immediate")
    try:
        yield conn
    except BaseException:
        conn.execute("rollback")
        raise
    conn.execute("commit")


def claim_due(
    conn: sqlite3.Connection, now: datetime, limit: int, exclude: Collection[int] = ()
) -> list[OutboxRecord]:
    """Up to ``limit`` pending messages due at ``now`` (oldest due first, ``exclude``d ids
    skipped), with the attempt recorded: ``attempts`` + 1 and ``last_attempt_at`` = now.

    Run it in a transaction; the returned records show the attempt number being made.
    """
    if limit <= 0:
        return []
    skip = sorted(exclude)
    not_in = f" and message_id not in ({', '.join('?' * len(skip))})" if skip else ""
    ids = [
        row[0]
        for row in conn.execute(
            "select message_id from outbox where status = 'pending' and next_attempt_at <= ?"
            f"{not_in} order by next_attempt_at, message_id limit ?",
            (to_micros(now), *skip, limit),
        )
    ]
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    conn.execute(
        f"update outbox set attempts = attempts + 1, last_attempt_at = ? "
        f"where message_id in ({marks})",
        (to_micros(now), *ids),
    )
    rows = conn.execute(
        f"select {_COLUMNS} from outbox where message_id in ({marks}) "
        "order by next_attempt_at, message_id",
        ids,
    ).fetchall()
    return [_record(row) for row in rows]


def next_due_at(conn: sqlite3.Connection) -> datetime | None:
    """When the earliest pending message is due (None: nothing pending)."""
    row = conn.execute(
        "select min(next_attempt_at) from outbox where status = 'pending'"
    ).fetchone()
    return _at(row[0])


def mark_delivered(conn: sqlite3.Connection, message_id: int, at: datetime) -> bool:
    """Record a 2xx; False when the message was no longer pending (left unchanged)."""
    cursor = conn.execute(
        "update outbox set status = 'delivered', delivered_at = ?, last_error = null "
        "where message_id = ? and status = 'pending'",
        (to_micros(at), message_id),
    )
    return cursor.rowcount == 1


def mark_retry(
    conn: sqlite3.Connection, message_id: int, error: str, next_attempt_at: datetime
) -> bool:
    """Record a failed attempt and when to try again; False when no longer pending."""
    cursor = conn.execute(
        "update outbox set last_error = ?, next_attempt_at = ? "
        "where message_id = ? and status = 'pending'",
        (error[:1000], to_micros(next_attempt_at), message_id),
    )
    return cursor.rowcount == 1


def mark_dead(conn: sqlite3.Connection, message_id: int, error: str, at: datetime) -> bool:
    """Move a message to the dead-letter store with the reason; False when not pending."""
    cursor = conn.execute(
        "update outbox set status = 'dead', dead_at = ?, last_error = ? "
        "where message_id = ? and status = 'pending'",
        (to_micros(at), error[:1000], message_id),
    )
    return cursor.rowcount == 1


def list_messages(
    conn: sqlite3.Connection,
    status: str | None = None,
    *,
    channel: str | None = None,
    limit: int = 50,
) -> list[OutboxRecord]:
    """Messages with ``status`` (any when None), newest first."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status '{status}' (known: {', '.join(STATUSES)})")
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if channel is not None:
        where.append("channel = ?")
        params.append(channel)
    clause = f" where {' and '.join(where)}" if where else ""
    rows = conn.execute(
        f"select {_COLUMNS} from outbox{clause} order by message_id desc limit ?",
        (*params, max(0, limit)),
    ).fetchall()
    return [_record(row) for row in rows]


def get_message(conn: sqlite3.Connection, key: str) -> OutboxRecord | None:
    """The message with idempotency key ``key``."""
    row = conn.execute(f"select {_COLUMNS} from outbox where message_key = ?", (key,)).fetchone()
    return None if row is None else _record(row)


@dataclass(frozen=True)
class ReplayResult:
    """What ``replay`` did: keys put back to pending, and keys left alone with why."""

    replayed: tuple[str, ...]
    skipped: Mapping[str, str] = field(default_factory=dict)


#: ``last_error`` of a message dead-lettered because its person was erased (privacy): such a
#: message has no payload left and must never be replayed.
ERASED_ERROR: Final[str] = "erased"


def replay(
    conn: sqlite3.Connection,
    keys: Sequence[str] = (),
    *,
    all_dead: bool = False,
    now: datetime,
) -> ReplayResult:
    """Dead messages (``keys``, or every one with ``all_dead``) back to pending, due ``now``,
    attempts reset and a fresh retry window; run it in a transaction."""
    if all_dead == bool(keys):
        raise ValueError("replay: give message keys or all_dead=True (not both)")
    at = to_micros(now)
    if all_dead:
        chosen = [
            r[0]
            for r in conn.execute(
                "select message_key from outbox where status = 'dead' "
                "and coalesce(last_error, '') != ?",
                (ERASED_ERROR,),
            )
        ]
        skipped: dict[str, str] = {}
    else:
        chosen = []
        skipped = {}
        for key in dict.fromkeys(keys):
            row = conn.execute(
                "select status, last_error from outbox where message_key = ?", (key,)
            ).fetchone()
            if row is None:
                skipped[key] = "no such message"
            elif row[0] != DEAD:
                skipped[key] = f"not dead (status {row[0]})"
            elif row[1] == ERASED_ERROR:
                skipped[key] = "its person was erased: never sent again"
            else:
                chosen.append(key)
    conn.executemany(
        "update outbox set status = 'pending', attempts = 0, next_attempt_at = ?, "
        "replayed_at = ?, dead_at = null where message_key = ? and status = 'dead'",
        [(at, at, key) for key in chosen],
    )
    return ReplayResult(replayed=tuple(chosen), skipped=skipped)


@dataclass(frozen=True)
class OutboxCounts:
    """The outbox at a glance: for ``cdp outbox status`` and the metrics."""

    by_status: Mapping[str, int]
    #: (channel, status) -> messages
    by_channel: Mapping[tuple[str, str], int]
    #: pending messages: waiting for a first try or a retry
    depth: int
    oldest_pending_at: datetime | None
    #: attempts that did not end in delivery (retries and the last tries of dead messages)
    failed_attempts: int

    def oldest_pending_age_seconds(self, now: datetime) -> float:
        """How long the oldest pending message has waited (0 when none)."""
        if self.oldest_pending_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_pending_at).total_seconds())


def counts(conn: sqlite3.Connection) -> OutboxCounts:
    """Counts by status and channel, the depth and the oldest pending message."""
    by_status = dict.fromkeys(STATUSES, 0)
    by_channel: dict[tuple[str, str], int] = {}
    failed = 0
    # a delivered message's last attempt succeeded; a pending one claimed since its last
    # outcome (last attempt at or after its due time) has that attempt in flight
    for channel, status, number, attempts, in_flight in conn.execute(
        "select channel, status, count(*), coalesce(sum(attempts), 0), "
        "coalesce(sum(status = 'pending' and last_attempt_at >= next_attempt_at), 0) "
        "from outbox group by channel, status order by channel, status"
    ):
        by_status[status] = by_status.get(status, 0) + number
        by_channel[(channel, status)] = number
        failed += attempts - (number if status == DELIVERED else in_flight)
    oldest = conn.execute("select min(created_at) from outbox where status = 'pending'").fetchone()[
        0
    ]
    return OutboxCounts(
        by_status=by_status,
        by_channel=by_channel,
        depth=by_status[PENDING],
        oldest_pending_at=_at(oldest),
        failed_attempts=max(0, failed),
    )
