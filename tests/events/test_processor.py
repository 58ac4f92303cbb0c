"""The processor loop: batches with their offset, replays that change nothing, poison events
kept, the live profile fresh within 100 ms at 1,000 events/s."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from events.live import open_live_reader
from events.log import SqliteEventLog
from events.processor import (
    CONSUMER,
    StreamProcessor,
    acquire_lock,
    dead_events,
    log_path,
    read_status,
    release_lock,
)
from events.types import AppendResult, EventKind, FailedEvent, LoggedEvent, NewEvent, ProductLine
from tests.support.stream_world import StreamWorld, event, make_world

#: Tables a replay must leave exactly as they were (wall-clock columns left out).
DUMPS = {
    "live_identities": "select * from live_identities order by 1, 2",
    "live_aliases": "select * from live_aliases order by 1",
    "live_profiles": "select * from live_profiles order by 1",
    "live_counters": "select * from live_counters order by 1, 2",
    "live_product_views": "select * from live_product_views order by 1, 2",
    "live_cart": "select * from live_cart order by 1, 2",
    "live_events": "select * from live_events order by 1, 2",
    "product_prices": "select * from product_prices order by 1",
    "timers": "select * from timers order by 1",
    "trigger_firings": "select * from trigger_firings order by 1",
    "outbox": "select message_key, channel, trigger_name, customer_id, decision_id, payload, "
    "created_at from outbox order by message_key",
    "offset": "select consumer, offset from consumer_offsets order by 1",
}


@pytest.fixture
def world(tmp_path: Path) -> StreamWorld:
    return make_world(tmp_path / "home")


@pytest.fixture
def log(world: StreamWorld) -> Iterator[SqliteEventLog]:
    with SqliteEventLog(log_path(world.home)) as opened:
        yield opened


def _dump(processor: StreamProcessor) -> dict[str, list[tuple[Any, ...]]]:
    conn = processor.state.conn
    return {name: conn.execute(sql).fetchall() for name, sql in DUMPS.items()}


def _traffic(n: int, start: datetime) -> list[NewEvent]:
    """Views, carts, logins and price changes over a few known customers and strangers."""
    out: list[NewEvent] = []
    for i in range(n):
        at = start + timedelta(seconds=i)
        cookie = f"ck_{i % 12}" if i % 3 else f"ck_stranger_{i % 7}"
        product = f"P{1 + i % 4}"
        if i % 50 == 49:
            out.append(
                event(
                    EventKind.PRICE_CHANGE,
                    products=[ProductLine(product, price=40.0 + i % 30)],
                    at=at,
                )
            )
        elif i % 17 == 0:
            out.append(event(EventKind.LOGIN, anonymous_id=cookie, user_id=f"ACC-{i % 20}", at=at))
        elif i % 5 == 0:
            out.append(
                event(
                    EventKind.ADD_TO_CART,
                    anonymous_id=cookie,
                    products=[ProductLine(product)],
                    at=at,
                )
            )
        else:
            out.append(
                event(
                    EventKind.PRODUCT_VIEW,
                    anonymous_id=cookie,
                    products=[ProductLine(product)],
                    at=at,
                )
            )
    return out


def test_batches_commit_with_their_offset_and_a_replay_changes_nothing(
    world: StreamWorld, log: SqliteEventLog
) -> None:
    events = _traffic(1_200, datetime.now(UTC) - timedelta(hours=1))
    log.append(events)
    processor = StreamProcessor.from_home(world.home, log=log, batch_size=500)
    try:
        sizes = []
        while done := processor.process_batch():
            sizes.append(done)
        assert sizes == [500, 500, 200]
        metrics = processor.metrics()
        assert metrics["processed"] == 1_200 and metrics["lag"] == 0
        assert metrics["offset"] == log.head() and metrics["dead"] == 0
        assert processor.state.count("outbox") > 0  # price drops reached viewers
        reader = open_live_reader(processor.state.path)
        try:
            status = read_status(reader)
        finally:
            reader.close()
        assert status.offset == 1_200 and status.dead_events == 0
        assert status.firings >= status.firings_sent > 0
        assert status.armed_timers > 0 and status.live_profiles > 0
        before = _dump(processor)
        # the same events sent again: the log acknowledges duplicates and stores nothing
        again = log.append(events)
        assert set(again.statuses) == {"duplicate"}
        assert processor.process_batch() == 0
        assert _dump(processor) == before
    finally:
        processor.close()
    # a crash that lost the whole state file: the rebuild from the log gives the same state,
    # the same decisions and so the same outbox keys
    for suffix in ("", "-wal", "-shm"):
        Path(f"{world.home / 'events' / 'state.sqlite'}{suffix}").unlink(missing_ok=True)
    rebuilt = StreamProcessor.from_home(world.home, log=log, batch_size=128)
    try:
        while rebuilt.process_batch():
            pass
        assert _dump(rebuilt) == before
    finally:
        rebuilt.close()


class ListLog:
    """An in-memory EventLog whose events a test hands over as they are (a broker could
    deliver what the SQLite log would refuse to store, and hands events again after a
    rebalance)."""

    def __init__(self, events: Sequence[LoggedEvent]) -> None:
        self.events = list(events)

    def append(
        self, events: Sequence[NewEvent], failures: Sequence[FailedEvent] = ()
    ) -> AppendResult:
        raise NotImplementedError("read-only test log")

    def read(self, after: int, limit: int) -> list[LoggedEvent]:
        return [e for e in self.events if e.offset > after][:limit]

    def head(self) -> int:
        return max((e.offset for e in self.events), default=0)

    def close(self) -> None:
        pass


def _logged(new: NewEvent, offset: int) -> LoggedEvent:
    return LoggedEvent(**{**new.__dict__, "offset": offset})


def test_a_poison_event_is_kept_and_the_stream_goes_on(world: StreamWorld) -> None:
    now = datetime.now(UTC)
    poison = _logged(
        event(EventKind.PRICE_CHANGE, products=[ProductLine("P1", price=float("nan"))], at=now),
        2,
    )
    log = ListLog(
        [
            _logged(
                event(
                    EventKind.PRODUCT_VIEW,
                    anonymous_id="ck_1",
                    products=[ProductLine("P1")],
                    at=now,
                ),
                1,
            ),
            poison,
            _logged(
                event(
                    EventKind.PRODUCT_VIEW,
                    anonymous_id="ck_2",
                    products=[ProductLine("P2")],
                    at=now,
                ),
                3,
            ),
        ]
    )
    processor = StreamProcessor.from_home(world.home, log=log)
    try:
        assert processor.process_batch() == 3
        assert processor.counters.dead == 1
        assert processor.state.offset(CONSUMER) == 3
        (kept,) = dead_events(processor.state)
        assert kept["offset"] == 2 and kept["message_id"] == poison.message_id
        assert "IntegrityError" in kept["error"]
        assert kept["event"]["products"][0]["product_id"] == "P1"
        # the poison event's partial work is rolled back; its neighbours are applied
        assert processor.state.conn.execute("select count(*) from product_prices").fetchone() == (
            0,
        )
        views = processor.state.conn.execute("select count(*) from live_product_views").fetchone()
        assert views == (2,)
        # a log handing the same events again (a rebalance) changes nothing
        log.events.append(replace(log.events[0], offset=4, message_id="fresh"))
        log.events.insert(0, replace(log.events[0], offset=1))
        assert processor.process_batch() == 1
        assert processor.counters.dead == 1
    finally:
        processor.close()


def test_one_processor_per_home(tmp_path: Path) -> None:
    first = acquire_lock(tmp_path)
    assert first is not None
    try:
        assert acquire_lock(tmp_path) is None
    finally:
        release_lock(first)
    again = acquire_lock(tmp_path)
    assert again is not None
    release_lock(again)


def test_an_accepted_event_is_live_within_100_ms_at_1000_events_per_second(
    world: StreamWorld, log: SqliteEventLog
) -> None:
    processor = StreamProcessor.from_home(world.home, log=log)
    stop = threading.Event()
    seen: dict[int, float] = {}

    def watch() -> None:
        # another reader, as the API would be: when did each offset become visible?
        from events.live import open_live_reader

        reader = open_live_reader(processor.state.path)
        last = 0
        while not stop.is_set():
            row = reader.execute(
                "select offset from consumer_offsets where consumer = ?", (CONSUMER,)
            ).fetchone()
            if row and row[0] > last:
                now = time.perf_counter()
                for offset in range(last + 1, row[0] + 1):
                    seen[offset] = now
                last = row[0]
            time.sleep(0.001)
        reader.close()

    loop = threading.Thread(target=processor.run, args=(stop,))
    watcher = threading.Thread(target=watch)
    loop.start()
    watcher.start()
    acked: dict[int, float] = {}
    try:
        events = _traffic(2_000, datetime.now(UTC))
        started = time.perf_counter()
        for i in range(0, len(events), 10):  # 10 events every 10 ms: 1,000 events/s
            result = log.append(events[i : i + 10])
            now = time.perf_counter()
            for offset in result.offsets:
                assert offset is not None
                acked[offset] = now
            pause = started + (i + 10) / 1_000 - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        deadline = time.monotonic() + 10
        while len(seen) < len(acked) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        loop.join()
        watcher.join()
        processor.close()
    latencies = sorted(seen[o] - acked[o] for o in acked)
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"accepted -> live: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    assert len(latencies) == 2_000
    assert p99 <= 0.100, f"p99 {p99 * 1000:.1f} ms"
