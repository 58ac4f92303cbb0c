"""The delivery worker against a real HTTP receiver: signed, retried, dead-lettered, replayed."""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from events import outbox
from events.config import DeliveryPolicy, RealtimeConfig, WebhookChannel
from events.delivery import DeliveryBusyError, DeliveryWorker, backoff_seconds
from events.outbox import OutboxMessage
from events.receiver import WebhookReceiver
from events.signing import SecretError, file_secret, sign, verify
from events.state import connect, state_path
from tests.support.webhooks import FakeWebhook


def realtime(url: str | None, **delivery: float) -> RealtimeConfig:
    channels = {"email": WebhookChannel(url=url, timeout_seconds=2)} if url else {}
    return RealtimeConfig(channels=channels, delivery=DeliveryPolicy(**delivery))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "cdp"


@pytest.fixture
def conn(home: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(state_path(home))
    with outbox.transaction(connection):
        outbox.ensure_schema(connection)
    yield connection
    connection.close()


def enqueue(
    conn: sqlite3.Connection, n: int, *, channel: str = "email", start: int = 0
) -> list[str]:
    now = datetime.now(UTC)
    messages = [
        OutboxMessage(
            key=f"dec{i}:{channel}",
            channel=channel,
            trigger="price_drop",
            customer_id=f"c{i}",
            decision_id=f"dec{i}",
            payload={"customer_id": f"c{i}", "product": {"id": f"p{i}", "name": "Lamp"}},
            created_at=now,
        )
        for i in range(start, start + n)
    ]
    with outbox.transaction(conn):
        outbox.enqueue(conn, messages)
    return [m.key for m in messages]


class Running:
    """Workers' ``run`` loops in threads; stopped and closed at the end of the test."""

    def __init__(self) -> None:
        self.started: list[tuple[DeliveryWorker, threading.Event, threading.Thread]] = []

    def __call__(self, worker: DeliveryWorker) -> threading.Event:
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        self.started.append((worker, stop, thread))
        return stop

    def stop(self, worker: DeliveryWorker) -> None:
        """Stop ``worker`` and wait until its loop has returned (its lock released)."""
        for started, stop, thread in self.started:
            if started is worker:
                stop.set()
                thread.join(timeout=10)
                assert not thread.is_alive()


@pytest.fixture
def running() -> Iterator[Running]:
    runner = Running()
    yield runner
    for worker, stop, thread in runner.started:
        stop.set()
        thread.join(timeout=10)
        worker.close()


def status(conn: sqlite3.Connection, key: str) -> str:
    record = outbox.get_message(conn, key)
    assert record is not None
    return record.status


def test_delivered_signed_with_idempotency_key_and_headers(home, conn) -> None:
    keys = enqueue(conn, 3)
    with FakeWebhook() as hook, DeliveryWorker(home, realtime(hook.url)) as worker:
        done = worker.run_once()
    assert (done.delivered, done.failed_attempts, done.dead_lettered) == (3, 0, 0)
    secret = file_secret(home, "email")
    assert sorted(r.key for r in hook.requests) == sorted(keys)
    for request in hook.requests:
        verify(secret, request.headers["x-cdp-signature"], request.body)
        record = outbox.get_message(conn, request.key)
        assert record is not None and record.status == "delivered"
        assert request.body == record.payload_json.encode()
        assert request.json == record.payload
        assert request.message_id == str(record.message_id)
        assert request.headers["x-cdp-attempt"] == "1"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["x-cdp-channel"] == "email"
        assert request.headers["x-cdp-trigger"] == "price_drop"
        assert request.headers["user-agent"].startswith("open-cdp-delivery/")
        assert request.path == "/hooks/email"
    assert outbox.counts(conn).by_status == {"pending": 0, "delivered": 3, "dead": 0}


def test_receiver_failing_for_a_while_gets_the_message_after_recovery(home, conn, running) -> None:
    (key,) = enqueue(conn, 1)
    config = realtime(None)
    with FakeWebhook(fail_first=3) as hook:
        config = realtime(hook.url, base_delay_seconds=0.05, max_delay_seconds=0.2)
        worker = DeliveryWorker(home, config)
        running(worker)
        assert hook.wait_for(lambda rs: any(r.status == 200 for r in rs), timeout=10)
        deadline = time.monotonic() + 5
        while status(conn, key) != "delivered" and time.monotonic() < deadline:
            time.sleep(0.02)
    assert status(conn, key) == "delivered"
    assert [r.status for r in hook.requests] == [503, 503, 503, 200]
    assert {r.key for r in hook.requests} == {key}  # the same key on every retry
    assert [r.headers["x-cdp-attempt"] for r in hook.requests] == ["1", "2", "3", "4"]
    secret = file_secret(home, "email")
    for request in hook.requests:  # each retry freshly signed
        verify(secret, request.headers["x-cdp-signature"], request.body)
    assert worker.stats.failed_attempts == 3 and worker.stats.delivered == 1
    record = outbox.get_message(conn, key)
    assert record is not None and record.attempts == 4 and record.last_error is None


def test_always_failing_is_dead_lettered_after_max_age_then_replayed(home, conn) -> None:
    (key,) = enqueue(conn, 1)
    max_age_seconds = 1.0
    with FakeWebhook(always_fail=True, fail_status=500) as hook:
        config = realtime(
            hook.url,
            base_delay_seconds=0.05,
            max_delay_seconds=0.2,
            max_age_hours=max_age_seconds / 3600,
        )
        with DeliveryWorker(home, config) as worker:
            started = time.monotonic()
            while status(conn, key) == "pending" and time.monotonic() - started < 10:
                worker.run_once()
                time.sleep(0.01)
            assert status(conn, key) == "dead"
            record = outbox.get_message(conn, key)
            assert record is not None
            assert record.attempts == len(hook.requests) >= 3
            assert "HTTP 500" in (record.last_error or "")
            assert "gave up after" in (record.last_error or "")
            # retried until the deadline, not beyond it, and not dead before it
            assert max_age_seconds <= (record.dead_at - record.created_at).total_seconds() < 3
            assert worker.counts().by_status["dead"] == 1
            assert worker.stats.dead_lettered == 1
            assert worker.run_once().delivered == 0  # a dead message is not retried

            hook.always_fail = False
            with outbox.transaction(conn):
                assert outbox.replay(conn, all_dead=True, now=datetime.now(UTC)).replayed == (key,)
            assert worker.run_once().delivered == 1
    assert status(conn, key) == "delivered"
    last = hook.requests[-1]
    assert (last.status, last.key, last.headers["x-cdp-attempt"]) == (200, key, "1")


def test_channel_without_webhook_is_dead_at_once_with_reason(home, conn) -> None:
    (sms,) = enqueue(conn, 1, channel="sms")
    (email,) = enqueue(conn, 1, start=1)
    with FakeWebhook() as hook:
        with DeliveryWorker(home, realtime(hook.url)) as worker:
            done = worker.run_once()
        assert (done.delivered, done.dead_lettered) == (1, 1)
        record = outbox.get_message(conn, sms)
        assert record is not None and record.status == "dead"
        assert "no webhook configured for channel 'sms'" in (record.last_error or "")
        assert "realtime.channels.sms.url" in (record.last_error or "")
        assert status(conn, email) == "delivered"
        assert [r.key for r in hook.requests] == [email]

        # configured later: replay delivers it
        config = RealtimeConfig(
            channels={"email": WebhookChannel(url=hook.url), "sms": WebhookChannel(url=hook.url)}
        )
        with outbox.transaction(conn):
            outbox.replay(conn, [sms], now=datetime.now(UTC))
        with DeliveryWorker(home, config) as worker:
            assert worker.run_once().delivered == 1
        assert [r.key for r in hook.requests] == [email, sms]


def test_refused_connection_and_timeout_are_retried_with_the_error(home, conn) -> None:
    keys = enqueue(conn, 1)
    with FakeWebhook() as closed:
        url = closed.url  # nothing listens there once it is closed
    with DeliveryWorker(home, realtime(url, base_delay_seconds=30)) as worker:
        assert worker.run_once().failed_attempts == 1
    record = outbox.get_message(conn, keys[0])
    assert record is not None and record.status == "pending"
    assert "ConnectError" in (record.last_error or "")
    assert record.next_attempt_at > record.last_attempt_at

    slow_keys = enqueue(conn, 1, start=1)
    with FakeWebhook(delay_seconds=1.0) as slow:
        config = RealtimeConfig(
            channels={"email": WebhookChannel(url=slow.url, timeout_seconds=0.2)},
            delivery=DeliveryPolicy(base_delay_seconds=30),
        )
        with DeliveryWorker(home, config) as worker:
            assert worker.run_once().failed_attempts == 1
    record = outbox.get_message(conn, slow_keys[0])
    assert record is not None and record.status == "pending"
    assert (record.last_error or "").startswith("timeout after 0.2s")


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    rng = random.Random(5)
    for attempt, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (8, 128.0), (11, 600.0), (400, 600.0)]:
        delays = [backoff_seconds(attempt, 1.0, 600.0, rng) for _ in range(2000)]
        assert min(delays) >= 0.0 and max(delays) <= cap
        # full jitter: spread over the whole range, not clustered at the cap
        assert min(delays) < cap * 0.05 and max(delays) > cap * 0.95
        assert statistics.mean(delays) == pytest.approx(cap / 2, rel=0.1)


def test_one_worker_per_home_and_a_standby_takes_over(home, conn, running) -> None:
    with FakeWebhook() as hook:
        config = realtime(hook.url)
        first = DeliveryWorker(home, config)
        second = DeliveryWorker(home, config)
        running(first)
        enqueue(conn, 1)
        assert hook.wait_for(lambda rs: len(rs) == 1)
        with pytest.raises(DeliveryBusyError, match="another delivery worker"):
            second.run_once()
        running(second)  # stands by
        running.stop(first)  # the first lets go of the lock: only the second is left
        enqueue(conn, 1, start=1)
        assert hook.wait_for(lambda rs: len(rs) == 2, timeout=5)
        # the receiver has the request before the worker has its response: wait for both
        deadline = time.monotonic() + 5
        while second.stats.delivered < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert second.stats.delivered == 1 and first.stats.delivered == 1


def test_missing_secret_env_fails_at_start(home, conn) -> None:
    config = RealtimeConfig(
        channels={"email": WebhookChannel(url="http://127.0.0.1:9/h", secret_env="NO_SUCH_VAR")}
    )
    with pytest.raises(SecretError, match="NO_SUCH_VAR"):
        DeliveryWorker(home, config, environ={})


def test_enqueue_to_signed_webhook_latency(home, conn, running) -> None:
    """The worker polls every 25 ms: a message is received well within the 1 s target."""
    with FakeWebhook() as hook:
        running(DeliveryWorker(home, realtime(hook.url)))
        time.sleep(0.1)
        sent: dict[str, float] = {}
        for i in range(60):
            sent[enqueue(conn, 1, start=i)[0]] = time.time()
            time.sleep(0.015)
        assert hook.wait_for(lambda rs: len(rs) == 60, timeout=10)
    latencies = sorted(r.received_at - sent[r.key] for r in hook.requests)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"enqueue -> webhook received: p50 {latencies[30] * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )
    assert p99 < 0.5


def test_reference_receiver_verifies_dedupes_and_keeps_messages(home, conn, tmp_path) -> None:
    keys = enqueue(conn, 2)
    secret = file_secret(home, "email")
    out_file = tmp_path / "received.jsonl"
    with WebhookReceiver(secret, out_file, port=0) as receiver:
        config = realtime(f"{receiver.url}/hooks/email")
        with DeliveryWorker(home, config) as worker:
            assert worker.run_once().delivered == 2
        lines = [orjson.loads(line) for line in out_file.read_bytes().splitlines()]
        assert sorted(line["idempotency_key"] for line in lines) == sorted(keys)
        first = next(line for line in lines if line["idempotency_key"] == keys[0])
        assert first["payload"] == outbox.get_message(conn, keys[0]).payload
        assert (first["channel"], first["trigger"], first["attempt"]) == (
            "email",
            "price_drop",
            "1",
        )

        body = outbox.get_message(conn, keys[0]).payload_json.encode()

        def post(headers: dict[str, str], content: bytes = body) -> httpx.Response:
            return httpx.post(f"{receiver.url}/hooks/email", content=content, headers=headers)

        good = {"X-CDP-Signature": sign(secret, body), "Idempotency-Key": keys[0]}
        duplicate = post(good)
        assert (duplicate.status_code, duplicate.json()["status"]) == (200, "duplicate")
        assert post({**good, "X-CDP-Signature": sign("whsec_wrong", body)}).status_code == 401
        old = sign(secret, body, int(time.time()) - 3600)
        answer = post({**good, "X-CDP-Signature": old})
        assert (answer.status_code, answer.json()["error"]) == (401, "too_old")
        tampered = post(good, body.replace(b"Lamp", b"Free"))
        assert (tampered.status_code, tampered.json()["error"]) == (401, "mismatch")
        assert post({"Idempotency-Key": keys[0]}).json()["error"] == "missing"
        assert post({"Idempotency-Key": keys[0], "X-CDP-Signature": "nonsense"}).status_code == 400
        no_key = post({"X-CDP-Signature": sign(secret, body)})
        assert (no_key.status_code, no_key.json()["error"]) == (400, "missing_idempotency_key")
        assert (receiver.accepted, receiver.duplicates, receiver.refused) == (2, 1, 6)
    assert len(out_file.read_bytes().splitlines()) == 2

    # a restarted receiver still knows what it accepted (even after a torn last line)
    with out_file.open("ab") as handle:
        handle.write(b'{"idempotency_key": "torn')
    with WebhookReceiver(secret, out_file, port=0) as receiver:
        again = httpx.post(
            receiver.url, content=body, headers={**good, "X-CDP-Signature": sign(secret, body)}
        )
        assert again.json()["status"] == "duplicate"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cdp_webhook_receiver_command_receives_worker_deliveries(home, conn, tmp_path) -> None:
    port = free_port()
    out_file = tmp_path / "email.jsonl"
    env = {**os.environ, "CDP_HOME": str(home)}
    cdp = str(Path(sys.executable).with_name("cdp"))
    process = subprocess.Popen(
        [
            cdp,
            "webhook-receiver",
            "--channel",
            "email",
            "--port",
            str(port),
            "--out",
            str(out_file),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.ConnectError:
                time.sleep(0.05)
        (key,) = enqueue(conn, 1)
        with DeliveryWorker(home, realtime(f"http://127.0.0.1:{port}/hooks/email")) as worker:
            assert worker.run_once().delivered == 1
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "demo webhook receiver for 'email'" in stderr
    assert "accepted 1, duplicates 0, refused 0" in stderr
    (line,) = out_file.read_bytes().splitlines()
    assert orjson.loads(line)["idempotency_key"] == key


def test_outcomes_survive_a_locked_state_file(home, conn, running, tmp_path) -> None:
    """The processor (or a backup) holds the write lock past the busy timeout: the worker keeps
    the outcomes of requests it made, writes them later, and sends nothing twice."""
    with FakeWebhook(delay_seconds=0.3) as hook:
        worker = DeliveryWorker(home, realtime(hook.url))
        worker._conn.execute("pragma busy_timeout = 100")  # instead of waiting 10 s
        running(worker)
        keys = enqueue(conn, 3)
        time.sleep(0.1)  # claimed, requests in flight
        blocker = connect(state_path(home))
        blocker.execute("begin immediate")
        time.sleep(1.5)  # the answers arrive while the file is locked
        assert len(hook.requests) == 3
        blocker.execute("rollback")
        blocker.close()
        deadline = time.monotonic() + 5
        while outbox.counts(conn).depth and time.monotonic() < deadline:
            time.sleep(0.02)
    assert {status(conn, key) for key in keys} == {"delivered"}
    assert sorted(r.key for r in hook.requests) == sorted(keys)  # none sent twice
    assert worker.stats.delivered == 3
