"""Fault test with real processes: ``kill -9`` the delivery worker while it delivers.

The worker runs as ``cdp stream --only delivery`` in a subprocess against a slow receiver (so
requests are in flight when it dies); after each kill a new one starts. Every message must be
received, duplicates may only repeat the same idempotency key, and the outbox ends with every
message delivered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import yaml

from events import outbox
from events.outbox import OutboxMessage
from events.signing import file_secret, verify
from events.state import connect, state_path
from tests.support.webhooks import FakeWebhook

MESSAGES = 300
KILL_AFTER = (40, 110, 190)  # requests the receiver has seen when each worker is killed
CDP = str(Path(sys.executable).with_name("cdp"))


def start_worker(home: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CDP_HOME": str(home)}
    with log.open("ab") as handle:
        return subprocess.Popen(
            [CDP, "stream", "--only", "delivery", "--home", str(home)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def test_kill_9_mid_delivery_loses_nothing_and_duplicates_keep_their_key(tmp_path: Path) -> None:
    home = tmp_path / "cdp"
    home.mkdir()
    log = tmp_path / "worker.log"
    conn = connect(state_path(home))
    with outbox.transaction(conn):
        outbox.ensure_schema(conn)
        now = datetime.now(UTC)
        outbox.enqueue(
            conn,
            [
                OutboxMessage(
                    key=f"dec{i}:email",
                    channel="email",
                    trigger="price_drop",
                    customer_id=f"c{i}",
                    decision_id=f"dec{i}",
                    payload={"customer_id": f"c{i}", "product": {"id": f"p{i}"}},
                    created_at=now,
                )
                for i in range(MESSAGES)
            ],
        )
    ids = {record.key: record.message_id for record in outbox.list_messages(conn, limit=MESSAGES)}

    with FakeWebhook(delay_seconds=0.03) as hook:
        (home / "cdp.yml").write_text(
            yaml.safe_dump(
                {
                    "realtime": {
                        "channels": {"email": {"url": hook.url, "timeout_seconds": 5}},
                        "delivery": {
                            "base_delay_seconds": 0.05,
                            "max_delay_seconds": 0.5,
                            "concurrency": 4,
                        },
                    }
                }
            )
        )
        for threshold in KILL_AFTER:
            worker = start_worker(home, log)
            reached = hook.wait_for(lambda rs, n=threshold: len(rs) >= n, timeout=30)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            assert reached, log.read_text()
            assert worker.returncode == -signal.SIGKILL

        worker = start_worker(home, log)
        try:
            deadline = time.monotonic() + 60
            while outbox.counts(conn).depth and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=20)
        assert worker.returncode == 0, log.read_text()

    counts = outbox.counts(conn)
    conn.close()
    assert counts.by_status == {"pending": 0, "delivered": MESSAGES, "dead": 0}
    received = hook.requests
    assert all(r.status == 200 for r in received)
    assert {r.key for r in received} == set(ids), "every message received at least once"

    secret = file_secret(home, "email")
    by_key: dict[str, list[int]] = defaultdict(list)
    keys_by_message_id: dict[str, set[str]] = defaultdict(set)
    for request in received:
        verify(secret, request.headers["x-cdp-signature"], request.body, tolerance_seconds=600)
        assert request.json["customer_id"] == f"c{request.key.split(':')[0][3:]}"
        keys_by_message_id[request.message_id].add(request.key)
        by_key[request.key].append(int(request.headers["x-cdp-attempt"]))
    # a message id is only ever sent with its own key: a duplicate repeats the same key
    assert {mid: keys for mid, keys in keys_by_message_id.items()} == {
        str(ids[key]): {key} for key in ids
    }
    duplicates = {key: attempts for key, attempts in by_key.items() if len(attempts) > 1}
    # the kills hit requests in flight: those were sent again, as later attempts
    assert duplicates, "a kill -9 with requests in flight should cause at least one resend"
    for attempts in duplicates.values():
        assert attempts == sorted(set(attempts))
    assert len(received) - MESSAGES <= len(KILL_AFTER) * 4 * 2  # at most ~what was in flight
    print(f"{MESSAGES} messages, 3 kills: {len(received)} requests, {len(duplicates)} resent")
