"""Decision load test: the ``decide`` mutation over HTTP against uvicorn (2 workers) with wrk.

Usage::

    python benchmarks/bench_decide.py [--persons 100000] [--duration 20] [--repeats 5]

A script of its own rather than a subcommand of ``bench_api.py``: it reuses that script's
synthetic world, server and wrk plumbing (imported), but needs more world (40 running sales with
their items, category interest per customer, recorded consents), a policy in cdp.yml, a fixed
decision clock and a decision log, and its requests are writes, so each phase must use
customer-channel pairs no earlier phase used. Keeping it apart keeps ``bench_api.py`` the read
benchmark it was measured as.

What it does: builds the synthetic warehouse of ``bench_api.py`` for ``--persons`` customers,
adds ``SALE_COUNT`` sales running at the decision instant (``CDP_API_NOW``) and three category
interests per customer, publishes it with the real publish step, writes a policy (one daily
email placement for email, web, app and call center; a daily email cap and a weekly message cap;
exploration; a 5 % holdout; a subject experiment) and serves it with ``cdp serve``. wrk's Lua
script POSTs ``decide`` for distinct customers (from the snapshot) rotating over the channels:

* sustained: 200 requests/s paced by wrk's ``delay()``, ``--repeats`` runs: the median run's
  p99 must be <= 20 ms;
* saturation: as fast as 32 connections go: >= 800 decisions/s.

Every request is a first decision for its customer and channel (a new choice or a new delivery
of the period's choice, one write transaction each), the expensive case; a channel asking again
in the period gets the logged answer, which is cheaper. Prints latency percentiles, throughput,
CPU steal, server CPU per decision and what the decision log holds; exits 1 if a target is
missed or a request failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_api  # noqa: E402  (puts the repository on sys.path too)

from api.security import create_key  # noqa: E402
from dagster_project.lib.publish import publish_snapshot  # noqa: E402

SUSTAINED_RATE = 200
P99_TARGET_MS = 20.0
THROUGHPUT_TARGET = 800.0
SALE_COUNT = 40
ITEMS_PER_SALE = 12
#: The decision instant: the synthetic world's as-of day, after the 14:00 UTC period start.
DECIDE_AT = datetime(2025, 6, 30, 20, 0, tzinfo=UTC)
CHANNELS = ("email", "web", "app", "call_center")
CATEGORIES = ("shoes", "books", "garden", "toys", "electronics", "beauty", "sports", "home")
THEMES = ("flash-deal", "summer-sale", "brand-spotlight", "clearance", "new-arrivals")

#: What a channel asks per message or page view: the items to show and the rendered subject.
DECIDE_QUERY = (
    "mutation Decide($c: ID!, $ch: String!) { decide(customer: {id: $c}, channel: $ch, "
    'placement: "daily_email") { decisionId send reasons theme subject expiresAt '
    "experiment { experiment arm } items { product { id name } sale { id title } score "
    "propensity isWildcard } } }"
)

POLICY = """
decisions:
  period_start_hour: 14
  placements:
    daily_email:
      channels: [email, web, app, call_center]
      kind: message
      items: 4
      wildcard_slots: 1
      period: 1d
      subject: daily_subject
    home_hero: {channels: [web, app], kind: display, items: 3, wildcard_slots: 1, period: 1d}
  offers:
    - {name: clearance_for_frequent_buyers, sales: {themes: [clearance]},
       segments: [frequent_buyers]}
    - {name: electronics_for_valuable, sales: {categories: [electronics]},
       traits: {lifetime_revenue: {min: 100}}}
  caps:
    - {name: email_daily, channels: [email], max: 1, window: 24h}
    - {name: messages_weekly, channels: [email, sms, push], max: 5, window: 7d}
  frequency: {channels: [email], window: 7d, max_sends: 7, min_sends: 1}
  suppression:
    - {categories: [electronics, home], days: 120}
  exploration: {share: 0.1}
  holdout: {share: 0.05}
  experiments:
    - name: subject_line
      placement: daily_email
      arms:
        - {name: control, weight: 1}
        - {name: personal, weight: 1, subject: daily_subject_personal}
  templates:
    daily_subject:
      text: "{{ theme }}: up to {{ discount }}% off"
      fallbacks: {theme: "Today's sales", discount: "50"}
    daily_subject_personal:
      text: "Hi {{ first_name }}, new in {{ favourite_category }}"
      fallbacks: {first_name: there, favourite_category: "today's sales"}
"""


def add_decision_data(warehouse: Path, persons: int) -> None:
    """Sales running at DECIDE_AT, category interest per customer, recorded consents."""
    categories = ", ".join(f"('{c}', {n})" for n, c in enumerate(CATEGORIES))
    themes = "[" + ", ".join(f"'{t}'" for t in THEMES) + "]"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute("delete from sales")
        con.execute("delete from sale_items")
        con.execute("delete from customer_category_activity")
        con.execute(
            f"""
            insert into sales
            select 'sale_' || s, 'Sale ' || s, {themes}[1 + s % {len(THEMES)}],
                   c.category, case when s % 3 = 0 then null else 'brand' || (s % 17) end,
                   10 + (s * 7) % 50,
                   timestamptz '2025-06-30 14:00:00+00', timestamptz '2025-07-01 14:00:00+00',
                   {ITEMS_PER_SALE}
            from range({SALE_COUNT}) t(s)
            join (values {categories}) c(category, n) on c.n = s % {len(CATEGORIES)}
            """
        )
        con.execute(
            f"""
            insert into sale_items
            select 'sale_' || s, 'P' || (s * {ITEMS_PER_SALE} + k), 'Product ' || (s * 100 + k),
                   c.category, 'brand' || ((s + k) % 17), 20.0 + k * 5, (20.0 + k * 5) * 0.7
            from range({SALE_COUNT}) t(s), range({ITEMS_PER_SALE}) i(k)
            join (values {categories}) c(category, n) on c.n = s % {len(CATEGORIES)}
            """
        )
        con.execute(
            f"""
            insert into customer_category_activity
            select printf('cus_%08d', i), c.category, 3 - r, (3 - r) / 6.0, r + 1, 2, 1,
                   case when r = 0 and i % 5 = 0 then timestamptz '2025-06-20 10:00:00+00' end,
                   timestamptz '2025-06-29 10:00:00+00', timestamptz '2025-06-29 10:00:00+00'
            from range({persons}) t(i), range(3) x(r)
            join (values {categories}) c(category, n) on c.n = (i + r * 3) % {len(CATEGORIES)}
            """
        )
        con.execute(
            "update customers set has_email_consent_source = 'crm', "
            "has_sms_consent_source = 'crm', has_push_consent_source = 'crm'"
        )


def _stride(persons: int) -> int:
    """A step coprime to ``persons``: ``i * step % persons`` visits every customer once."""
    step = 7919
    while math.gcd(step, persons) != 1:
        step += 2
    return step


class Pairs:
    """Hands out ranges of (customer, channel) pairs never used before: pair ``g`` is channel
    ``g // persons`` and customer ``cus_%08d`` of ``(g % persons) * stride % persons`` (the
    synthetic world's ids), computed in the Lua script so it stays small at any size."""

    def __init__(self, persons: int) -> None:
        self.persons = persons
        self.stride = _stride(persons)
        self.next = 0

    def pair(self, g: int) -> tuple[str, str]:
        customer = (g % self.persons) * self.stride % self.persons
        return f"cus_{customer:08d}", CHANNELS[g // self.persons]

    def take(self, count: int) -> tuple[int, int]:
        """A span of ``count`` unused pairs; a small world starts over (then requests repeat,
        and a repeat gets the logged answer: ``repeated`` says so in the output)."""
        total = self.persons * len(CHANNELS)
        if self.next + count > total:
            self.repeated = True
            self.next = 0
        end = min(self.next + count, total)
        taken = (self.next, end)
        self.next = end
        return taken

    repeated = False


def _lua_script(
    path: Path, pairs: Pairs, span: tuple[int, int], key: str, delay_ms: float | None
) -> None:
    query = json.dumps(DECIDE_QUERY)
    channels = ", ".join(f'"{c}"' for c in CHANNELS)
    delay = (
        f"function delay() return math.random({round(delay_ms * 0.5)}, {round(delay_ms * 1.5)}) end"
        if delay_ms
        else ""
    )
    # Each wrk thread walks its own stride of the span: no pair is sent twice in one run.
    path.write_text(
        f"""
local first, last = {span[0]}, {span[1]}
local persons, step = {pairs.persons}, {pairs.stride}
local channels = {{{channels}}}
local query = [==[{query}]==]
local g = 0
local stride = 1
graphql_errors = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
function init(args) g = first + offset - 1 - threads_total; stride = threads_total end
function request()
  g = g + stride
  if g >= last then g = first + (g - first) % (last - first) end
  local customer = ((g % persons) * step) % persons
  local channel = channels[math.floor(g / persons) + 1]
  local body = '{{"operationName": "Decide", "query": ' .. query ..
    ', "variables": {{"c": "' .. string.format("cus_%08d", customer) ..
    '", "ch": "' .. channel .. '"}}}}'
  return wrk.format(nil, "/graphql", nil, body)
end
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) or
     not string.find(body, '"decisionId"', 1, true) then
    graphql_errors = graphql_errors + 1
  end
end
{delay}
local threads = {{}}
local count = 0
function setup(thread)
  count = count + 1
  thread:set("offset", count)
  table.insert(threads, thread)
  for _, t in ipairs(threads) do t:set("threads_total", #threads) end
end
{bench_api.WRK_REPORT_LUA}
""",
        encoding="utf-8",
    )


def _run(
    url: str,
    scratch: Path,
    name: str,
    pairs: Pairs,
    key: str,
    *,
    rate: float | None,
    connections: int,
    seconds: int,
    delay_ms: float | None = None,
) -> dict[str, Any]:
    """One wrk run over fresh pairs (enough for ``rate`` or a generous saturation guess)."""
    expected = (rate or 3000) * seconds * 1.3 + 1000
    script = scratch / f"{name}.lua"
    _lua_script(script, pairs, pairs.take(int(expected)), key, delay_ms)
    return bench_api._measured(
        lambda: bench_api._wrk(url, script, threads=2, connections=connections, seconds=seconds)
    )


def _log_counts(home: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{home / 'decisions' / 'decisions.sqlite'}?mode=ro", uri=True)
    try:
        choices = con.execute("select count(*) from choices").fetchone()[0]
        deliveries, sends = con.execute(
            "select count(*), coalesce(sum(is_sent), 0) from deliveries"
        ).fetchone()
    finally:
        con.close()
    return {"choices": choices, "deliveries": deliveries, "sends": sends}


def main() -> int:
    """Build and publish the world, serve it, load it, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="sustained runs (median decides)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="bench_decide_"))
    server = None
    try:
        home = scratch / "home"
        started = time.perf_counter()
        bench_api.build_synthetic_home(home, args.persons)
        add_decision_data(home / "warehouse.duckdb", args.persons)
        print(
            f"synthetic warehouse, {args.persons:,} customers, {SALE_COUNT} sales: "
            f"{time.perf_counter() - started:.1f}s",
            flush=True,
        )
        result = publish_snapshot(home / "warehouse.duckdb", home / "serving")
        print(
            f"publish: {result.seconds['total']:.1f}s, {result.manifest.size_bytes / 1e6:.0f} MB",
            flush=True,
        )
        (home / "cdp.yml").write_text(POLICY, encoding="utf-8")
        key_file = scratch / "api_keys.yml"
        key = create_key(key_file, "bench-email", ["profile:read", "decisions:write"])
        os.environ["CDP_API_KEYS_FILE"] = str(key_file)
        os.environ["CDP_API_NOW"] = DECIDE_AT.isoformat()
        pairs = Pairs(args.persons)
        port = bench_api._free_port()
        url = f"http://127.0.0.1:{port}"
        server = bench_api._start_server(home, port, args.workers)
        probe = httpx.post(
            url + "/graphql",
            json={
                "query": DECIDE_QUERY,
                "variables": dict(zip(("c", "ch"), pairs.pair(pairs.take(1)[0]), strict=True)),
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ).json()
        assert "errors" not in probe and probe["data"]["decide"]["items"], probe
        seconds = args.duration
        run = dict(url=url, scratch=scratch, pairs=pairs, key=key)
        _run(name="warmup", rate=None, connections=8, seconds=5, **run)  # type: ignore[arg-type]
        connections = 20
        delay_ms = connections * 1000 / SUSTAINED_RATE
        calibration = _run(
            name="calibration",
            rate=SUSTAINED_RATE,
            connections=connections,
            seconds=5,
            delay_ms=delay_ms,
            **run,  # type: ignore[arg-type]
        )
        delay_ms *= calibration["rate"] / SUSTAINED_RATE
        sustained = [
            _run(
                name=f"sustained{n}",
                rate=SUSTAINED_RATE,
                connections=connections,
                seconds=seconds,
                delay_ms=delay_ms,
                **run,  # type: ignore[arg-type]
            )
            for n in range(args.repeats)
        ]
        cpu_before = bench_api._process_tree_cpu(server.pid)
        saturation = _run(name="saturation", rate=None, connections=32, seconds=seconds, **run)  # type: ignore[arg-type]
        cpu_ms = (
            (bench_api._process_tree_cpu(server.pid) - cpu_before)
            * 1000
            / max(saturation["requests"], 1)
        )
        bench_api._stop_server(server)
        server = None
        print(
            f"decide over HTTP, {args.workers} uvicorn workers, wrk, every request a first "
            f"decision for its customer and channel ({', '.join(CHANNELS)}); load average "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
        )
        for number, result_run in enumerate(sustained, start=1):
            bench_api._print(f"decide: sustained ~{SUSTAINED_RATE}/s #{number}", result_run)
        median = bench_api._median_run(sustained)
        every = ", ".join(f"{r['p99_ms']:.2f}" for r in sustained)
        print(
            f"decide: median sustained p50 {median['p50_ms']:.2f} ms, p99 {median['p99_ms']:.2f} "
            f"ms (runs' p99: {every} ms)"
        )
        bench_api._print("decide: saturation", saturation)
        print(
            f"decide: {saturation['rate']:.0f} decisions/s at saturation; server CPU per "
            f"decision {cpu_ms:.2f} ms (all workers)"
        )
        print(f"decision log: {_log_counts(home)}")
        if pairs.repeated:
            print(
                "note: the world has too few customer-channel pairs for this many requests, so "
                "some were repeats (answered from the log); use more --persons for all-first"
            )
        ok = True
        if any(r["rate"] < SUSTAINED_RATE * 0.97 for r in sustained):
            print(f"MISSED: a paced run fell short of {SUSTAINED_RATE} req/s")
            ok = False
        if median["p99_ms"] > P99_TARGET_MS:
            print(f"MISSED: decide p99 <= {P99_TARGET_MS} ms at {SUSTAINED_RATE} req/s")
            ok = False
        if saturation["rate"] < THROUGHPUT_TARGET:
            print(f"MISSED: >= {THROUGHPUT_TARGET:.0f} decisions/s at saturation")
            ok = False
        if any(r["socket_errors"] or r["bad_responses"] for r in (*sustained, saturation)):
            print("MISSED: some requests failed")
            ok = False
        print("targets met" if ok else "targets missed")
        return 0 if ok else 1
    finally:
        if server is not None:
            bench_api._stop_server(server)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
