"""Real-time path latency: intake -> live profile, price change -> webhook, cart timer -> webhook.

Usage::

    python benchmarks/bench_realtime.py [--home DIR] [--persons 2000] [--duration 20]
        [--rate 1000] [--batch 10] [--price-drops 100] [--carts 50] [--keep]

Everything runs as a user runs it, on one machine: ``cdp serve`` (2 uvicorn workers) and
``cdp stream`` (processor and delivery worker) as subprocesses on a built world, a signed-webhook
receiver (``http.server`` in a thread of this script, checking ``X-CDP-Signature`` with the
channel's secret) that the world's ``cdp.yml`` is pointed at for the run. Three figures, beside
issue 14's targets:

1. **accepted -> live profile, p99 <= 100 ms at 1,000 events/s.** ``Product Viewed`` events
   (anonymous cookies, products outside the catalog so no trigger fires) go through the HTTP
   intake in ``/v1/batch`` requests of ``--batch`` events paced on a fixed schedule (10 events
   every 10 ms by default; a late request does not delay the next one) for ``--duration`` s.
   Each request's acknowledgement time is recorded. The live profile commits in the same
   transaction as the processor's offset, so a sampler thread reads the committed offset from
   ``state.sqlite`` (read-only connection) every ~2 ms; afterwards each message id is mapped to
   its log offset and ``visible_at`` is the first sample whose offset reaches it. Latency =
   visible_at - acknowledgement (an upper bound by the sampling gap, printed).
2. **price change -> signed webhook, p99 <= 1 s.** ``--price-drops`` customers a price-drop
   email may reach (email consent and address, outside the holdout, no email sent in the last
   7 days, so neither the daily cap nor the adaptive weekly frequency refuses) each identify
   with their email and view a distinct catalog product whose category they never bought; once
   every view is in the live profile (checked in ``state.sqlite``, a few also through GraphQL
   ``customer { live { recentProducts } }``), ``Product Price Changed`` (30 % cheaper) goes out
   one product at a time, 5 per second. Latency = webhook receipt - acknowledgement.
3. **cart timer fires within 2 s of its due time.** ``cart_reminder`` gets ``after_minutes:
   0.05`` (3 s) for the run; ``--carts`` other reachable customers send ``Product Added`` with
   an explicit timestamp. Lateness = webhook receipt - (timestamp + 3 s); the processor's own
   ``timers.fired_at - due_at`` is printed beside it.

Every expected message must arrive exactly once, signed; a refusal in the decision log (its
reasons are printed) or a missing message fails the run. The world: ``cdp generate --persons N
--end D`` and ``cdp run --as-of D`` with D eight days back, so the batch run's daily emails are
older than the caps' windows; ``--home DIR`` reuses (or first builds) one, and a rerun picks
customers not emailed by an earlier run (about four runs per 2,000-person world). The world's
``cdp.yml`` is restored at the end. Exits 1 when a target is missed or a message is missing.

Measured (2 CPUs shared with other work, load average 0.5-2.8; 2,000-person world, defaults,
three runs): accepted -> live profile p50 2.6 ms, p99 5.4-6.7 ms, max 13-23 ms at 996 events/s;
price change -> signed webhook p50 15-16 ms, p99 28-29 ms, 100/100 received; cart timer
lateness p50 103-117 ms, max 206-220 ms, 50/50 received (timers are checked every 200 ms). The
path has headroom: at 5,000 events/s the live p99 was 38 ms; at 15,000 events/s (batches of
150) the processor fell behind (p99 1.4 s). Latencies can be slightly negative: the sender
noted the reply after the effect was already visible (this process's own scheduling).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from api.security import create_key
from decisions.assignment import is_holdout
from decisions.facts import iter_all_facts
from decisions.policy import load_policy
from decisions.store import DecisionStore, default_store_path
from events.processor import CONSUMER
from events.signing import SIGNATURE_HEADER, SignatureError, file_secret, verify
from events.write_keys import create_write_key
from snapshots import DATABASE_FILE, read_current, snapshot_folder

# `cdp run`, `cdp serve` and `cdp stream` refuse to start without a privacy key; the
# benchmark's own homes get one for this process and the commands it starts.
os.environ.setdefault("CDP_PRIVACY_KEY", secrets.token_hex(32))

LIVE_P99_TARGET_MS = 100.0
WEBHOOK_P99_TARGET_S = 1.0
TIMER_LATENESS_TARGET_S = 2.0
#: The cart trigger's delay for the run (issue's 60 minutes is too long to wait for).
CART_AFTER_MINUTES = 0.05
#: How much cheaper each product gets (the trigger needs 10 %).
PRICE_FACTOR = 0.7
#: Price changes sent per second (one product at a time).
PRICE_CHANGES_PER_S = 5.0
#: Customers emailed within this window are not picked (daily cap, adaptive weekly frequency).
RECENT_EMAIL = timedelta(days=7)
#: The world's last day is this far back, so its batch run's emails are outside RECENT_EMAIL.
WORLD_AGE = timedelta(days=8)
SAMPLE_SECONDS = 0.002
#: Share of ``--rate`` the paced sender must reach for figure 1 to count as measured at it.
RATE_TOLERANCE = 0.95


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from dagster_project.cli.main import app; app()", *args]


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def _summary(values: Sequence[float], scale: float, unit: str) -> str:
    if not values:
        return "no values"
    p50, p99 = _percentile(values, 50) * scale, _percentile(values, 99) * scale
    return (
        f"p50 {p50:.1f} {unit}, p99 {p99:.1f} {unit}, max {max(values) * scale:.1f} {unit}, "
        f"min {min(values) * scale:.1f} {unit} (n={len(values)})"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


# -- the world and the processes --------------------------------------------------------------


def build_world(home: Path, persons: int) -> None:
    """``cdp generate`` then ``cdp run`` as of WORLD_AGE ago (once per home)."""
    end = (datetime.now(UTC) - WORLD_AGE).date().isoformat()
    started = time.perf_counter()
    print(f"building a {persons:,}-person world in {home} (end {end}) ...", flush=True)
    subprocess.run(
        _cli("generate", "--persons", str(persons), "--out", str(home), "--end", end),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        _cli("run", "--as-of", end),
        check=True,
        env={**os.environ, "CDP_HOME": str(home)},
        stdout=subprocess.DEVNULL,
    )
    print(f"world built in {time.perf_counter() - started:.0f} s", flush=True)


@dataclass
class Processes:
    """The subprocesses this run started, each in its own session (stopped with killpg)."""

    started: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, name: str, args: list[str], home: Path, logs: Path) -> subprocess.Popen[bytes]:
        log = logs / f"{name}.log"
        with open(log, "wb") as handle:
            process = subprocess.Popen(
                args,
                env={**os.environ, "CDP_HOME": str(home), "CDP_API_AUDIT_DIR": str(logs)},
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((name, process, log))
        return process

    def check(self) -> None:
        """Raise, with the log's tail, when a process died."""
        for name, process, log in self.started:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM every process group, SIGKILL what is left after 20 s."""
        for _, process, _ in self.started:
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for _, process, _ in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for_server(url: str, processes: Processes) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        processes.check()
        with suppress(httpx.TransportError):
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        time.sleep(0.25)
    raise RuntimeError("cdp serve did not become healthy in 180 s")


# -- the webhook receiver ---------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """One verified delivery: when it arrived and what it said."""

    received_at: float
    key: str
    trigger: str
    customer_id: str
    product_ids: tuple[str, ...]


class Receiver:
    """A channel endpoint: verifies the signature first, records receipt time and message."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.receipts: list[Receipt] = []
        self.bad_signatures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received_at = time.time()
                try:
                    verify(receiver.secret, self.headers.get(SIGNATURE_HEADER), body)
                except SignatureError:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                message = orjson.loads(body)
                receipt = Receipt(
                    received_at=received_at,
                    key=str(self.headers.get("Idempotency-Key")),
                    trigger=str(message.get("trigger")),
                    customer_id=str(message.get("customer_id")),
                    product_ids=tuple(str(i["product_id"]) for i in message.get("items", [])),
                )
                with receiver.lock:
                    receiver.receipts.append(receipt)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/email"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of(self, trigger: str) -> list[Receipt]:
        """The receipts of one trigger so far."""
        with self.lock:
            return [r for r in self.receipts if r.trigger == trigger]


@contextmanager
def run_config(home: Path, webhook_url: str) -> Iterator[None]:
    """The world's cdp.yml with the email webhook at the receiver and a 3 s cart trigger,
    restored byte for byte afterwards."""
    path = home / "cdp.yml"
    original = path.read_text(encoding="utf-8")
    config = yaml.safe_load(original)
    realtime = config.setdefault("realtime", {})
    realtime.setdefault("channels", {}).setdefault("email", {})["url"] = webhook_url
    triggers = {t["name"]: t for t in realtime.get("triggers", [])}
    if "price_drop" not in triggers or "cart_reminder" not in triggers:
        raise RuntimeError(f"{path}: realtime.triggers needs price_drop and cart_reminder")
    triggers["cart_reminder"]["after_minutes"] = CART_AFTER_MINUTES
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    try:
        yield
    finally:
        path.write_text(original, encoding="utf-8")


# -- offsets ----------------------------------------------------------------------------------


def committed_offset(conn: sqlite3.Connection) -> int:
    """The stream processor's committed offset (0 before its first batch)."""
    try:
        row = conn.execute(
            "select offset from consumer_offsets where consumer = ?", (CONSUMER,)
        ).fetchone()
    except sqlite3.OperationalError:  # the processor has not created its tables yet
        return 0
    return int(row[0]) if row else 0


class OffsetSampler(threading.Thread):
    """Reads the committed offset every SAMPLE_SECONDS; keeps (time, offset) on every change."""

    def __init__(self, state: Path) -> None:
        super().__init__(daemon=True, name="offset-sampler")
        self.state = state
        self.samples: list[tuple[float, int]] = []
        self.gaps: list[float] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        conn = _ro(self.state)
        last_offset = -1
        last_at = time.time()
        try:
            while not self.stop_event.is_set():
                offset = committed_offset(conn)
                now = time.time()
                self.gaps.append(now - last_at)
                last_at = now
                if offset != last_offset:
                    self.samples.append((now, offset))
                    last_offset = offset
                time.sleep(SAMPLE_SECONDS)
        finally:
            conn.close()

    def visible_at(self, offset: int) -> float | None:
        """The first sample time at which ``offset`` was committed."""
        offsets = [o for _, o in self.samples]
        index = bisect.bisect_left(offsets, offset)
        return self.samples[index][0] if index < len(self.samples) else None


def wait_processed(state: Path, offset: int, processes: Processes, timeout: float = 60) -> None:
    """Block until the processor committed ``offset``."""
    conn = _ro(state)
    try:
        deadline = time.monotonic() + timeout
        while committed_offset(conn) < offset:
            processes.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the processor did not reach offset {offset} in {timeout} s")
            time.sleep(0.02)
    finally:
        conn.close()


def log_offsets(home: Path, prefix: str) -> dict[str, int]:
    """Message id -> log offset for this run's message ids (read-only, by the unique index)."""
    conn = _ro(home / "events" / "log.sqlite")
    try:
        rows = conn.execute(
            "select message_id, offset from events where message_id >= ? and message_id < ?",
            (prefix, prefix + "\U0010ffff"),
        ).fetchall()
    finally:
        conn.close()
    return {str(m): int(o) for m, o in rows}


# -- 1. accepted -> live profile --------------------------------------------------------------


@dataclass
class Ack:
    """One intake request: the message ids it carried and when its 200 came back."""

    message_ids: list[str]
    acked_at: float | None = None
    error: str | None = None


async def _paced_load(
    url: str, auth: str, prefix: str, rate: int, batch: int, duration: float
) -> list[Ack]:
    interval = batch / rate
    acks: list[Ack] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": auth}, limits=limits, timeout=10
    ) as client:

        async def send(ack: Ack, body: bytes) -> None:
            try:
                answer = await client.post(
                    "/v1/batch", content=body, headers={"Content-Type": "application/json"}
                )
                acked_at = time.time()
                reply = answer.json()
                if answer.status_code != 200 or reply.get("accepted") != len(ack.message_ids):
                    ack.error = f"{answer.status_code} {answer.text[:200]}"
                else:
                    ack.acked_at = acked_at
            except httpx.HTTPError as exc:
                ack.error = repr(exc)

        tasks: list[asyncio.Task[None]] = []
        count = int(duration / interval)
        start = time.perf_counter() + 0.05
        for n in range(count):
            delay = start + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            items = []
            for k in range(batch):
                i = n * batch + k
                items.append(
                    {
                        "type": "track",
                        "event": "Product Viewed",
                        "anonymousId": f"bench-ck-{i % 5000}",
                        "messageId": f"{prefix}{i}",
                        "properties": {"product_id": f"bench-p{i % 500}", "price": 9.99},
                    }
                )
            ack = Ack([item["messageId"] for item in items])
            acks.append(ack)
            tasks.append(asyncio.create_task(send(ack, orjson.dumps({"batch": items}))))
        await asyncio.gather(*tasks)
    return acks


@dataclass
class LiveResult:
    latencies: list[float]
    sent: int
    errors: list[str]
    rate: float
    sample_gap_p50_ms: float
    sample_gap_max_ms: float


def measure_live(
    home: Path, url: str, auth: str, run_id: str, processes: Processes, args: argparse.Namespace
) -> LiveResult:
    """Figure 1: paced events, acknowledgement times, committed-offset samples."""
    state = home / "events" / "state.sqlite"
    prefix = f"bench-rt-{run_id}-live-"
    sampler = OffsetSampler(state)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # the sampler thread wakes on time beside the event loop
    sampler.start()
    try:
        started = time.time()
        acks = asyncio.run(
            _paced_load(url, auth, prefix, args.rate, args.batch, float(args.duration))
        )
        elapsed = time.time() - started
        offsets = log_offsets(home, prefix)
        wait_processed(state, max(offsets.values(), default=0), processes)
        time.sleep(0.05)
    finally:
        sampler.stop_event.set()
        sampler.join()
        sys.setswitchinterval(previous)
    latencies: list[float] = []
    errors = [a.error for a in acks if a.error]
    for ack in acks:
        if ack.acked_at is None:
            continue
        for message_id in ack.message_ids:
            offset = offsets.get(message_id)
            if offset is None:
                errors.append(f"{message_id}: acknowledged but not in the log")
                continue
            visible = sampler.visible_at(offset)
            if visible is None:
                errors.append(f"{message_id}: never committed by the processor")
                continue
            latencies.append(visible - ack.acked_at)
    sent = sum(len(a.message_ids) for a in acks)
    gaps = sampler.gaps[1:] or [0.0]
    return LiveResult(
        latencies=latencies,
        sent=sent,
        errors=errors,
        rate=sent / elapsed,
        sample_gap_p50_ms=statistics.median(gaps) * 1000,
        sample_gap_max_ms=max(gaps) * 1000,
    )


# -- 2 and 3: customers a trigger email may reach ---------------------------------------------


@dataclass(frozen=True)
class Target:
    customer_id: str
    email: str
    product_id: str
    product_name: str
    price: float


def pick_targets(home: Path, count: int) -> list[Target]:
    """Customers an email trigger may reach, each with a distinct product of a category they
    never bought, not viewed live by anyone in the last 14 days (so a price change reaches
    exactly one customer). Prices are the current ones (live, else the catalog)."""
    policy = load_policy(home / "cdp.yml")
    store_path = default_store_path(home)
    since = int((datetime.now(UTC) - RECENT_EMAIL).timestamp() * 1_000_000)
    with DecisionStore.open(store_path) as store:
        key = store.assignment_key()
    decisions = _ro(store_path)
    try:
        emailed = {
            str(r[0])
            for r in decisions.execute(
                "select distinct customer_id from deliveries where channel = 'email' "
                "and is_sent = 1 and delivered_at >= ?",
                (since,),
            )
        }
    finally:
        decisions.close()
    live_prices: dict[str, float] = {}
    taken: set[str] = set()
    state = home / "events" / "state.sqlite"
    if state.exists():
        conn = _ro(state)
        try:
            viewed_since = int((datetime.now(UTC) - timedelta(days=15)).timestamp() * 1_000_000)
            with suppress(sqlite3.OperationalError):
                taken = {
                    str(r[0])
                    for r in conn.execute(
                        "select distinct product_id from live_product_views where viewed_at >= ?",
                        (viewed_since,),
                    )
                }
                taken |= {str(r[0]) for r in conn.execute("select product_id from live_cart")}
                live_prices = {
                    str(p): float(v)
                    for p, v in conn.execute("select product_id, price from product_prices")
                }
        finally:
            conn.close()
    serving = home / "serving"
    snapshot = _ro(snapshot_folder(serving, read_current(serving)) / DATABASE_FILE)
    targets: list[Target] = []
    try:
        products = [
            (str(p), str(n), str(c).lower(), float(live_prices.get(str(p), price)))
            for p, n, c, price in snapshot.execute(
                "select product_id, product_name, category, price from products "
                "where price > 20 order by product_id"
            )
            if str(p) not in taken
        ]
        for facts in iter_all_facts(snapshot):
            if len(targets) >= count:
                break
            if facts.consents.get("email") is not True or "email" not in facts.reachable:
                continue
            if facts.customer_id in emailed:
                continue
            if is_holdout(key, facts.assignment_id, policy.holdout.share):
                continue
            row = snapshot.execute(
                "select identifier_value from identifier_lookup where customer_id = ? "
                "and identifier_type = 'email' order by identifier_value limit 1",
                (facts.customer_id,),
            ).fetchone()
            if row is None:
                continue
            bought = {c.lower() for c in facts.category_last_purchased_at}
            for index, (product_id, name, category, price) in enumerate(products):
                if category not in bought:
                    targets.append(Target(facts.customer_id, str(row[0]), product_id, name, price))
                    del products[index]
                    break
    finally:
        snapshot.close()
    if len(targets) < count:
        raise RuntimeError(
            f"{home}: only {len(targets)} customers an email may reach (not emailed in "
            f"{RECENT_EMAIL.days} days, with a free product), {count} needed; build a fresh "
            "world (run without --home, or with a new folder)"
        )
    return targets


def _post(client: httpx.Client, path: str, payload: dict[str, Any]) -> float:
    """POST one intake request; its acknowledgement time (raises on anything but success)."""
    answer = client.post(path, json=payload)
    acked_at = time.time()
    reply = answer.json()
    if answer.status_code != 200 or not reply.get("success") or reply.get("failed"):
        raise RuntimeError(f"intake refused {path}: {answer.status_code} {answer.text[:300]}")
    return acked_at


def _identify_then(
    target: Target, run_id: str, tag: str, track: dict[str, Any], at: datetime
) -> dict[str, Any]:
    """A login with the customer's email, then ``track`` from the same new cookie, at ``at``."""
    now = at.isoformat()
    cookie = f"bench-rt-{run_id}-{tag}-{target.customer_id}"
    return {
        "batch": [
            {
                "type": "identify",
                "anonymousId": cookie,
                "messageId": f"bench-rt-{run_id}-{tag}-id-{target.customer_id}",
                "timestamp": now,
                "traits": {"email": target.email},
            },
            {
                "type": "track",
                "anonymousId": cookie,
                "messageId": f"bench-rt-{run_id}-{tag}-ev-{target.customer_id}",
                "timestamp": now,
                **track,
            },
        ]
    }


def _live_rows(home: Path, table: str, targets: Sequence[Target]) -> set[tuple[str, str]]:
    conn = _ro(home / "events" / "state.sqlite")
    try:
        ids = [t.customer_id for t in targets]
        marks = ", ".join("?" * len(ids))
        return {
            (str(c), str(p))
            for c, p in conn.execute(
                f"select customer_id, product_id from {table} where customer_id in ({marks})", ids
            )
        }
    finally:
        conn.close()


def _refusals(home: Path, placement: str, customers: Sequence[str], since: float) -> list[str]:
    """Reasons of refused (not sent) deliveries of ``placement`` for ``customers``."""
    conn = _ro(default_store_path(home))
    try:
        marks = ", ".join("?" * len(customers))
        rows = conn.execute(
            f"select customer_id, reasons from deliveries where placement = ? and is_sent = 0 "
            f"and delivered_at >= ? and customer_id in ({marks})",
            (placement, int(since * 1_000_000), *customers),
        ).fetchall()
    finally:
        conn.close()
    return [f"{c}: {r}" for c, r in rows]


def _graphql_views(url: str, api_key: str, targets: Sequence[Target]) -> int:
    """How many of ``targets`` show their viewed product in GraphQL's live profile."""
    query = (
        "query($id: ID!) { customer(id: $id) { customerId "
        "live { recentProducts { product { id } } } } }"
    )
    seen = 0
    for target in targets:
        answer = httpx.post(
            url + "/graphql",
            json={"query": query, "variables": {"id": target.customer_id}},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=10,
        ).json()
        customer = (answer.get("data") or {}).get("customer") or {}
        products = [
            p["product"]["id"] for p in (customer.get("live") or {}).get("recentProducts", [])
        ]
        seen += target.product_id in products
    return seen


@dataclass
class TriggerResult:
    latencies: list[float]
    sent: int
    received: int
    duplicates: int
    unexpected: int
    refusals: list[str]
    extra: str = ""


def _match(
    receipts: Sequence[Receipt], expected: dict[tuple[str, str], float]
) -> tuple[list[float], int, int, int]:
    """Latencies of the first receipt per expected (customer, product), duplicates, others."""
    latencies: dict[tuple[str, str], float] = {}
    duplicates = unexpected = 0
    for receipt in sorted(receipts, key=lambda r: r.received_at):
        keys = [(receipt.customer_id, p) for p in receipt.product_ids]
        hit = next((k for k in keys if k in expected), None)
        if hit is None:
            unexpected += 1
        elif hit in latencies:
            duplicates += 1
        else:
            latencies[hit] = receipt.received_at - expected[hit]
    return list(latencies.values()), len(latencies), duplicates, unexpected


def _wait_receipts(
    receiver: Receiver, trigger: str, count: int, deadline: float, processes: Processes
) -> None:
    while len(receiver.of(trigger)) < count and time.time() < deadline:
        processes.check()
        time.sleep(0.05)
    time.sleep(0.5)  # a duplicate would arrive now


def measure_price_drop(
    home: Path,
    url: str,
    auth: str,
    api_key: str,
    run_id: str,
    targets: Sequence[Target],
    receiver: Receiver,
    processes: Processes,
) -> TriggerResult:
    """Figure 2: views by reachable customers, then price changes one product at a time."""
    started = time.time()
    with httpx.Client(base_url=url, headers={"Authorization": auth}, timeout=10) as client:
        for target in targets:
            _post(
                client,
                "/v1/batch",
                _identify_then(
                    target,
                    run_id,
                    "pd",
                    {
                        "event": "Product Viewed",
                        "properties": {
                            "product_id": target.product_id,
                            "name": target.product_name,
                            "price": target.price,
                        },
                    },
                    datetime.now(UTC),
                ),
            )
        wanted = {(t.customer_id, t.product_id) for t in targets}
        deadline = time.monotonic() + 30
        while not wanted <= (seen := _live_rows(home, "live_product_views", targets)):
            processes.check()
            if time.monotonic() > deadline:
                missing = sorted(wanted - seen)[:5]
                raise RuntimeError(f"views not attributed to the known customers: {missing}")
            time.sleep(0.05)
        in_graphql = _graphql_views(url, api_key, targets[:5])
        expected: dict[tuple[str, str], float] = {}
        for target in targets:
            at = time.time()
            expected[(target.customer_id, target.product_id)] = _post(
                client,
                "/v1/track",
                {
                    "type": "track",
                    "event": "Product Price Changed",
                    "anonymousId": "bench-rt-catalog",
                    "messageId": f"bench-rt-{run_id}-price-{target.product_id}",
                    "properties": {
                        "product_id": target.product_id,
                        "price": round(target.price * PRICE_FACTOR, 2),
                    },
                },
            )
            time.sleep(max(0.0, 1 / PRICE_CHANGES_PER_S - (time.time() - at)))
    _wait_receipts(receiver, "price_drop", len(targets), time.time() + 15, processes)
    latencies, received, duplicates, unexpected = _match(receiver.of("price_drop"), expected)
    return TriggerResult(
        latencies=latencies,
        sent=len(targets),
        received=received,
        duplicates=duplicates,
        unexpected=unexpected,
        refusals=_refusals(home, "price_drop", [t.customer_id for t in targets], started),
        extra=f"GraphQL live profile shows the view for {in_graphql}/{min(5, len(targets))}",
    )


def measure_cart(
    home: Path,
    url: str,
    auth: str,
    run_id: str,
    targets: Sequence[Target],
    receiver: Receiver,
    processes: Processes,
) -> TriggerResult:
    """Figure 3: add-to-cart, nothing after; the timer's webhook against its due time."""
    started = time.time()
    after = CART_AFTER_MINUTES * 60
    due: dict[tuple[str, str], float] = {}
    with httpx.Client(base_url=url, headers={"Authorization": auth}, timeout=10) as client:
        for target in targets:
            occurred = datetime.now(UTC)
            payload = _identify_then(
                target,
                run_id,
                "cart",
                {
                    "event": "Product Added",
                    "properties": {
                        "product_id": target.product_id,
                        "name": target.product_name,
                        "price": target.price,
                        "quantity": 1,
                    },
                },
                occurred,
            )
            _post(client, "/v1/batch", payload)
            due[(target.customer_id, target.product_id)] = occurred.timestamp() + after
            time.sleep(0.1)
    _wait_receipts(receiver, "cart_reminder", len(targets), time.time() + after + 15, processes)
    latencies, received, duplicates, unexpected = _match(receiver.of("cart_reminder"), due)
    conn = _ro(home / "events" / "state.sqlite")
    try:
        ids = [t.customer_id for t in targets]
        rows = conn.execute(
            f"select fired_at - due_at from timers where fired_at is not null and "
            f"customer_id in ({', '.join('?' * len(ids))})",
            ids,
        ).fetchall()
    finally:
        conn.close()
    fired = [int(r[0]) / 1_000_000 for r in rows]
    return TriggerResult(
        latencies=latencies,
        sent=len(targets),
        received=received,
        duplicates=duplicates,
        unexpected=unexpected,
        refusals=_refusals(home, "cart_reminder", ids, started),
        extra="timers.fired_at - due_at: " + _summary(fired, 1000, "ms"),
    )


# -- the run ----------------------------------------------------------------------------------


def _report(live: LiveResult, price: TriggerResult, cart: TriggerResult, args: Any) -> bool:
    print()
    print(
        f"1. accepted -> live profile ({live.sent:,} events, {live.rate:,.0f} events/s offered in "
        f"batches of {args.batch}): {_summary(live.latencies, 1000, 'ms')}; offset sampled every "
        f"{live.sample_gap_p50_ms:.1f} ms (max gap {live.sample_gap_max_ms:.1f} ms); "
        f"errors {len(live.errors)}"
    )
    for error in live.errors[:5]:
        print(f"   {error}")
    if live.rate < RATE_TOLERANCE * args.rate:
        print(f"   the sender reached {live.rate:,.0f} of {args.rate:,} events/s: not at the load")
    for label, result in (("2. price change -> webhook", price), ("3. cart timer lateness", cart)):
        print(
            f"{label}: {_summary(result.latencies, 1000, 'ms')}; sent {result.sent}, received "
            f"{result.received}, duplicates {result.duplicates}, unexpected {result.unexpected}, "
            f"refused {len(result.refusals)}; {result.extra}"
        )
        for refusal in result.refusals[:5]:
            print(f"   refused {refusal}")
    rows = [
        (
            "accepted -> live profile p99",
            _percentile(live.latencies, 99) * 1000 if live.latencies else float("inf"),
            LIVE_P99_TARGET_MS,
            "ms",
            not live.errors
            and len(live.latencies) == live.sent
            and live.rate >= RATE_TOLERANCE * args.rate,
        ),
        (
            "price change -> webhook p99",
            _percentile(price.latencies, 99) if price.latencies else float("inf"),
            WEBHOOK_P99_TARGET_S,
            "s",
            price.received == price.sent and not price.refusals and not price.duplicates,
        ),
        (
            "cart timer lateness max",
            max(cart.latencies) if cart.latencies else float("inf"),
            TIMER_LATENESS_TARGET_S,
            "s",
            cart.received == cart.sent and not cart.refusals and not cart.duplicates,
        ),
    ]
    print()
    print(f"{'figure':<30} {'measured':>13}  {'target':<11} result")
    ok = True
    for label, value, target, unit, complete in rows:
        met = value <= target and complete
        ok &= met
        verdict = "PASS" if met else ("FAIL" if complete else "FAIL (incomplete: see above)")
        print(f"{label:<30} {value:>10.3f} {unit:<2}  <= {target:g} {unit:<5} {verdict}")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    return ok


def run(home: Path, args: argparse.Namespace, scratch: Path) -> bool:
    """Serve and stream ``home``, measure the three figures; True when all targets are met."""
    run_id = uuid.uuid4().hex[:8]
    targets = pick_targets(home, args.price_drops + args.carts)
    price_targets, cart_targets = targets[: args.price_drops], targets[args.price_drops :]
    write_key = create_write_key(home / "write_keys.yml", "bench-realtime", replace=True)
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    api_key = create_key(home / "api_keys.yml", "bench-realtime", ["profile:read"], replace=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    processes = Processes()
    with (
        Receiver(file_secret(home, "email")) as receiver,
        run_config(home, receiver.url),
    ):
        try:
            processes.start("serve", _cli("serve", "--port", str(port)), home, scratch)
            processes.start("stream", _cli("stream"), home, scratch)
            _wait_for_server(url, processes)
            with httpx.Client(base_url=url, headers={"Authorization": auth}, timeout=10) as c:
                warm = f"bench-rt-{run_id}-warm"
                _post(c, "/v1/page", {"type": "page", "anonymousId": warm, "messageId": warm})
            wait_processed(
                home / "events" / "state.sqlite", max(log_offsets(home, warm).values()), processes
            )
            print(f"serve on {url} and stream up; run {run_id}", flush=True)
            live = measure_live(home, url, auth, run_id, processes, args)
            print("1. done", flush=True)
            price = measure_price_drop(
                home, url, auth, api_key, run_id, price_targets, receiver, processes
            )
            print("2. done", flush=True)
            cart = measure_cart(home, url, auth, run_id, cart_targets, receiver, processes)
            print("3. done", flush=True)
            if receiver.bad_signatures:
                print(f"BAD SIGNATURES: {receiver.bad_signatures} deliveries refused")
            ok = _report(live, price, cart, args)
            return ok and not receiver.bad_signatures
        finally:
            processes.stop()


def main() -> int:
    """Build or reuse a world, run the three measurements, print them beside the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, help="a built world to reuse (built there if empty)")
    parser.add_argument("--persons", type=int, default=2000, help="world size when building")
    parser.add_argument("--duration", type=int, default=20, help="seconds of paced events")
    parser.add_argument("--rate", type=int, default=1000, help="events/s for figure 1")
    parser.add_argument("--batch", type=int, default=10, help="events per intake request")
    parser.add_argument("--price-drops", type=int, default=100, help="customers for figure 2")
    parser.add_argument("--carts", type=int, default=50, help="customers for figure 3")
    parser.add_argument("--keep", action="store_true", help="keep the temporary world and logs")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench_realtime_"))
    try:
        home = args.home.resolve() if args.home else scratch / "home"
        if not (home / "serving" / "CURRENT").exists():
            if home.exists() and any(home.iterdir()):
                raise RuntimeError(f"{home} is not empty and holds no built world (serving/)")
            build_world(home, args.persons)
        ok = run(home, args, scratch)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"FAILED: {exc}")
        ok = False
    finally:
        if args.keep:
            print(f"kept {scratch} (logs{'' if args.home else ', world'})")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
