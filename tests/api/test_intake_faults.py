"""``kill -9`` of the API (parent and both workers) while clients send: every event
acknowledged before the kill is in the log after a restart, and intake resumes."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from events.log import SqliteEventLog
from events.write_keys import create_write_key
from tests.support.api_harness import start_server, stop_server

pytestmark = pytest.mark.e2e


def test_kill_9_loses_no_acknowledged_event(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    key = create_write_key(home / "write_keys.yml", "web")
    server = start_server(home, tmp_path, workers=2)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(index: int) -> None:
        with httpx.Client(base_url=server.url, auth=(key, ""), timeout=5) as client:
            n = 0
            while not stop.is_set():
                ids = [f"f{index}-{n}-{i}-{uuid.uuid4().hex[:6]}" for i in range(index % 2 * 9 + 1)]
                n += 1
                try:
                    if len(ids) == 1:
                        answer = client.post(
                            "/v1/track",
                            json={"event": "Page Scrolled", "userId": "u", "messageId": ids[0]},
                        )
                    else:
                        answer = client.post(
                            "/v1/batch",
                            json={
                                "batch": [
                                    {"type": "page", "anonymousId": "a", "messageId": m}
                                    for m in ids
                                ]
                            },
                        )
                except httpx.HTTPError:
                    continue  # the server is gone: unacknowledged, so free to be lost
                if answer.status_code == 200:
                    with lock:
                        acknowledged.extend(ids)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(6)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 1_500 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(server.process.pid, signal.SIGKILL)  # parent and workers, mid-traffic
        server.process.wait()
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        stop_server(server)
    with lock:
        sent = list(acknowledged)
    assert len(sent) >= 1_500, f"only {len(sent)} events acknowledged before the kill"

    restarted = start_server(home, tmp_path, workers=2)
    try:
        with SqliteEventLog(home / "events" / "log.sqlite") as log:
            logged = {e.message_id for e in log.read(0, 10_000_000)}
            missing = [m for m in sent if m not in logged]
            assert missing == [], f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
            assert log.head() == len(logged)  # committed groups are whole: no gaps
        answer = httpx.post(
            restarted.url + "/v1/page", json={"userId": "u"}, auth=(key, ""), timeout=10
        )
        assert answer.status_code == 200, answer.text
    finally:
        stop_server(restarted)
