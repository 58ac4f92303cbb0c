"""Real-time path metrics, read from the event log and the processor's state at scrape time.

Why a collector over the files rather than counters in the API: the processor and the delivery
worker run in ``cdp stream``, another process, and the log is appended to by every API worker;
the SQLite files are the one place that knows the totals. Each scrape opens both files
read-only (WAL readers never block the writers) and runs a few small queries: the log head, a
primary-key lookup for the lag, and GROUP BYs over the failed events (indexed by reason), the
outbox (indexed by status), timers (indexed) and trigger firings. A missing file or table
reports zeros, never an error, so a platform that never ran ``cdp stream`` scrapes cleanly.

Register it on the registry ``/metrics`` renders::

    registry.register(RealtimeCollector.for_home(settings.home))
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from events.outbox import DEAD, DELIVERED, PENDING

logger = logging.getLogger(__name__)

#: Outbox states always reported (zero when empty), so dashboards need no absent() tricks.
OUTBOX_STATUSES: Final[tuple[str, ...]] = (PENDING, DELIVERED, DEAD)


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection, or None when the file does not exist (yet)."""
    if not path.is_file():
        yield None
        return
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error as exc:
        logger.warning("metrics: cannot open %s: %s", path, exc)
        yield None
        return
    with closing(conn):
        conn.execute("pragma query_only = 1")
        yield conn


def _tables(conn: sqlite3.Connection | None) -> frozenset[str]:
    if conn is None:
        return frozenset()
    rows = conn.execute("select name from sqlite_master where type = 'table'").fetchall()
    return frozenset(str(r[0]) for r in rows)


class RealtimeCollector(Collector):
    """Intake, processor, trigger and delivery figures from ``CDP_HOME/events/*.sqlite``."""

    def __init__(self, log_path: Path, state_path: Path) -> None:
        self.log_path = Path(log_path)
        self.state_path = Path(state_path)

    @classmethod
    def for_home(cls, home: Path) -> RealtimeCollector:
        """The collector of one CDP_HOME's event log and state."""
        events = Path(home) / "events"
        return cls(events / "log.sqlite", events / "state.sqlite")

    def collect(self) -> Iterator[Metric]:
        """Called per scrape; never raises (an unreadable file logs and reports zeros)."""
        try:
            yield from self._collect()
        except sqlite3.Error as exc:
            logger.warning("metrics: reading the real-time files failed: %s", exc)
            yield from self._collect(empty=True)

    def _collect(self, *, empty: bool = False) -> Iterator[Metric]:
        # Every query runs before the first family is yielded, so a failure leaves nothing
        # half-reported and the zeros of ``empty`` are the scrape's only families.
        head = 0
        received_after: dict[int, float] = {}
        failed: dict[str, int] = {}
        offsets: dict[str, int] = {}
        outbox = dict.fromkeys(OUTBOX_STATUSES, 0)
        retries = 0
        timers_pending = timers_overdue = 0
        firings: dict[str, tuple[int, int]] = {}
        dead_events = 0
        now_micros = time.time_ns() // 1000
        if not empty:
            with _read_only(self.state_path) as state:
                tables = _tables(state)
                if state is not None and "consumer_offsets" in tables:
                    offsets = {
                        str(c): int(o)
                        for c, o in state.execute("select consumer, offset from consumer_offsets")
                    }
                if state is not None and "outbox" in tables:
                    for status, count, extra in state.execute(
                        "select status, count(*), sum(max(attempts - 1, 0)) from outbox "
                        "group by status"
                    ):
                        outbox[str(status)] = int(count)
                        retries += int(extra or 0)
                if state is not None and "timers" in tables:
                    timers_pending, timers_overdue = state.execute(
                        "select count(*), coalesce(sum(due_at < ?), 0) from timers "
                        "where fired_at is null",
                        (now_micros,),
                    ).fetchone()
                if state is not None and "trigger_firings" in tables:
                    firings = {
                        str(t): (int(n), int(s or 0))
                        for t, n, s in state.execute(
                            "select trigger_name, count(*), sum(sent) from trigger_firings "
                            "group by trigger_name"
                        )
                    }
                if state is not None and "dead_events" in tables:
                    dead_events = int(
                        state.execute("select count(*) from dead_events").fetchone()[0]
                    )
            # the log after the state: a head read later is never behind an offset read earlier
            with _read_only(self.log_path) as log:
                tables = _tables(log)
                if log is not None and "events" in tables:
                    head = int(
                        log.execute("select coalesce(max(offset), 0) from events").fetchone()[0]
                    )
                    for offset in set(offsets.values()):
                        row = log.execute(
                            "select received_at from events where offset = ?", (offset + 1,)
                        ).fetchone()
                        if row is not None:
                            received_after[offset] = max(0.0, (now_micros - int(row[0])) / 1e6)
                if log is not None and "failed_events" in tables:
                    failed = {
                        str(r): int(n)
                        for r, n in log.execute(
                            "select reason, count(*) from failed_events group by reason"
                        )
                    }

        accepted = CounterMetricFamily(
            "cdp_realtime_events_accepted",
            "Events committed to the event log (its head offset; duplicates not counted).",
        )
        accepted.add_metric([], head)
        yield accepted
        failures = CounterMetricFamily(
            "cdp_realtime_failed_events",
            "Input kept as failed events in the log, by reason (`cdp events failed` lists them).",
            labels=["reason"],
        )
        for reason, count in sorted(failed.items()):
            failures.add_metric([reason], count)
        yield failures
        consumer_offset = GaugeMetricFamily(
            "cdp_realtime_consumer_offset",
            "The last log offset a consumer (the stream processor) committed.",
            labels=["consumer"],
        )
        lag_events = GaugeMetricFamily(
            "cdp_realtime_processor_lag_events",
            "Events in the log a consumer has not processed yet.",
            labels=["consumer"],
        )
        lag_seconds = GaugeMetricFamily(
            "cdp_realtime_processor_lag_seconds",
            "Age of the oldest event a consumer has not processed yet (0 when caught up).",
            labels=["consumer"],
        )
        for consumer, offset in sorted(offsets.items()):
            consumer_offset.add_metric([consumer], offset)
            lag_events.add_metric([consumer], max(0, head - offset))
            lag_seconds.add_metric([consumer], received_after.get(offset, 0.0))
        yield consumer_offset
        yield lag_events
        yield lag_seconds
        depth = GaugeMetricFamily(
            "cdp_realtime_outbox_messages",
            "Outbox messages by status: pending (to be tried or retried), delivered, dead.",
            labels=["status"],
        )
        for status, count in sorted(outbox.items()):
            depth.add_metric([status], count)
        yield depth
        deliveries = CounterMetricFamily(
            "cdp_realtime_deliveries", "Messages a channel webhook acknowledged."
        )
        deliveries.add_metric([], outbox.get(DELIVERED, 0))
        yield deliveries
        retried = CounterMetricFamily(
            "cdp_realtime_delivery_retries", "Delivery attempts after a message's first."
        )
        retried.add_metric([], retries)
        yield retried
        dead = GaugeMetricFamily(
            "cdp_realtime_dead_letters",
            "Messages given up on after the retry window (`cdp outbox` inspects and replays).",
        )
        dead.add_metric([], outbox.get(DEAD, 0))
        yield dead
        pending = GaugeMetricFamily(
            "cdp_realtime_timers_pending", "Armed trigger timers (cart reminders) not fired yet."
        )
        pending.add_metric([], int(timers_pending))
        yield pending
        overdue = GaugeMetricFamily(
            "cdp_realtime_timers_overdue",
            "Armed timers past their due time (should stay 0: they fire within seconds).",
        )
        overdue.add_metric([], int(timers_overdue))
        yield overdue
        fired = CounterMetricFamily(
            "cdp_realtime_trigger_firings",
            "Trigger firings by trigger and whether the decision sent a message.",
            labels=["trigger", "sent"],
        )
        for trigger, (count, sent) in sorted(firings.items()):
            fired.add_metric([trigger, "true"], sent)
            fired.add_metric([trigger, "false"], count - sent)
        yield fired
        poison = GaugeMetricFamily(
            "cdp_realtime_dead_events",
            "Events the processor could not apply, kept with their error (the stream went on).",
        )
        poison.add_metric([], dead_events)
        yield poison


#: Distinct sources labelled per process before new ones are counted as "other".
MAX_SUPPRESSED_SOURCES: Final[int] = 100


class SuppressedMetrics:
    """``cdp_intake_suppressed_total{source, reason}``: events the intake dropped because their
    person was erased (reason ``erased_person``), acknowledged to the sender like accepted ones.

    A counter in the answering process (not read from the files: a dropped event leaves no
    trace in them, by design); ``target`` is the app's registry, or None under several workers
    (the multiprocess files).
    """

    def __init__(self, target: CollectorRegistry | None) -> None:
        self.counter = Counter(
            "cdp_intake_suppressed",
            "Events and failed input of erased persons dropped at intake (not stored), by "
            "source and reason.",
            ["source", "reason"],
            registry=target,
        )
        self._children: dict[tuple[str, str], Any] = {}

    def count(self, source: str | None, reason: str, count: int = 1) -> None:
        """Count ``count`` dropped items of one source."""
        key = (source or "", reason)
        child = self._children.get(key)
        if child is None:
            label = key[0] if len(self._children) < MAX_SUPPRESSED_SOURCES else "other"
            child = self.counter.labels(label[:100], reason[:64])
            if label == key[0]:
                self._children[key] = child
        child.inc(count)
