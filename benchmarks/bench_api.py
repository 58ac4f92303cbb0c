"""API load test: customer lookup by email against uvicorn (2 workers) with wrk.

Usage::

    python benchmarks/bench_api.py [--persons 100000] [--home DIR] [--duration 20] [--repeats 5]

Without ``--home`` it builds a synthetic warehouse with the marts' contract schemas (read from
every YAML under ``dbt/models/marts/``, the serving marts included) for ``--persons`` customers
(six identifiers, three identity records, twenty events, a few segments each), publishes it
with the real publish step and serves it with ``cdp serve``. With ``--home`` it serves that
CDP_HOME's published snapshot (e.g. one built by ``cdp run`` from a generated world).

Runs with wrk (Debian package ``wrk``) and a Lua script that rotates 20,000 emails:

* sustained: 200 requests/s, paced by wrk's ``delay()``, ``--repeats`` runs (default 5): the
  median run's p99 must be <= 10 ms;
* saturation: as fast as 32 connections go: throughput must reach >= 800 requests/s.

Each run also prints the host's CPU steal share while it ran (``/proc/stat``): on a shared
virtual machine, time the hypervisor gives to other guests lands directly in the tail
latency, so a run with several percent steal measures the neighbours as much as the API.
All runs are printed; the verdict uses the median one, not the best.

for two queries: ``lookup`` (the target: customer id, segments and two traits, what a channel
asks per page view) and ``profile`` (golden fields, consents, more traits; reported only).

Prints the publish time, latency percentiles and throughput; exits 1 if a target is missed or
any request failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api.security import create_key  # noqa: E402
from dagster_project.lib.publish import publish_snapshot  # noqa: E402
from snapshots import read_current, read_manifest, snapshot_folder  # noqa: E402
from tests.support.marts import mart_columns  # noqa: E402

# `cdp run`, `cdp serve` and `cdp stream` refuse to start without a privacy key; the
# benchmark's own homes get one for this process and the commands it starts.
os.environ.setdefault("CDP_PRIVACY_KEY", secrets.token_hex(32))

EMAILS_IN_ROTATION = 20_000
SUSTAINED_RATE = 200
P99_TARGET_MS = 10.0
THROUGHPUT_TARGET = 800.0

#: The lookup a channel makes per page view (the target): who is it, which segments, a score.
LOOKUP_QUERY = (
    'query Lookup($v: String!) { customer(lookup: {type: "email", value: $v}) { customerId '
    "isAnonymous segments { name } traits { engagementScore lifetimeRevenue } } }"
)
#: A fuller profile read (reported, not the target): golden fields, consents, more traits.
PROFILE_QUERY = (
    'query Lookup($v: String!) { customer(lookup: {type: "email", value: $v}) { customerId '
    "firstName email isAnonymous country consents { channel isGranted } "
    "traits { engagementScore orderCount lifetimeRevenue favouriteCategory } "
    "segments { name enteredAt } } }"
)

SEGMENTS = {
    "frequent_buyers": 7,
    "browsers": 5,
    "infrequent_buyers": 4,
    "high_value": 10,
    "at_risk": 6,
    "cart_abandoners": 9,
    "email_unsubscribed": 13,
}

# Column expressions per mart over the row source of each mart (see _SOURCES); columns the
# contract has and this map lacks are filled with typed nulls.
_TS = "(timestamptz '2025-06-30 12:00:00+00' - to_days(cast(hash(i) % 700 as integer)))"
_EXPRESSIONS: dict[str, dict[str, str]] = {
    "customers": {
        "customer_id": "printf('cus_%08d', i)",
        "email": "'person' || i || '@shopmail.com'",
        "phone": "'+1415' || lpad(cast(2000000 + i % 7000000 as varchar), 7, '0')",
        "first_name": "'First' || (i % 997)",
        "last_name": "'Last' || (i % 1009)",
        "full_name": "'First' || (i % 997) || ' Last' || (i % 1009)",
        "birth_date": "date '1950-01-01' + cast(i % 20000 as integer)",
        "street_address": "(i % 900 + 1) || ' Main Street'",
        "postal_code": "lpad(cast(i % 99999 as varchar), 5, '0')",
        "city": "'City' || (i % 500)",
        "region": "'CA'",
        "country": "'US'",
        "has_email_consent": "i % 3 <> 0",
        "has_sms_consent": "i % 5 = 0",
        "has_push_consent": "i % 7 = 0",
        "signed_up_at": _TS,
        "is_anonymous": "false",
        "profile_record_count": "2",
        "record_count": "3",
        "source_count": "3",
        **{
            f"{a}_source": "'crm'"
            for a in ("email", "phone", "first_name", "last_name", "birth_date", "city")
        },
        **{
            f"{a}_updated_at": _TS
            for a in ("email", "phone", "first_name", "last_name", "birth_date", "city")
        },
    },
    "customer_identifiers": {
        "customer_identifier_id": "md5(i || kind || source)",
        "customer_id": "printf('cus_%08d', i)",
        "identifier_type": "kind",
        "identifier_value": "case kind when 'email' then 'person' || i || '@shopmail.com' "
        "when 'phone' then '+1415' || lpad(cast(2000000 + i % 7000000 as varchar), 7, '0') "
        "when 'account_id' then 'ACC-' || i when 'loyalty_id' then printf('L%08d', i) "
        "else 'ck_' || i end",
        "source": "source",
        "first_seen_at": _TS,
        "last_seen_at": _TS,
        "record_count": "1",
    },
    "customer_traits": {
        "customer_id": "printf('cus_%08d', i)",
        "as_of_date": "date '2025-06-30'",
        "recency_days": "hash(i) % 365",
        "frequency": "hash(i + 1) % 12",
        "monetary": "(hash(i + 2) % 500000) / 100.0",
        "r_score": "1 + hash(i) % 5",
        "f_score": "1 + hash(i + 1) % 5",
        "m_score": "1 + hash(i + 2) % 5",
        "order_count": "hash(i + 1) % 12",
        "lifetime_revenue": "(hash(i + 2) % 500000) / 100.0",
        "return_count": "hash(i + 3) % 2",
        "order_count_30d": "hash(i + 4) % 4",
        "order_count_90d": "hash(i + 5) % 6",
        "web_active_days_30d": "hash(i + 6) % 11",
        "product_view_count_30d": "hash(i + 7) % 40",
        "add_to_cart_count_30d": "hash(i + 8) % 5",
        "favourite_category": "['shoes', 'books', 'garden', 'toys'][1 + i % 4]",
        "email_sends_30d": "4",
        "email_sends_90d": "12",
        "engagement_score": "(hash(i + 9) % 1000) / 10.0",
    },
    "customer_events": {
        "event_id": "'web:' || i || '-' || k",
        "customer_id": "printf('cus_%08d', i)",
        "occurred_at": "timestamptz '2025-06-30 12:00:00+00' - to_minutes(cast(hash(i, k) % "
        "500000 as integer))",
        "channel": "['web', 'orders', 'email'][1 + k % 3]",
        "event_type": "['page_view', 'order_completed', 'email_open'][1 + k % 3]",
        "source": "['web_events', 'orders', 'email_events'][1 + k % 3]",
        "product_id": "'P' || (hash(i, k) % 5000)",
        "detail": "'/p/' || (hash(i, k) % 5000)",
    },
    "customer_segments": {
        "customer_id": "printf('cus_%08d', i)",
        "segment": "segment",
        "entered_at": _TS,
    },
    "segment_membership_history": {
        "membership_event_id": "md5(segment || i)",
        "customer_id": "printf('cus_%08d', i)",
        "segment": "segment",
        "event_type": "'entered'",
        "occurred_at": _TS,
        "build_id": "'bench'",
        "built_at": "timestamptz '2025-06-30 23:00:00+00'",
    },
}
_IDENTIFIER_VALUE = (
    "case kind when 'email' then 'person' || i || '@shopmail.com' "
    "when 'phone' then '+1415' || lpad(cast(2000000 + i % 7000000 as varchar), 7, '0') "
    "when 'account_id' then 'ACC-' || i when 'loyalty_id' then printf('L%08d', i) "
    "else 'ck_' || i end"
)
_RECORD_ID = (
    "case {side} when 'crm' then cast(i as varchar) when 'shop' then 'ACC-' || i "
    "else 'cookie:ck_' || i end"
)
# The serving marts, as dbt derives them from identity's outputs: three records per customer
# (crm, shop, a web cookie) joined by two rule edges, listed from both ends; no merges.
_EXPRESSIONS.update(
    {
        "identifier_lookup": {
            "identifier_type": "kind",
            "identifier_value": _IDENTIFIER_VALUE,
            "customer_id": "printf('cus_%08d', i)",
            "customer_count": "1",
        },
        "identity_records": {
            "record_uid": "side || ':' || i",
            "customer_id": "printf('cus_%08d', i)",
            "source": "side",
            "record_id": _RECORD_ID.format(side="side"),
            "cluster_size": "3",
        },
        "identity_evidence": {
            "customer_id": "printf('cus_%08d', i)",
            "record_uid": "mine || ':' || i",
            "other_record_uid": "other || ':' || i",
            "other_customer_id": "printf('cus_%08d', i)",
            "other_source": "other",
            "other_record_id": _RECORD_ID.format(side="other"),
            "evidence_type": "'rule'",
            "rule": "'same_' || kind",
            "identifier_type": "kind",
            "match_probability": "1.0",
            "details": """case kind when 'email' then '{"value":"p***@shopmail.com"}' """
            """else '{"value":"AC***"}' end""",
            "is_accepted": "true",
        },
    }
)
_SEGMENT_VALUES = ", ".join(f"('{name}', {mod})" for name, mod in SEGMENTS.items())
_SOURCES: dict[str, str] = {
    "customers": "range({n}) t(i)",
    "customer_identifiers": "range({n}) t(i), (values ('email', 'crm'), ('email', 'shop'), "
    "('phone', 'crm'), ('account_id', 'shop'), ('loyalty_id', 'crm'), ('cookie_id', 'web')) "
    "v(kind, source)",
    "customer_traits": "range({n}) t(i)",
    "customer_events": "range({n}) t(i), range(20) e(k)",
    "customer_segments": "range({n}) t(i), (values " + _SEGMENT_VALUES + ") s(segment, modulus) "
    "where i % modulus = 0",
    "segment_membership_history": "range({n}) t(i), (values " + _SEGMENT_VALUES + ") "
    "s(segment, modulus) where i % modulus = 0",
    "identifier_lookup": "range({n}) t(i), (values ('email'), ('phone'), ('account_id'), "
    "('loyalty_id'), ('cookie_id')) v(kind)",
    "identity_records": "range({n}) t(i), (values ('crm'), ('shop'), ('web')) r(side)",
    "identity_evidence": "range({n}) t(i), (values ('crm', 'shop', 'email'), "
    "('shop', 'crm', 'email'), ('shop', 'web', 'account_id'), ('web', 'shop', 'account_id')) "
    "e(mine, other, kind)",
}


#: wrk's ``done``: one JSON line of latency percentiles and error counts (threads count
#: responses that are not a GraphQL success in their ``graphql_errors``).
WRK_REPORT_LUA = """function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("graphql_errors") end
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, '
    .. '"p999_ms": %.3f, "max_ms": %.3f, "socket_errors": %d, "bad_responses": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency:percentile(99.9) / 1e3, latency.max / 1e3,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout, bad))
end"""


def build_synthetic_home(home: Path, persons: int) -> None:
    """A warehouse with every mart the snapshot declares (contract schemas)."""
    home.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        con.execute("set TimeZone = 'UTC'")
        for table, columns in mart_columns().items():
            expressions = _EXPRESSIONS.get(table, {})
            select = ", ".join(
                f"cast({expressions.get(name, 'null')} as {data_type}) as {name}"
                for name, data_type in columns
            )
            source = _SOURCES.get(table)
            if table == "segments":
                rows = " union all ".join(
                    f"select '{name}' as segment, '{name} (synthetic)' as description, "
                    f"'bench' as owner, 'rule' as segment_family, 'segments/{name}' as "
                    f"defined_by, count(*) filter (where i % {mod} = 0) as member_count "
                    f"from range({persons}) t(i)"
                    for name, mod in SEGMENTS.items()
                )
                con.execute(f"create table segments as {rows}")
                continue
            if source is None:
                con.execute(f"create table {table} as select {select} where false")
                continue
            con.execute(f"create table {table} as select {select} from {source.format(n=persons)}")
    finally:
        con.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _lua_script(
    path: Path, emails: list[str], key: str, delay_ms: float | None, query: str
) -> None:
    bodies = [
        json.dumps({"query": query, "variables": {"v": e}, "operationName": "Lookup"})
        for e in emails
    ]
    lua_bodies = ",\n".join("[==[" + b + "]==]" for b in bodies)
    delay = (
        f"function delay() return math.random({round(delay_ms * 0.5)}, {round(delay_ms * 1.5)}) end"
        if delay_ms
        else ""
    )
    path.write_text(
        f"""
local bodies = {{
{lua_bodies}
}}
local n = #bodies
local i = 0
graphql_errors = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
function init(args) i = offset end
function request()
  i = i % n + 1
  return wrk.format(nil, "/graphql", nil, bodies[i])
end
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) or
     not string.find(body, '"customerId"', 1, true) then
    graphql_errors = graphql_errors + 1
  end
end
{delay}
local threads = {{}}
function setup(thread)
  thread:set("offset", math.random(1, n))
  table.insert(threads, thread)
end
{WRK_REPORT_LUA}
""",
        encoding="utf-8",
    )


def _wrk(url: str, script: Path, *, threads: int, connections: int, seconds: int) -> dict:
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = [x for x in output.splitlines() if x.startswith("{")][-1]
    result = json.loads(line)
    result["rate"] = result["requests"] / result["duration_s"]
    return result


def _start_server(
    home: Path,
    port: int,
    workers: int,
    *,
    extra_env: dict[str, str] | None = None,
    needs_snapshot: bool = True,
) -> subprocess.Popen[bytes]:
    """``cdp serve`` on ``home``, returned once ``/health`` answers (200, or any status when
    the benchmark does not need a snapshot, like the event intake's)."""
    env = {
        **os.environ,
        "CDP_HOME": str(home),
        "CDP_API_AUDIT_DIR": str(home / "audit"),
        **(extra_env or {}),
    }
    command = [
        sys.executable,
        "-c",
        "from dagster_project.cli.serve import serve; "
        f"serve(host='127.0.0.1', port={port}, workers={workers}, home=None, "
        "log_level='warning', access_log=False)",
    ]
    process = subprocess.Popen(command, env=env, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code
            if status == 200 or not needs_snapshot:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        time.sleep(0.25)
    raise RuntimeError("the server did not become ready in 180 s")


def _stop_server(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _cpu_times() -> list[int]:
    """The machine-wide CPU time counters of /proc/stat (user, nice, system, idle, ..., steal)."""
    return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]


def _steal_share(before: list[int], after: list[int]) -> float:
    """Share of CPU time the hypervisor gave to other guests between two readings."""
    delta = [b - a for a, b in zip(before, after, strict=True)]
    return delta[7] / max(sum(delta), 1)


def _measured(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    before = _cpu_times()
    result = run()
    result["steal"] = _steal_share(before, _cpu_times())
    return result


def _process_tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its children (the uvicorn workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending += [int(c) for c in children]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _load(
    url: str,
    scratch: Path,
    emails: list[str],
    key: str,
    query: str,
    server_pid: int,
    seconds: int,
    repeats: int,
) -> dict[str, Any]:
    """Warm up, then ``repeats`` paced runs at SUSTAINED_RATE and a saturation run."""
    probe = httpx.post(
        url + "/graphql",
        json={"query": query, "variables": {"v": emails[0]}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ).json()
    assert probe["data"]["customer"]["customerId"], probe
    free = scratch / "free.lua"
    _lua_script(free, emails, key, None, query)
    _wrk(url, free, threads=2, connections=8, seconds=5)
    connections = 20
    paced = scratch / "paced.lua"
    # each connection waits ~delay between requests, so rate ~ connections / (delay + latency);
    # one short calibration run corrects the delay for the latency
    delay_ms = connections * 1000 / SUSTAINED_RATE
    _lua_script(paced, emails, key, delay_ms, query)
    calibration = _wrk(url, paced, threads=2, connections=connections, seconds=5)
    delay_ms *= calibration["rate"] / SUSTAINED_RATE
    _lua_script(paced, emails, key, delay_ms, query)
    sustained = [
        _measured(lambda: _wrk(url, paced, threads=2, connections=connections, seconds=seconds))
        for _ in range(repeats)
    ]
    cpu_before = _process_tree_cpu(server_pid)
    saturation = _measured(lambda: _wrk(url, free, threads=2, connections=32, seconds=seconds))
    cpu_ms = (_process_tree_cpu(server_pid) - cpu_before) * 1000 / max(saturation["requests"], 1)
    return {"sustained": sustained, "saturation": saturation, "cpu": {"ms_per_request": cpu_ms}}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median p99 (the upper one of an even count)."""
    return sorted(runs, key=lambda run: run["p99_ms"])[len(runs) // 2]


def _emails(home: Path, count: int) -> list[str]:
    serving = home / "serving"
    folder = snapshot_folder(serving, read_current(serving) or "")
    con = sqlite3.connect(f"file:{folder / 'snapshot.sqlite'}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "select identifier_value from identifier_lookup where identifier_type = 'email'"
        ).fetchall()
    finally:
        con.close()
    values = [r[0] for r in rows]
    random.Random(7).shuffle(values)
    return values[:count]


def _print(label: str, result: dict[str, Any]) -> None:
    print(
        f"{label:<28} {result['rate']:8.1f} req/s  p50 {result['p50_ms']:6.2f} ms  "
        f"p90 {result['p90_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
        f"p99.9 {result['p999_ms']:6.2f} ms  max {result['max_ms']:7.2f} ms  "
        f"steal {result['steal'] * 100:4.1f}%  "
        f"({result['requests']} requests, {result['socket_errors']} socket errors, "
        f"{result['bad_responses']} bad responses)",
        flush=True,
    )


def main() -> int:
    """Build or reuse a snapshot, serve it, load it, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--home", type=Path, default=None, help="serve this CDP_HOME instead")
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=5, help="sustained runs per query (the median decides)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="bench_api_"))
    try:
        if args.home is None:
            home = scratch / "home"
            started = time.perf_counter()
            build_synthetic_home(home, args.persons)
            print(
                f"synthetic warehouse, {args.persons:,} customers: "
                f"{time.perf_counter() - started:.1f}s",
                flush=True,
            )
            result = publish_snapshot(home / "warehouse.duckdb", home / "serving")
            manifest = result.manifest
            print(
                f"publish: {result.seconds['total']:.1f}s (copy {result.seconds['copy']:.1f}s, "
                f"index {result.seconds['index']:.1f}s, verify {result.seconds['verify']:.1f}s),"
                f" {manifest.size_bytes / 1e6:.0f} MB, "
                + ", ".join(f"{t} {n:,}" for t, n in sorted(manifest.tables.items())),
                flush=True,
            )
        else:
            home = args.home.resolve()
            serving = home / "serving"
            manifest = read_manifest(snapshot_folder(serving, read_current(serving) or ""))
            print(
                f"serving {home}: snapshot {manifest.snapshot_id}, "
                f"{manifest.tables.get('customers', 0):,} customers",
                flush=True,
            )
        key_file = scratch / "api_keys.yml"
        key = create_key(key_file, "bench", ["profile:read", "segments:read"])
        os.environ["CDP_API_KEYS_FILE"] = str(key_file)
        emails = _emails(home, EMAILS_IN_ROTATION)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = _start_server(home, port, args.workers)
        results: dict[str, dict[str, dict[str, Any]]] = {}
        try:
            for name, query in (("lookup", LOOKUP_QUERY), ("profile", PROFILE_QUERY)):
                repeats = args.repeats if name == "lookup" else 1
                results[name] = _load(
                    url, scratch, emails, key, query, server.pid, args.duration, repeats
                )
        finally:
            _stop_server(server)
        print(
            f"lookup by email, {args.workers} uvicorn workers, wrk, "
            f"{len(emails):,} emails rotating; load average "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
        )
        for name, result in results.items():
            runs = result["sustained"]
            for number, run in enumerate(runs, start=1):
                label = f"{name}: sustained ~{SUSTAINED_RATE}/s" + (
                    f" #{number}" if len(runs) > 1 else ""
                )
                _print(label, run)
            if len(runs) > 1:
                median = _median_run(runs)
                every = ", ".join(f"{run['p99_ms']:.2f}" for run in runs)
                print(f"{name}: median sustained p99 {median['p99_ms']:.2f} ms (runs: {every} ms)")
            _print(f"{name}: saturation", result["saturation"])
            cpu_ms = result["cpu"]["ms_per_request"]
            print(
                f"{name}: server CPU per request at saturation {cpu_ms:.2f} ms (all workers): "
                f"{os.cpu_count()} idle cores fit about {os.cpu_count() * 1000 / cpu_ms:.0f} "
                "req/s before the load generator's share"
            )
        target = results["lookup"]
        ok = True
        sustained, saturation = _median_run(target["sustained"]), target["saturation"]
        if any(run["rate"] < SUSTAINED_RATE * 0.97 for run in target["sustained"]):
            print(f"MISSED: a paced run fell short of {SUSTAINED_RATE} req/s")
            ok = False
        if sustained["p99_ms"] > P99_TARGET_MS:
            print(f"MISSED: lookup p99 <= {P99_TARGET_MS} ms at {SUSTAINED_RATE} req/s")
            ok = False
        if saturation["rate"] < THROUGHPUT_TARGET:
            print(f"MISSED: lookup >= {THROUGHPUT_TARGET:.0f} req/s at saturation")
            ok = False
        if any(
            run["socket_errors"] or run["bad_responses"]
            for result in results.values()
            for run in (*result["sustained"], result["saturation"])
        ):
            print("MISSED: some requests failed")
            ok = False
        print("targets met" if ok else "targets missed")
        return 0 if ok else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
