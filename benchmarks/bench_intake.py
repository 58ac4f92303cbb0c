"""Event intake load test: Segment ``/v1/track`` and ``/v1/batch`` on ``cdp serve`` with wrk.

Usage::

    python benchmarks/bench_intake.py [--duration 15] [--workers 2] [--connections 64]

Starts ``cdp serve`` (2 uvicorn workers) on a temporary CDP_HOME with a write key and drives
it with wrk (Debian package ``wrk``); every request carries fresh messageIds, so each event is
a real insert, and each reply comes only after the grouped commit (``synchronous=FULL``):

* single events: ``Product Viewed`` tracks, one per request; target >= 2,000 requests/s;
* batches: 100 events per ``/v1/batch`` request; target >= 10,000 events/s.

After each run it checks the log: at least as many events as acknowledged (wrk stops with
requests in flight, whose events may be committed without their reply being counted), none
failed. From ``/metrics`` it prints the grouped commits: requests per commit and commit time.
Exits 1 when a target is missed or a request failed.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import (  # a sibling script, not a package
    WRK_REPORT_LUA,
    _start_server,
    _wrk,
)

from events.write_keys import create_write_key

SINGLE_TARGET = 2_000  # requests/s
BATCH_TARGET = 10_000  # events/s
BATCH_SIZE = 100


def _lua(path: Path, auth: str, *, batch: bool) -> None:
    """A wrk script: unique messageIds per thread and request, non-200 counted as bad."""
    if batch:
        request = f"""
  local items = {{}}
  for k = 1, {BATCH_SIZE} do
    items[k] = '{{"type":"page","anonymousId":"ck_' .. (n % 50000) .. '","messageId":"b' ..
      id .. '-' .. n .. '-' .. k .. '","properties":{{"path":"/p/' .. k .. '"}}}}'
  end
  local body = '{{"batch":[' .. table.concat(items, ",") .. ']}}'
  return wrk.format("POST", "/v1/batch", nil, body)"""
        expected = f'"accepted":{BATCH_SIZE}'
    else:
        request = """
  local body = '{"type":"track","event":"Product Viewed","anonymousId":"ck_' .. (n % 50000) ..
    '","messageId":"s' .. id .. '-' .. n .. '","properties":{"product_id":"p' .. (n % 1000) ..
    '","price":9.99}}'
  return wrk.format("POST", "/v1/track", nil, body)"""
        expected = '"success":true'
    path.write_text(
        f"""
local n = 0
graphql_errors = 0
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "{auth}"
function request()
  n = n + 1{request}
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '{expected}', 1, true) then
    graphql_errors = graphql_errors + 1
  end
end
local threads = {{}}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", tostring(counter) .. "x" .. tostring(os.time()))
  table.insert(threads, thread)
end
{WRK_REPORT_LUA}
""",
        encoding="utf-8",
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _commit_figures(url: str) -> tuple[float, float, float]:
    """(commits, appends, commit seconds) so far, from the aggregated worker metrics."""
    text = httpx.get(url + "/metrics", timeout=10).text
    values = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("cdp_intake_commit")
    }
    return (
        values.get("cdp_intake_commit_group_size_count", 0.0),
        values.get("cdp_intake_commit_group_size_sum", 0.0),
        values.get("cdp_intake_commit_duration_seconds_sum", 0.0),
    )


def _log_counts(home: Path) -> tuple[int, int]:
    con = sqlite3.connect(f"file:{home / 'events' / 'log.sqlite'}?mode=ro", uri=True)
    try:
        events = con.execute("select count(*) from events").fetchone()[0]
        failed = con.execute("select count(*) from failed_events").fetchone()[0]
    finally:
        con.close()
    return int(events), int(failed)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(
    label: str,
    url: str,
    home: Path,
    script: Path,
    per_request: int,
    *,
    connections: int,
    seconds: int,
) -> dict[str, Any]:
    before_events, before_failed = _log_counts(home)
    commits_before = _commit_figures(url)
    result = _wrk(url, script, threads=2, connections=connections, seconds=seconds)
    time.sleep(0.5)  # requests wrk left in flight finish
    after_events, after_failed = _log_counts(home)
    commits_after = _commit_figures(url)
    commits, appends, seconds = (a - b for a, b in zip(commits_after, commits_before, strict=True))
    acknowledged = (result["requests"] - result["bad_responses"]) * per_request
    stored = after_events - before_events
    result.update(
        events_per_s=acknowledged / result["duration_s"],
        acknowledged=acknowledged,
        stored=stored,
        failed=after_failed - before_failed,
        group=appends / commits if commits else 0.0,
        commit_ms=seconds * 1000 / commits if commits else 0.0,
        commits=commits,
    )
    print(
        f"{label:<30} {result['rate']:9.1f} req/s {result['events_per_s']:10.1f} events/s  "
        f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:7.2f} ms  "
        f"max {result['max_ms']:7.2f} ms | {commits:.0f} commits, {result['group']:.1f} "
        f"requests/commit, {result['commit_ms']:.2f} ms/commit | acknowledged {acknowledged}, "
        f"in log {stored}, failed {result['failed']}, bad responses {result['bad_responses']}, "
        f"socket errors {result['socket_errors']}",
        flush=True,
    )
    return result


def main() -> int:
    """Serve an empty CDP_HOME, load the intake, print the figures beside the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64, help="for single events")
    parser.add_argument(
        "--batch-connections", type=int, default=16, help="for batches (each 100 events)"
    )
    args = parser.parse_args()
    try:
        subprocess.run(["wrk", "--version"], capture_output=True, check=False)
    except FileNotFoundError:
        print("wrk is not installed (apt-get install wrk): the intake benchmark cannot run")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench_intake_") as scratch:
        home = Path(scratch) / "home"
        home.mkdir()
        key = create_write_key(home / "write_keys.yml", "bench")
        auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        single, batch = Path(scratch) / "single.lua", Path(scratch) / "batch.lua"
        _lua(single, auth, batch=False)
        _lua(batch, auth, batch=True)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        process = _start_server(
            home,
            port,
            args.workers,
            extra_env={"CDP_API_METRICS_PUBLIC": "true"},
            needs_snapshot=False,  # the intake serves before any snapshot is published
        )
        try:
            _wrk(url, single, threads=2, connections=8, seconds=3)  # warm up
            singles = _run(
                f"single events, {args.connections} conn",
                url,
                home,
                single,
                1,
                connections=args.connections,
                seconds=args.duration,
            )
            batches = _run(
                f"batches of {BATCH_SIZE}, {args.batch_connections} conn",
                url,
                home,
                batch,
                BATCH_SIZE,
                connections=args.batch_connections,
                seconds=args.duration,
            )
        finally:
            _stop(process)
    ok = True
    for label, value, target, unit in (
        ("single-event requests/s", singles["rate"], SINGLE_TARGET, "req/s"),
        ("events/s in batches", batches["events_per_s"], BATCH_TARGET, "events/s"),
    ):
        met = value >= target
        ok &= met
        print(
            f"{label:<26} {value:10.1f} {unit:<9} target >= {target:,}  {'ok' if met else 'MISSED'}"
        )
    for run in (singles, batches):
        if run["stored"] < run["acknowledged"] or run["failed"] or run["bad_responses"]:
            print("LOST OR FAILED EVENTS: acknowledged events missing from the log, or failures")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
