"""Ingest throughput: synthetic JSONL events and CSV people through ``ingest_source``.

Usage: ``python benchmarks/bench_ingest.py [--events 1000000] [--people 200000] [--dir DIR]``

Builds a landing folder (events in 4 JSONL files with nested UTM objects, people in one CSV with
quoted fields), sprinkles a few bad rows into each, writes a cdp.yml, ingests each source into a
fresh lake and prints rows/s per format, then times a rerun (every file skipped).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml

from dagster_project.lib.config import load_config
from dagster_project.lib.ingest import ingest_source
from dagster_project.lib.workspace import Workspace

EVENT_FILES = 4
EVENT_TYPES = np.array(["page_view", "product_view", "search", "add_to_cart", "login", "purchase"])
FIRST_NAMES = np.array(["Ann", "Bob", "Chloé", "Dmitri", "Eve", "Farid", "Grace", "Hiro"])
LAST_NAMES = np.array(["Lee", "Smith", "García", "Okafor", "Nguyen", "Müller", "O'Brien"])
CITIES = np.array(["Boston", "Austin", "Denver", "Portland", "Miami"])

CONFIG: dict[str, Any] = {
    "version": 1,
    "landing": "landing",
    "sources": [
        {
            "name": "web_events",
            "kind": "events",
            "format": "jsonl",
            "path": "web/*.jsonl",
            "record_key": "event_id",
            "mapping": {
                "event_type": "type",
                "occurred_at": "ts",
                "page_url": "page",
                "product_id": "product_id",
                "user_agent": "ua",
                "utm_source": "utm.source",
                "utm_medium": "utm.medium",
                "utm_campaign": "utm.campaign",
            },
            "identifiers": {"cookie_id": "cookie", "account_id": "account"},
        },
        {
            "name": "crm",
            "kind": "people",
            "format": "csv",
            "path": "crm/*.csv",
            "record_key": "customer_number",
            "mapping": {
                "first_name": "first_name",
                "last_name": "last_name",
                "email": "email",
                "phone": "phone",
                "street_address": ["house_number", "street"],
                "city": "city",
                "postal_code": "postal_code",
                "birth_date": "birth_date",
                "signed_up_at": "signup_date",
                "has_email_consent": "email_opt_in",
                "has_sms_consent": "sms_opt_in",
            },
            "identifiers": {"loyalty_id": "customer_number"},
        },
    ],
}


def write_events(folder: Path, n: int, rng: np.random.Generator) -> None:
    """n events over EVENT_FILES files; every 100,000th line is broken."""
    folder.mkdir(parents=True, exist_ok=True)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    seconds = np.sort(rng.integers(0, 180 * 86400, n))
    types = EVENT_TYPES[rng.integers(0, len(EVENT_TYPES), n)]
    cookies = rng.integers(0, n // 5 + 1, n)
    per_file = -(-n // EVENT_FILES)
    for f in range(EVENT_FILES):
        lines = []
        for i in range(f * per_file, min(n, (f + 1) * per_file)):
            record: dict[str, Any] = {
                "event_id": f"e{i:09d}",
                "type": str(types[i]),
                "ts": (start + timedelta(seconds=int(seconds[i]))).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "cookie": f"c{cookies[i]:08d}",
                "page": f"https://shop.example.com/p/{i % 5000}",
                "ua": "Mozilla/5.0 (X11; Linux x86_64)",
                "utm": {"source": "newsletter", "medium": "email", "campaign": f"c{i % 40}"},
            }
            if types[i] in ("product_view", "add_to_cart", "purchase"):
                record["product_id"] = f"{i % 5000:06d}"
            if types[i] in ("login", "purchase"):
                record["account"] = f"A{cookies[i] % 50000:07d}"
            lines.append(orjson.dumps(record))
            if i % 100_000 == 99_999:
                lines.append(b'{"event_id": "broken", "ts": ')
        (folder / f"events-{f:02d}.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def write_people(folder: Path, n: int, rng: np.random.Generator) -> None:
    """n people in one CSV; every 50,000th row has a bad date or a missing field."""
    folder.mkdir(parents=True, exist_ok=True)
    first = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n)]
    last = LAST_NAMES[rng.integers(0, len(LAST_NAMES), n)]
    city = CITIES[rng.integers(0, len(CITIES), n)]
    header = (
        "customer_number,first_name,last_name,email,phone,house_number,street,city,"
        "postal_code,birth_date,signup_date,email_opt_in,sms_opt_in,notes\n"
    )
    rows = [header]
    for i in range(n):
        signup = "not a date" if i % 50_000 == 49_999 else f"2023-{i % 12 + 1:02d}-15T10:00:00"
        rows.append(
            f"{i:08d},{first[i]},{last[i]},{first[i].lower()}.{i}@example.com,"
            f'(555) {i % 1000:03d}-{i % 10000:04d},{i % 300 + 1},"Main St, Apt {i % 9}",'
            f"{city[i]},{i % 100000:05d},19{i % 90 + 10}-0{i % 9 + 1}-1{i % 9},{signup},"
            f'{"yes" if i % 3 else "no"},{"true" if i % 2 else "false"},"vip\n{i}"\n'
        )
        if i % 50_000 == 25_000:
            rows.append(f"{i:08d}x,short,row\n")
    (folder / "people.csv").write_text("".join(rows), encoding="utf-8")


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the benchmark; returns rows/s per format (also printed)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: temp)")
    args = parser.parse_args(argv)
    home = args.dir or Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    shutil.rmtree(home / "lake", ignore_errors=True)
    shutil.rmtree(home / "quarantine", ignore_errors=True)
    marker = home / "landing" / "_bench.json"
    wanted = {"events": args.events, "people": args.people}
    if marker.is_file() and orjson.loads(marker.read_bytes()) == wanted:
        print(f"reusing landing under {home}")
    else:
        rng = np.random.default_rng(7)
        started = time.perf_counter()
        write_events(home / "landing" / "web", args.events, rng)
        write_people(home / "landing" / "crm", args.people, rng)
        marker.write_bytes(orjson.dumps(wanted))
        print(f"generated landing in {time.perf_counter() - started:.1f}s under {home}")
    (home / "cdp.yml").write_text(yaml.safe_dump(CONFIG, sort_keys=False), encoding="utf-8")

    at = datetime(2024, 7, 1, tzinfo=UTC)
    loaded = load_config(home / "cdp.yml")
    workspace = Workspace(home)
    figures: dict[str, float] = {}
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} cores (other work slows wall time)")
    # Warm up imports (pandas, pyarrow kernels) that a long-running Dagster process already has.
    warm = home / "warm"
    (warm / "landing").mkdir(parents=True, exist_ok=True)
    (warm / "landing" / "w.jsonl").write_text('{"id": "1", "type": "t", "ts": "2024-01-01"}\n')
    warm_config = {
        "version": 1,
        "sources": [
            {
                "name": "warm",
                "kind": "events",
                "format": "jsonl",
                "path": "w.jsonl",
                "record_key": "id",
                "mapping": {"event_type": "type", "occurred_at": "ts"},
            }
        ],
    }
    (warm / "cdp.yml").write_text(yaml.safe_dump(warm_config), encoding="utf-8")
    warm_loaded = load_config(warm / "cdp.yml")
    ingest_source(warm_loaded, warm_loaded.config.sources[0], Workspace(warm), ingested_at=at)
    shutil.rmtree(warm)

    for source in loaded.config.sources:
        started, cpu = time.perf_counter(), time.process_time()
        report = ingest_source(loaded, source, workspace, ingested_at=at)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        rate = report.rows_read / elapsed
        figures[source.format] = rate
        size = sum(p.stat().st_size for p in loaded.source_files(source, home)) / 1e6
        print(
            f"{source.format:6s} {source.name:11s} {report.rows_read:>9,d} rows "
            f"({size:,.0f} MB) in {elapsed:5.2f}s = {rate:>9,.0f} rows/s "
            f"(cpu {cpu:5.2f}s, {report.rows_read / cpu:,.0f} rows per cpu-second)  "
            f"[ingested {report.rows_ingested:,d}, quarantined {report.rows_quarantined:,d}, "
            f"balanced {report.is_balanced()}]"
        )
        started = time.perf_counter()
        rerun = ingest_source(loaded, source, workspace, ingested_at=at)
        print(
            f"{'':6s} {'rerun':11s} {rerun.files_skipped} files skipped in "
            f"{time.perf_counter() - started:.2f}s"
        )
    if args.dir is None:
        shutil.rmtree(home, ignore_errors=True)
    return figures


if __name__ == "__main__":
    main()
