"""The delivery worker: outbox messages POSTed to channel webhooks, signed, retried, dead-lettered.

Semantics in brief:

- **At-least-once.** A message becomes ``delivered`` only after its webhook answered 2xx. A
  claim records the attempt but leaves the message pending, so a worker killed mid-request
  (``kill -9``) leaves it due and the next worker sends it again, with the same
  ``Idempotency-Key`` (the outbox key): a receiver dedupes on that header.
- **Retries** after anything but a 2xx (an error status, a timeout, a refused connection):
  exponential backoff with full jitter, ``uniform(0, min(max_delay, base * 2**(n - 1)))`` after
  the n-th failed attempt (AWS's "full jitter": retries of many messages spread out instead of
  hammering a recovering endpoint in waves), until ``created_at + delivery.max_age_hours``
  (or the replay time + max age). The last retry is placed at that deadline; when it fails too
  the message is dead-lettered with its last error, for ``cdp outbox list --status dead`` and
  ``cdp outbox replay``. A channel with no webhook configured dead-letters at once with a
  reason that says what to configure.
- **One worker per CDP_HOME**, held by an advisory lock (``CDP_HOME/events/delivery.lock``,
  released by the kernel when the process dies): a second ``cdp stream`` stands by and takes
  over when the first one exits, so two workers never send the same due message at once.
- **Latency.** Idle, the worker looks for due messages every 25 ms with a read (no write lock,
  so the stream processor is not slowed); ``delivery.concurrency`` requests are in flight over
  one pooled ``httpx.Client`` (keep-alive connections reused per channel host).

Every request carries ``Content-Type: application/json``, ``X-CDP-Signature`` (see
``events.signing``), ``Idempotency-Key``, ``X-CDP-Message-Id`` (stable across retries),
``X-CDP-Attempt`` (1, 2, ...; a crash-interrupted attempt counts), ``X-CDP-Channel``,
``X-CDP-Trigger`` and ``User-Agent``. The body is the payload the trigger stored, byte for byte.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import httpx

from events import outbox
from events.config import RealtimeConfig, WebhookChannel
from events.signing import SIGNATURE_HEADER, channel_secret, sign
from events.state import StateStore, state_path

logger = logging.getLogger(__name__)

USER_AGENT: Final[str] = "open-cdp-delivery/1"
#: Idle polling period: the outbox is looked at this often when nothing is in flight.
POLL_SECONDS: Final[float] = 0.025
#: How long ``run`` waits between tries for the lock another worker holds.
STANDBY_SECONDS: Final[float] = 0.5
#: How long ``run`` waits after the state file stayed locked past its busy timeout.
BUSY_RETRY_SECONDS: Final[float] = 1.0
#: Messages claimed per transaction by ``run_once``.
CLAIM_CHUNK: Final[int] = 500


class DeliveryBusyError(RuntimeError):
    """Another delivery worker holds this CDP_HOME's outbox."""


@dataclass
class DeliveryStats:
    """Counters of this worker since it started (the outbox itself keeps the totals)."""

    delivered: int = 0
    #: attempts that did not get a 2xx (each one is followed by a retry or a dead letter)
    failed_attempts: int = 0
    dead_lettered: int = 0


@dataclass(frozen=True)
class _Result:
    record: outbox.OutboxRecord
    finished_at: datetime
    error: str | None  # None: delivered


def backoff_seconds(
    failed_attempts: int, base_seconds: float, max_seconds: float, rng: random.Random
) -> float:
    """Full jitter: a uniform delay up to ``min(max, base * 2**(failed_attempts - 1))``."""
    exponent = min(max(failed_attempts - 1, 0), 62)  # 2**62 * base is past any max
    return rng.uniform(0.0, min(max_seconds, base_seconds * 2.0**exponent))


class DeliveryWorker:
    """Posts due outbox messages of ``CDP_HOME/events/state.sqlite`` to channel webhooks.

    ``run(stop_event)`` loops until the event is set; ``run_once()`` sends what is due now and
    waits for the answers (tests, one-shot jobs). Secrets of every configured channel are
    resolved at construction, so a missing ``secret_env`` fails at start, not per message.
    """

    def __init__(
        self,
        home: Path,
        config: RealtimeConfig,
        *,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.home = Path(home)
        self.config = config
        self.poll_seconds = poll_seconds
        self.stats = DeliveryStats()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        self._policy = config.delivery
        self._max_age = timedelta(hours=self._policy.max_age_hours)
        self._secrets = {
            name: channel_secret(self.home, name, config, environ) for name in config.channels
        }
        self._store = StateStore(state_path(self.home))
        self._conn = self._store.conn
        self._lock_path = self.home / "events" / "delivery.lock"
        self._lock_fd: int | None = None
        concurrency = self._policy.concurrency
        self._client = httpx.Client(
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=False,
            trust_env=False,
        )
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="cdp-delivery")
        self._results: queue.SimpleQueue[_Result] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._in_flight: dict[int, outbox.OutboxRecord] = {}
        self._unrecorded: list[_Result] = []

    # -- the lock ----------------------------------------------------------------------------

    def _try_lock(self) -> bool:
        if self._lock_fd is not None:
            return True
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return True

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop_event: threading.Event) -> None:
        """Deliver until ``stop_event`` is set; then finish the requests in flight and return.

        While another worker holds the outbox, stand by and take over when it goes away.
        """
        announced = False
        while not self._try_lock():
            if not announced:
                logger.info("another delivery worker holds %s; standing by", self._lock_path)
                announced = True
            if stop_event.wait(STANDBY_SECONDS):
                return
        logger.info("delivering outbox messages from %s", self._store.path)
        try:
            while not stop_event.is_set():
                try:
                    busy = self._step()
                except sqlite3.OperationalError as exc:
                    # the state file stayed locked past the busy timeout (a long processor
                    # batch, a backup): outcomes are kept in memory and written on the next try
                    logger.warning("outbox busy (%s); retrying in %ss", exc, BUSY_RETRY_SECONDS)
                    stop_event.wait(BUSY_RETRY_SECONDS)
                    continue
                if not busy:
                    self._wake.wait(self.poll_seconds)
                    self._wake.clear()
            self._drain()
        finally:
            self._unlock()

    def run_once(self, limit: int | None = None) -> DeliveryStats:
        """Send the messages due now (at most ``limit``), wait for their outcomes, record them.

        Returns what this call did. Raises DeliveryBusyError while another worker runs.
        """
        if not self._try_lock():
            raise DeliveryBusyError(
                f"another delivery worker holds {self._lock_path} (is `cdp stream` running?)"
            )
        before = DeliveryStats(**vars(self.stats))
        remaining = limit if limit is not None else sys.maxsize
        # one "now" for the whole call: a message retried during it is due after it, so each
        # due message is tried once; claims go in chunks (SQLite's parameter limit)
        now = self._clock()
        try:
            while remaining > 0:
                chunk = min(remaining, CLAIM_CHUNK)
                started = self._claim_and_send(chunk, now)
                self._drain()
                remaining -= started
                if started < chunk:
                    break
        finally:
            self._unlock()
        return DeliveryStats(
            delivered=self.stats.delivered - before.delivered,
            failed_attempts=self.stats.failed_attempts - before.failed_attempts,
            dead_lettered=self.stats.dead_lettered - before.dead_lettered,
        )

    def _step(self) -> bool:
        """Record finished requests, start due ones; True when anything happened."""
        recorded = self._record_results()
        free = self._policy.concurrency - len(self._in_flight)
        started = self._claim_and_send(free) if free > 0 else 0
        return recorded + started > 0

    def _drain(self) -> None:
        """Wait for the requests in flight and record their outcomes."""
        while self._in_flight:
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            self._record_results()

    def _any_due(self, now: datetime) -> bool:
        """A read without the write lock: is anything due that is not already in flight?"""
        skip = sorted(self._in_flight)
        not_in = f" and message_id not in ({', '.join('?' * len(skip))})" if skip else ""
        row = self._conn.execute(
            "select 1 from outbox where status = 'pending' and next_attempt_at <= ?"
            f"{not_in} limit 1",
            (outbox.to_micros(now), *skip),
        ).fetchone()
        return row is not None

    def _claim_and_send(self, limit: int, now: datetime | None = None) -> int:
        now = now or self._clock()
        if limit <= 0 or not self._any_due(now):
            return 0
        with outbox.transaction(self._conn) as conn:
            dead = self._dead_letter_unconfigured(conn, now)
            claimed = outbox.claim_due(conn, now, limit, exclude=self._in_flight.keys())
        self.stats.dead_lettered += dead
        for record in claimed:
            self._in_flight[record.message_id] = record
            future = self._executor.submit(self._send, record)
            future.add_done_callback(lambda _future: self._wake.set())
        return dead + len(claimed)

    def _dead_letter_unconfigured(self, conn: sqlite3.Connection, now: datetime) -> int:
        """Due messages for a channel with no webhook: dead at once, with what to do."""
        configured = sorted(self.config.channels)
        not_in = f" and channel not in ({', '.join('?' * len(configured))})" if configured else ""
        rows = conn.execute(
            "select message_id, channel from outbox where status = 'pending' "
            f"and next_attempt_at <= ?{not_in}",
            (outbox.to_micros(now), *configured),
        ).fetchall()
        dead = 0
        for message_id, channel in rows:
            reason = (
                f"no webhook configured for channel '{channel}': add realtime.channels."
                f"{channel}.url to cdp.yml, restart `cdp stream`, then "
                "`cdp outbox replay --all-dead`"
            )
            if outbox.mark_dead(conn, message_id, reason, now):
                dead += 1
                logger.warning("outbox message %s dead-lettered: %s", message_id, reason)
        return dead

    def _send(self, record: outbox.OutboxRecord) -> None:
        """One POST (in a pool thread); the outcome goes to the loop, which writes it."""
        channel: WebhookChannel = self.config.channels[record.channel]
        body = record.payload_json.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secrets[record.channel], body, int(time.time())),
            "Idempotency-Key": record.key,
            "X-CDP-Message-Id": str(record.message_id),
            "X-CDP-Attempt": str(record.attempts),
            "X-CDP-Channel": record.channel,
            "X-CDP-Trigger": record.trigger,
        }
        error: str | None
        try:
            response = self._client.post(
                channel.url, content=body, headers=headers, timeout=channel.timeout_seconds
            )
        except httpx.TimeoutException as exc:
            error = f"timeout after {channel.timeout_seconds:g}s ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        except Exception as exc:  # anything else must not lose the outcome: retried
            logger.exception("unexpected error posting outbox message %s", record.message_id)
            error = f"{type(exc).__name__}: {exc}"[:500]
        else:
            if 200 <= response.status_code < 300:
                error = None
            else:
                snippet = " ".join(response.text[:200].split())
                error = f"HTTP {response.status_code}" + (f": {snippet}" if snippet else "")
        self._results.put(_Result(record, self._clock(), error))

    def _record_results(self) -> int:
        """Write the finished requests' outcomes in one transaction.

        Outcomes stay in memory until that transaction commits, so a busy database delays
        them but loses none (the messages stay in flight, not re-sent, meanwhile).
        """
        while True:
            try:
                self._unrecorded.append(self._results.get_nowait())
            except queue.Empty:
                break
        if not self._unrecorded:
            return 0
        results, counted = list(self._unrecorded), DeliveryStats(**vars(self.stats))
        try:
            with outbox.transaction(self._conn) as conn:
                for result in results:
                    self._record(conn, result)
        except BaseException:
            self.stats = counted  # the rolled-back outcomes are counted when written
            raise
        self._unrecorded.clear()
        for result in results:
            self._in_flight.pop(result.record.message_id, None)
        return len(results)

    def _record(self, conn: sqlite3.Connection, result: _Result) -> None:
        record, at = result.record, result.finished_at
        if result.error is None:
            if outbox.mark_delivered(conn, record.message_id, at):
                self.stats.delivered += 1
            return
        self.stats.failed_attempts += 1
        deadline = record.retry_deadline(self._max_age)
        if at >= deadline:
            reason = (
                f"gave up after {record.attempts} attempt(s) in "
                f"{(at - (record.replayed_at or record.created_at)).total_seconds():.0f}s "
                f"(max age {self._policy.max_age_hours:g}h); last error: {result.error}"
            )
            if outbox.mark_dead(conn, record.message_id, reason, at):
                self.stats.dead_lettered += 1
                logger.warning("outbox message %s dead-lettered: %s", record.key, reason)
            return
        delay = backoff_seconds(
            record.attempts,
            self._policy.base_delay_seconds,
            self._policy.max_delay_seconds,
            self._rng,
        )
        next_at = min(at + timedelta(seconds=delay), deadline)
        outbox.mark_retry(conn, record.message_id, result.error, next_at)
        logger.info(
            "outbox message %s attempt %d failed (%s); retry in %.1fs",
            record.key,
            record.attempts,
            result.error,
            (next_at - at).total_seconds(),
        )

    # -- metrics and shutdown ----------------------------------------------------------------

    def counts(self) -> outbox.OutboxCounts:
        """The outbox now: depth (pending), counts by status and channel, oldest pending."""
        return outbox.counts(self._conn)

    def metrics(self) -> dict[str, float]:
        """Figures for ``/metrics`` and the ``cdp stream`` report: this worker's counters and
        the outbox's depth and oldest pending age (seconds)."""
        found = self.counts()
        return {
            "delivered": self.stats.delivered,
            "failed_attempts": self.stats.failed_attempts,
            "dead_lettered": self.stats.dead_lettered,
            "in_flight": len(self._in_flight),
            "depth": found.depth,
            "dead": found.by_status[outbox.DEAD],
            "oldest_pending_age_seconds": found.oldest_pending_age_seconds(self._clock()),
        }

    def close(self) -> None:
        """Stop the pool, close the HTTP client, the database and the lock."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._client.close()
        self._unlock()
        self._store.close()

    def __enter__(self) -> DeliveryWorker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
