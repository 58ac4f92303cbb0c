"""The stream processor: the log, read from its committed offset, into live state and triggers.

Each batch (up to ``batch_size`` events after the committed offset) is applied in ONE state
transaction together with the new offset: identity links, live profile, timers, firings and
outbox messages. A crash before the commit loses the whole batch's effects and the offset with
them, so the restarted processor does the batch again from the same state: replay changes
nothing (the decision service is idempotent per period and answers a replayed firing with the
same decision, hence the same outbox key).

A poison event (one whose processing raises) is rolled back to its savepoint, kept in
``dead_events`` with the error and counted; the stream goes on. Errors of the state file itself
(locked, disk I/O) are not the event's fault: the batch is rolled back and retried.

Between batches the loop polls the log every few milliseconds when idle (the target is an
accepted event visible in the live profile within 100 ms at p99), fires due cart timers at
least every ``timer_interval`` (200 ms by default; a timer fires within that of its due time
even when no event arrives) and diffs segment memberships when serving/CURRENT changes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from decisions.service import DecisionService
from decisions.store import DecisionStore, default_store_path
from events.config import RealtimeConfig, load_realtime
from events.consent import apply_consent
from events.live import apply_event, move_customer, prune_views
from events.outbox import from_micros, to_micros
from events.resolve import SnapshotSource, SnapshotView, resolve_event
from events.state import StateStore, now_micros, set_offset, state_path
from events.triggers import FiringCounts, Triggers
from events.types import CATALOG_KINDS, EventLog, LoggedEvent
from identity import Normalizer

logger = logging.getLogger(__name__)

#: The consumer name the processor's offset is stored under.
CONSUMER: Final[str] = "stream_processor"
#: Whether an event belongs to an erased person (built by ``cdp stream`` from the privacy
#: library's suppression list: ``events`` may not import ``privacy``).
SuppressedFn = Callable[[LoggedEvent], bool]
#: How long the idle loop sleeps between polls of the log.
IDLE_POLL_SECONDS: Final[float] = 0.003
#: How often product views older than the retention are pruned.
PRUNE_SECONDS: Final[float] = 600.0


def acquire_lock(home: Path) -> int | None:
    """Hold ``CDP_HOME/events/processor.lock`` (released by the kernel when the process dies);
    None when another processor holds it: one processor per state file."""
    path = Path(home) / "events" / "processor.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def release_lock(fd: int) -> None:
    """Give the processor lock back."""
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def log_path(home: Path) -> Path:
    """Where the event log lives under ``CDP_HOME``."""
    return Path(home) / "events" / "log.sqlite"


@dataclass
class ProcessorCounters:
    """What the processor did since start, for metrics and the CLI's throughput line."""

    processed: int = 0
    dead: int = 0
    unattributed: int = 0
    #: events of erased persons skipped (the ``suppressed`` hook said so)
    suppressed: int = 0
    batches: int = 0
    retries: int = 0
    offset: int = 0
    head: int = 0
    last_batch_seconds: float = 0.0
    firings: FiringCounts = field(default_factory=FiringCounts)

    @property
    def lag(self) -> int:
        """Events committed to the log and not yet processed."""
        return max(0, self.head - self.offset)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (metrics exporters, logs)."""
        return {**asdict(self), "lag": self.lag}


class StreamProcessor:
    """Reads one event log into one state file; one instance per state file."""

    def __init__(
        self,
        log: EventLog,
        state: StateStore,
        config: RealtimeConfig,
        service: DecisionService,
        snapshots: SnapshotSource,
        *,
        batch_size: int = 500,
        timer_interval: float = 0.2,
        suppressed: SuppressedFn | None = None,
    ) -> None:
        """``suppressed``: asked per event; True skips it (counted), so an event logged before
        its person was erased and processed after cannot rebuild their live profile."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.log = log
        self.state = state
        self.config = config
        self.service = service
        self.snapshots = snapshots
        self.batch_size = batch_size
        self.timer_interval = timer_interval
        self.suppressed = suppressed
        self.triggers = Triggers(config, service)
        self.counters = ProcessorCounters(firings=self.triggers.counts)
        self.counters.offset = state.offset(CONSUMER)
        self._owned: list[Any] = []
        self._next_timer_check = 0.0
        self._next_prune = 0.0

    @classmethod
    def from_home(
        cls,
        home: Path,
        *,
        config_path: Path | None = None,
        log: EventLog | None = None,
        batch_size: int = 500,
        suppressed: SuppressedFn | None = None,
    ) -> StreamProcessor:
        """The processor over ``CDP_HOME``: its log, state, decision log, cdp.yml, snapshots.

        RealtimeConfigError / PolicyError (naming file and key) for an invalid cdp.yml.
        """
        home = Path(home)
        config, policy = load_realtime(config_path or home / "cdp.yml")
        owned: list[Any] = []
        if log is None:
            from events.log import SqliteEventLog  # helper A's embedded log

            log = SqliteEventLog(log_path(home))
            owned.append(log)
        state = StateStore(state_path(home))
        owned.append(state)
        store = DecisionStore.open(default_store_path(home))
        owned.append(store)
        service = DecisionService(policy, store, store.assignment_key())
        snapshots = SnapshotSource(home / "serving")
        owned.append(snapshots)
        processor = cls(
            log, state, config, service, snapshots, batch_size=batch_size, suppressed=suppressed
        )
        processor._owned = owned
        return processor

    # -- one batch ---------------------------------------------------------------------------

    def process_batch(self) -> int:
        """Read and apply the next batch in one transaction with its offset; events done."""
        offset = self.state.offset(CONSUMER)
        events = self.log.read(offset, self.batch_size)
        if not events:
            self.counters.offset = offset
            return 0
        started = time.perf_counter()
        snapshot = self.snapshots.current()
        normalizer = self.snapshots.normalizer
        dead = unattributed = suppressed = 0
        with self.state.transaction() as conn:
            committed = conn.execute(
                "select offset from consumer_offsets where consumer = ?", (CONSUMER,)
            ).fetchone()
            if (int(committed[0]) if committed else 0) != offset:
                return 0  # another processor got there first (the lock should prevent it)
            for event in events:
                if event.offset <= offset:
                    continue  # a log handing an event again: already applied
                if self.suppressed is not None and self.suppressed(event):
                    suppressed += 1  # an erased person's: consumed, never applied
                    continue
                outcome = self._apply(conn, snapshot, normalizer, event)
                dead += outcome == "dead"
                unattributed += outcome == "unattributed"
            last = events[-1].offset
            set_offset(conn, CONSUMER, max(last, offset), datetime.now(UTC))
        self.counters.processed += len(events)
        self.counters.dead += dead
        self.counters.unattributed += unattributed
        self.counters.suppressed += suppressed
        self.counters.batches += 1
        self.counters.offset = max(last, offset)
        self.counters.last_batch_seconds = time.perf_counter() - started
        return len(events)

    def _apply(
        self,
        conn: sqlite3.Connection,
        snapshot: SnapshotView | None,
        normalizer: Normalizer,
        event: LoggedEvent,
    ) -> str:
        """One event under a savepoint: 'ok', 'unattributed', or 'dead' (kept with the error)."""
        conn.execute("savepoint event")
        try:
            at = to_micros(event.received_at)
            resolution = resolve_event(
                conn,
                snapshot,
                normalizer,
                self.config.identifiers,
                event,
                at,
                self._move,
            )
            if resolution is not None:
                apply_event(
                    conn,
                    resolution.customer_id,
                    resolution.is_provisional,
                    event,
                    self.config.live,
                )
            customer_id = None if resolution is None else resolution.customer_id
            # a consent statement goes to the decision log first: every path that sends reads it
            apply_consent(self.service.store, event, customer_id)
            self.triggers.on_event(conn, snapshot, event, customer_id)
        except sqlite3.OperationalError:
            conn.execute("rollback to event")
            conn.execute("release event")
            raise  # the state file's trouble, not the event's: the batch is retried
        except Exception as exc:
            conn.execute("rollback to event")
            conn.execute("release event")
            logger.exception(
                "event at offset %s (%s) failed; kept in dead_events",
                event.offset,
                event.message_id,
            )
            self._dead(conn, event, exc)
            return "dead"
        conn.execute("release event")
        if resolution is None and event.kind not in CATALOG_KINDS:
            return "unattributed"
        return "ok"

    def _dead(self, conn: sqlite3.Connection, event: LoggedEvent, exc: Exception) -> None:
        summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        record = {
            "message_id": event.message_id,
            "source": event.source,
            "type": event.type,
            "kind": event.kind.value,
            "event": event.event,
            "occurred_at": event.occurred_at.isoformat(),
            "anonymous_id": event.anonymous_id,
            "user_id": event.user_id,
            "products": [asdict(p) for p in event.products],
        }
        conn.execute(
            "insert into dead_events (offset, message_id, kind, error, event, failed_at) "
            "values (?, ?, ?, ?, ?, ?) on conflict (offset) do nothing",
            (
                event.offset,
                event.message_id,
                event.kind.value,
                summary[:2000],
                orjson.dumps(record, default=str).decode(),
                now_micros(),
            ),
        )

    def _move(
        self, conn: sqlite3.Connection, from_id: str, to_id: str, provisional: bool, at: int
    ) -> None:
        move_customer(conn, from_id, to_id, provisional, at, self.config.live)
        self.triggers.on_move(conn, from_id, to_id)

    # -- timers, segments, housekeeping ------------------------------------------------------

    def fire_timers(self, now: datetime | None = None) -> int:
        """Fire the cart timers due at ``now`` (default: the wall clock) in one transaction."""
        micros = now_micros() if now is None else round(now.timestamp() * 1_000_000)
        due = self.triggers.next_due(self.state.conn)
        if due is None or due > micros:
            return 0
        snapshot = self.snapshots.current()
        with self.state.transaction() as conn:
            return self.triggers.fire_due(conn, snapshot, micros)

    def check_segments(self) -> int:
        """Diff segment memberships when a new snapshot is served (one transaction)."""
        snapshot = self.snapshots.current()
        if snapshot is None:
            return 0
        row = self.state.conn.execute(
            "select snapshot_id from segment_watch where watch_id = 1"
        ).fetchone()
        if row is not None and row[0] == snapshot.id:
            return 0
        with self.state.transaction() as conn:
            changes = self.triggers.check_segments(conn, snapshot)
        logger.info("snapshot %s: %d segment membership changes fired", snapshot.id, changes)
        return changes

    def prune(self, now: datetime | None = None) -> int:
        """Forget product views older than any trigger or the live profile looks back."""
        days = max(
            [self.config.live.view_retention_days]
            + [t.viewed_within_days for t in self.triggers.price_drops]
        )
        before = (now or datetime.now(UTC)) - timedelta(days=days)
        with self.state.transaction() as conn:
            return prune_views(conn, before)

    def tick(self) -> None:
        """Timers (every ``timer_interval``), segments (when CURRENT changed), pruning."""
        clock = time.monotonic()
        if clock >= self._next_timer_check:
            self._next_timer_check = clock + self.timer_interval
            self.fire_timers()
            self.check_segments()
        if clock >= self._next_prune:
            self._next_prune = clock + PRUNE_SECONDS
            self.prune()

    def refresh_head(self) -> int:
        """Read the log's head (for the lag)."""
        self.counters.head = self.log.head()
        return self.counters.head

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, once: bool = False) -> None:
        """Process until ``stop`` is set (``once``: until the log's head, then return)."""
        backoff = 0.05
        while not stop.is_set():
            try:
                done = self.process_batch()
                self.tick()
                backoff = 0.05
            except sqlite3.OperationalError as exc:
                self.counters.retries += 1
                logger.warning("state or log busy (%s); retrying in %.2fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if done:
                continue
            if once:
                self.refresh_head()
                if self.counters.offset >= self.counters.head:
                    return
                continue
            stop.wait(IDLE_POLL_SECONDS)

    def metrics(self) -> dict[str, Any]:
        """The counters with a fresh head and lag."""
        self.refresh_head()
        return self.counters.as_dict()

    def close(self) -> None:
        """Release what ``from_home`` opened."""
        for owned in reversed(self._owned):
            owned.close()
        self._owned = []


def dead_events(state: StateStore, limit: int = 100) -> list[dict[str, Any]]:
    """The kept poison events, newest first (operators, tests)."""
    rows = state.conn.execute(
        "select offset, message_id, kind, error, event, failed_at from dead_events "
        "order by offset desc limit ?",
        (limit,),
    ).fetchall()
    return [
        {
            "offset": o,
            "message_id": m,
            "kind": k,
            "error": e,
            "event": orjson.loads(body),
            "failed_at": from_micros(int(at)),
        }
        for o, m, k, e, body, at in rows
    ]


@dataclass(frozen=True)
class StreamStatus:
    """What another process (the API's /metrics, ``cdp events``) can read of the processor."""

    offset: int
    dead_events: int
    firings: int
    firings_sent: int
    armed_timers: int
    live_profiles: int


def read_status(conn: sqlite3.Connection) -> StreamStatus:
    """The processor's progress from its state file (a read-only connection is enough); the
    lag is the log's head minus ``offset``."""
    row = conn.execute(
        "select "
        "(select coalesce(max(offset), 0) from consumer_offsets where consumer = ?), "
        "(select count(*) from dead_events), "
        "(select count(*) from trigger_firings), "
        "(select count(*) from trigger_firings where sent = 1), "
        "(select count(*) from timers where fired_at is null), "
        "(select count(*) from live_profiles)",
        (CONSUMER,),
    ).fetchone()
    return StreamStatus(*(int(value) for value in row))
