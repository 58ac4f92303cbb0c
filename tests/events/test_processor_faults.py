"""``kill -9`` of ``cdp stream --only processor`` at random points, over a log being filled:
after restarts the state equals a clean single run's (nothing lost, nothing twice, the same
outbox keys)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from events.log import SqliteEventLog
from events.processor import CONSUMER, StreamProcessor, log_path
from events.state import state_path
from events.types import EventKind, NewEvent, ProductLine
from tests.support.stream_world import event, make_world

CDP = Path(sys.executable).with_name("cdp")

#: The state a clean run and a crashed-and-restarted run must agree on (no wall-clock columns).
DUMPS = {
    "live_identities": "select identifier_type, identifier_value, customer_id, is_provisional "
    "from live_identities order by 1, 2",
    "live_aliases": "select alias_customer_id, customer_id from live_aliases order by 1",
    "live_profiles": "select * from live_profiles order by 1",
    "live_counters": "select * from live_counters order by 1, 2",
    "live_product_views": "select * from live_product_views order by 1, 2",
    "live_cart": "select * from live_cart order by 1, 2",
    "live_events": "select * from live_events order by 1, 2",
    "product_prices": "select * from product_prices order by 1",
    "timers": "select timer_key, trigger_name, customer_id, due_at, payload from timers order by 1",
    "trigger_firings": "select * from trigger_firings order by 1",
    "outbox": "select message_key, channel, trigger_name, customer_id, decision_id, payload, "
    "created_at from outbox order by message_key",
    "offset": "select consumer, offset from consumer_offsets order by 1",
    "dead_events": "select offset, message_id from dead_events order by 1",
}


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {name: conn.execute(sql).fetchall() for name, sql in DUMPS.items()}
    finally:
        conn.close()


def _traffic(n: int, start: datetime, seed: int) -> list[NewEvent]:
    rng = random.Random(seed)
    out: list[NewEvent] = []
    for i in range(n):
        at = start + timedelta(milliseconds=100 * i)
        cookie = rng.choice([f"ck_{k}" for k in range(20)] + [f"ck_new_{k}" for k in range(8)])
        product = f"P{rng.randint(1, 4)}"
        roll = rng.random()
        if roll < 0.02:
            price = round(rng.uniform(20, 200), 2)
            out.append(
                event(EventKind.PRICE_CHANGE, products=[ProductLine(product, price=price)], at=at)
            )
        elif roll < 0.06:
            out.append(
                event(
                    EventKind.IDENTIFY,
                    anonymous_id=cookie,
                    user_id=f"ACC-{rng.randint(0, 23)}",
                    at=at,
                )
            )
        elif roll < 0.20:
            out.append(
                event(
                    EventKind.ADD_TO_CART,
                    anonymous_id=cookie,
                    products=[ProductLine(product)],
                    at=at,
                )
            )
        elif roll < 0.23:
            out.append(
                event(
                    EventKind.PURCHASE, anonymous_id=cookie, products=[ProductLine(product)], at=at
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


def _start(home: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CDP_HOME": str(home)}
    return subprocess.Popen(
        [str(CDP), "stream", "--only", "processor", "--batch-size", "40", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _offset(home: Path) -> int:
    path = state_path(home)
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=5)
    try:
        row = conn.execute(
            "select offset from consumer_offsets where consumer = ?", (CONSUMER,)
        ).fetchone()
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_kill_9_at_random_points_then_the_state_equals_a_clean_run(tmp_path: Path) -> None:
    rng = random.Random(14)
    crashed = make_world(tmp_path / "crashed")
    clean = make_world(tmp_path / "clean")
    # the traffic of the last 4 minutes: carts armed, none due yet (timers depend on the wall
    # clock, not on the log, so a run that catches up later may rightly fire them earlier)
    events = _traffic(2_400, datetime.now(UTC) - timedelta(minutes=5), seed=14)

    log = SqliteEventLog(log_path(crashed.home))
    filled = threading.Event()

    def fill() -> None:
        for i in range(0, len(events), 20):
            log.append(events[i : i + 20])
            time.sleep(0.07)  # about 280 events/s: the kills land while the log grows
        filled.set()

    producer = threading.Thread(target=fill)
    producer.start()
    kills = 0
    offsets_at_kill: list[int] = []
    try:
        while kills < 5:
            process = _start(crashed.home)
            time.sleep(rng.uniform(1.2, 2.5))  # startup, then some batches
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            kills += 1
            offsets_at_kill.append(_offset(crashed.home))
        producer.join(timeout=60)
        assert filled.is_set()
        final = _start(crashed.home, "--once")
        _, stderr = final.communicate(timeout=120)
        assert final.returncode == 0, stderr.decode()[-2000:]
    finally:
        producer.join(timeout=60)
        log.close()
    print(f"offsets at the kills: {offsets_at_kill}")
    head = _offset(crashed.home)
    assert head == len(events)
    # the kills landed while work was under way, not all before or after it
    assert any(0 < o < len(events) for o in offsets_at_kill), offsets_at_kill

    # the clean run reads the very same log, from a fresh state, in one go
    log_path(clean.home).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(log_path(crashed.home), log_path(clean.home))
    with SqliteEventLog(log_path(clean.home)) as clean_log:
        processor = StreamProcessor.from_home(clean.home, log=clean_log, batch_size=500)
        try:
            while processor.process_batch():
                pass
        finally:
            processor.close()

    after_crashes = _dump(state_path(crashed.home))
    single_run = _dump(state_path(clean.home))
    assert after_crashes["offset"] == [(CONSUMER, len(events))]
    assert len(after_crashes["outbox"]) > 0, "the traffic should have fired price drops"
    for table, rows in single_run.items():
        assert after_crashes[table] == rows, f"{table} differs after kill -9 and restarts"
    keys = [row[0] for row in after_crashes["outbox"]]
    assert len(keys) == len(set(keys))
    fired = {row[3] for row in after_crashes["trigger_firings"]}
    assert {row[4] for row in after_crashes["outbox"]} <= fired


def test_sigterm_stops_the_processor_cleanly_and_a_restart_resumes(tmp_path: Path) -> None:
    world = make_world(tmp_path / "home")
    events = _traffic(300, datetime.now(UTC) - timedelta(minutes=1), seed=3)
    with SqliteEventLog(log_path(world.home)) as log:
        log.append(events[:200])
        process = _start(world.home)
        deadline = time.monotonic() + 30
        while _offset(world.home) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr.decode()[-2000:]
        assert "SIGTERM" in stderr.decode()
        assert _offset(world.home) == 200
        log.append(events[200:])
    final = _start(world.home, "--once")
    _, stderr = final.communicate(timeout=60)
    assert final.returncode == 0, stderr.decode()[-2000:]
    assert _offset(world.home) == 300
    assert "lag 0" in stderr.decode()
