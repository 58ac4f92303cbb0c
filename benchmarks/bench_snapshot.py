"""Snapshot format: point lookups in the published SQLite file versus a DuckDB copy.

Usage: ``python benchmarks/bench_snapshot.py [--persons 100000] [--lookups 5000]``

Builds the synthetic warehouse of ``bench_api.py``, publishes it (SQLite, the format the API
serves), writes the same lookup tables into a DuckDB file with ART indexes, and times, in one
process and one thread, the API's two hottest statements on each: the email lookup (identifier
-> customer row) and one page of a customer's events. Prints per-statement latency percentiles.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import mean, quantiles

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_api import build_synthetic_home  # noqa: E402

from dagster_project.lib.publish import publish_snapshot  # noqa: E402

LOOKUP_SQL = (
    "select l.customer_count, c.* from identifier_lookup as l "
    "join customers as c on c.customer_id = l.customer_id "
    "where l.identifier_type = ? and l.identifier_value = ?"
)
EVENTS_SQL = (
    "select * from customer_events where customer_id = ? "
    "order by occurred_at desc, event_id desc limit 21"
)


def _time(run: Callable[[tuple], object], params: list[tuple]) -> list[float]:
    for p in params[:200]:  # warm caches
        run(p)
    timings = []
    for p in params:
        started = time.perf_counter_ns()
        run(p)
        timings.append((time.perf_counter_ns() - started) / 1000)
    return timings


def _report(label: str, timings: list[float]) -> None:
    cuts = quantiles(timings, n=100)
    print(
        f"{label:<34} mean {mean(timings):8.1f} us  p50 {cuts[49]:8.1f} us  p99 {cuts[98]:8.1f} us",
        flush=True,
    )


def main() -> int:
    """Build, publish, copy to DuckDB, time both."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=5_000)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench_snapshot_"))
    try:
        home = scratch / "home"
        build_synthetic_home(home, args.persons)
        result = publish_snapshot(home / "warehouse.duckdb", home / "serving")
        sqlite_path = result.folder / "snapshot.sqlite"
        print(
            f"SQLite snapshot: {result.manifest.size_bytes / 1e6:.0f} MB, published in "
            f"{result.seconds['total']:.1f}s",
            flush=True,
        )
        duck_path = scratch / "snapshot.duckdb"
        started = time.perf_counter()
        duck = duckdb.connect(str(duck_path))
        duck.execute(f"attach '{home / 'warehouse.duckdb'}' as wh (read_only)")
        duck.execute("create table identifier_lookup as select * from wh.identifier_lookup")
        duck.execute("create table customers as select * from wh.customers")
        duck.execute("create table customer_events as select * from wh.customer_events")
        duck.execute(
            "create index lookup_ix on identifier_lookup (identifier_type, identifier_value)"
        )
        duck.execute("create unique index customers_ix on customers (customer_id)")
        duck.execute("create index events_ix on customer_events (customer_id)")
        duck.execute("detach wh")
        duck.close()
        print(
            f"DuckDB copy: {duck_path.stat().st_size / 1e6:.0f} MB, built in "
            f"{time.perf_counter() - started:.1f}s",
            flush=True,
        )
        rng = random.Random(11)
        ids = [rng.randrange(args.persons) for _ in range(args.lookups)]
        lookups = [("email", f"person{i}@shopmail.com") for i in ids]
        pages = [(f"cus_{i:08d}",) for i in ids]

        lite = sqlite3.connect(sqlite_path.resolve().as_uri() + "?mode=ro&immutable=1", uri=True)
        lite.execute("pragma mmap_size = 1073741824")
        print(f"{args.lookups} lookups, one thread:")
        _report(
            "SQLite  email -> customer",
            _time(lambda p: lite.execute(LOOKUP_SQL, p).fetchall(), lookups),
        )
        _report(
            "SQLite  events page (21 rows)",
            _time(lambda p: lite.execute(EVENTS_SQL, p).fetchall(), pages),
        )
        lite.close()
        duck = duckdb.connect(str(duck_path), read_only=True)
        _report(
            "DuckDB  email -> customer",
            _time(lambda p: duck.execute(LOOKUP_SQL, list(p)).fetchall(), lookups),
        )
        _report(
            "DuckDB  events page (21 rows)",
            _time(lambda p: duck.execute(EVENTS_SQL, list(p)).fetchall(), pages),
        )
        duck.close()
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
