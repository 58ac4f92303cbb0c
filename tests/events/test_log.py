"""The SQLite event log: grouped durable commits, dedupe and conflicts, reads, kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events.log import SCHEMA_VERSION, EventLogError, SqliteEventLog
from events.types import EventKind, FailedEvent, NewEvent, ProductLine

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def event(message_id: str, *, sha: str = "a", product: str | None = "p1") -> NewEvent:
    return NewEvent(
        message_id=message_id,
        source="web",
        type="track",
        kind=EventKind.PRODUCT_VIEW,
        event="Product Viewed",
        occurred_at=NOW - timedelta(seconds=3),
        received_at=NOW,
        anonymous_id="ck_1",
        user_id=None,
        identifiers={"cookie_id": "ck_1"},
        products=(ProductLine(product_id=product, price=9.5, name="Mug"),) if product else (),
        body={"properties": {"product_id": product}, "n": 1},
        payload_sha256=sha,
    )


def test_append_read_roundtrip_and_head(tmp_path: Path) -> None:
    with SqliteEventLog(tmp_path / "log.sqlite") as log:
        assert log.head() == 0
        result = log.append([event("m1"), event("m2")])
        assert result.statuses == ("accepted", "accepted")
        assert result.offsets == (1, 2)
        assert log.head() == 2
        read = log.read(after=0, limit=10)
        assert [e.offset for e in read] == [1, 2]
        first = read[0]
        assert first.message_id == "m1" and first.kind is EventKind.PRODUCT_VIEW
        assert first.occurred_at == NOW - timedelta(seconds=3)
        assert first.occurred_at.tzinfo is not None
        assert first.products == (ProductLine(product_id="p1", price=9.5, name="Mug"),)
        assert first.identifiers == {"cookie_id": "ck_1"}
        assert first.body == {"properties": {"product_id": "p1"}, "n": 1}
        assert [e.offset for e in log.read(after=1, limit=10)] == [2]
        assert log.read(after=2, limit=10) == []
        assert [e.offset for e in log.read(after=0, limit=1)] == [1]


def test_duplicate_and_conflict_leave_the_rest_of_the_batch_alone(tmp_path: Path) -> None:
    with SqliteEventLog(tmp_path / "log.sqlite") as log:
        log.append([event("m1", sha="a")])
        result = log.append([event("m1", sha="a"), event("m1", sha="b"), event("m3")])
        assert result.statuses == ("duplicate", "conflict", "accepted")
        assert result.offsets == (None, None, 2)
        assert len(result.failed_ids) == 1
        assert log.head() == 2
        (kept,) = log.failed()
        assert kept.failed_id == result.failed_ids[0]
        assert kept.reason == "message_id_conflict" and kept.message_id == "m1"
        assert log.failed_counts() == {"message_id_conflict": 1}
        # the same message id twice within one append: the second is a duplicate
        again = log.append([event("m9"), event("m9")])
        assert again.statuses == ("accepted", "duplicate")


def test_failures_are_kept_and_filtered(tmp_path: Path) -> None:
    with SqliteEventLog(tmp_path / "log.sqlite") as log:
        failures = [
            FailedEvent(source="web", reason=r, detail="fix it", received_at=NOW, body=b"{" * 10)
            for r in ("invalid_json", "unknown_type", "invalid_json")
        ]
        result = log.append([], failures)
        assert len(result.failed_ids) == 3 and result.statuses == ()
        assert [f.reason for f in log.failed(reason="invalid_json")] == ["invalid_json"] * 2
        assert log.failed_counts() == {"invalid_json": 2, "unknown_type": 1}
        assert [f.failed_id for f in log.failed(after_id=result.failed_ids[0])] == list(
            result.failed_ids[1:]
        )
        assert log.failed()[0].body == b"{" * 10
        assert log.stats().failed == 3


def test_many_threads_are_grouped_into_few_commits(tmp_path: Path) -> None:
    threads, per_thread = 16, 40
    with SqliteEventLog(tmp_path / "log.sqlite") as log:
        offsets: list[int] = []
        lock = threading.Lock()

        def worker(index: int) -> None:
            for n in range(per_thread):
                result = log.append([event(f"t{index}-{n}")])
                with lock:
                    offsets.append(result.offsets[0] or 0)

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        total = threads * per_thread
        assert sorted(offsets) == list(range(1, total + 1))
        stats = log.stats()
        assert stats.head == total and stats.grouped_appends == total
        # with 16 callers waiting on fsyncs, commits must carry several appends each
        assert stats.commits < total / 2, stats
        assert stats.largest_group > 1


def test_offsets_follow_commit_order_across_two_logs_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    with SqliteEventLog(path) as first, SqliteEventLog(path) as second:
        done = []

        def send(log: SqliteEventLog, prefix: str) -> None:
            for n in range(100):
                done.append(log.append([event(f"{prefix}{n}")]).offsets[0])

        a = threading.Thread(target=send, args=(first, "a"))
        b = threading.Thread(target=send, args=(second, "b"))
        a.start(), b.start()
        a.join(), b.join()
        assert sorted(done) == list(range(1, 201))
        assert [e.offset for e in first.read(0, 1000)] == list(range(1, 201))


def test_schema_version_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    SqliteEventLog(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("pragma user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    conn.execute(f"pragma user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(EventLogError, match="newer"):
        SqliteEventLog(path)


def test_closed_log_refuses_appends(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite")
    log.close()
    log.close()  # idempotent
    with pytest.raises(EventLogError, match="closed"):
        log.submit([event("late")])


_CHILD = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from events.log import SqliteEventLog
from events.types import EventKind, NewEvent

log = SqliteEventLog(Path(sys.argv[1]))
now = datetime.now(UTC)
n = 0
while True:
    batch = [
        NewEvent(message_id=f"k{n}-{i}", source="web", type="page", kind=EventKind.PAGE_VIEW,
                 event=None, occurred_at=now, received_at=now, anonymous_id="a", user_id=None,
                 payload_sha256="x")
        for i in range(5)
    ]
    result = log.append(batch)
    # acknowledged: durable from here on
    print(f"ack {n} {result.offsets[-1]}", flush=True)
    n += 1
"""


def test_every_acknowledged_event_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        text=True,
    )
    assert child.stdout is not None
    acknowledged: list[int] = []
    deadline = time.monotonic() + 30
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acknowledged.append(int(line.split()[1]))
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert len(acknowledged) >= 200, "the child did not acknowledge appends in time"
    with SqliteEventLog(path) as log:
        stored = {e.message_id for e in log.read(0, 1_000_000)}
        missing = [n for n in acknowledged if any(f"k{n}-{i}" not in stored for i in range(5))]
        assert missing == []
        # offsets have no gaps: committed batches are whole
        assert log.head() == len(stored)


def test_cli_events_failed_and_status(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dagster_project.cli.main import app

    home = tmp_path / "home"
    with SqliteEventLog(home / "events" / "log.sqlite") as log:
        log.append(
            [event("m1"), event("m2")],
            [
                FailedEvent("web", "invalid_json", "the body must be one JSON object", NOW),
                FailedEvent("app", "unknown_type", "type must be one of track, ...", NOW),
            ],
        )
    runner = CliRunner()
    status = runner.invoke(app, ["events", "status", "--home", str(home)])
    assert status.exit_code == 0, status.output
    assert "head offset: 2" in status.stdout and "failed events: 2" in status.stdout
    assert "invalid_json" in status.stdout and "unknown_type" in status.stdout
    failed = runner.invoke(
        app,
        ["events", "failed", "--reason", "unknown_type", "--home", str(home)],
        terminal_width=200,
    )
    assert failed.exit_code == 0, failed.output
    assert "unknown_type" in failed.stdout and "app" in failed.stdout
    assert "invalid_json" not in failed.stdout
    bad = runner.invoke(app, ["events", "failed", "--reason", "nonsense", "--home", str(home)])
    assert bad.exit_code == 2 and "one of" in bad.output


def test_an_unwritable_append_fails_alone(tmp_path: Path) -> None:
    with SqliteEventLog(tmp_path / "log.sqlite") as log:
        bad = NewEvent(**{**event("bad").__dict__, "body": {"x": object()}})
        futures = [log.submit([event("g1")]), log.submit([bad]), log.submit([event("g2")])]
        assert futures[0].result().statuses == ("accepted",)
        with pytest.raises(TypeError):
            futures[1].result()
        assert futures[2].result().statuses == ("accepted",)
        assert [e.message_id for e in log.read(0, 10)] == ["g1", "g2"]
        assert [e.offset for e in log.read(0, 10)] == [1, 2]
