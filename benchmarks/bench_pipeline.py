"""Full pipeline time: generate -> ingest -> identity -> dbt (three stages) with the customer
models, the recommendations and the clusters between them.

Usage: ``python benchmarks/bench_pipeline.py [--persons 10000] [--seed 42] [--dir DIR]``

Materializes every asset in one Dagster run (in process, ephemeral instance) and prints the
wall time of each step, the dbt time alone, and the size of the main marts. A second run with
unchanged landing files shows the steady-state daily cost.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from dagster_project.defs.dbt.assets import build_dbt_assets, dbt_cli_resource
from dagster_project.defs.identity.assets import build_identity_assets
from dagster_project.defs.ingest.assets import build_ingest_assets
from dagster_project.defs.models.assets import customer_scores
from dagster_project.defs.recommendations.assets import recommendations
from dagster_project.defs.resources import CdpResource
from dagster_project.defs.segments.assets import behavioural_clusters
from dagster_project.lib.generate import generate_world
from dagster_project.lib.settings import PlatformSettings

MARTS = ("customers", "customer_traits", "customer_events", "customer_segments", "segments")
END = date(2026, 10, 31)


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Wall seconds per step, from the run's start and end events."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = defaultdict(float)
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = record.timestamp
        elif event.event_type in (
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
        ):
            start = started.get(event.step_key, record.timestamp)
            seconds[event.step_key] = record.timestamp - start
    return dict(seconds)


def run_once(defs_assets: list, resources: dict, label: str) -> dict[str, float]:
    instance = dg.DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = dg.materialize(
        defs_assets, resources=resources, instance=instance, raise_on_error=False
    )
    total = time.perf_counter() - started
    steps = step_seconds(instance, result.run_id)
    print(f"\n{label}: {'ok' if result.success else 'FAILED'} in {total:.1f}s")
    for step, seconds in sorted(steps.items(), key=lambda item: -item[1]):
        print(f"  {step:<32} {seconds:7.1f}s")
    dbt = sum(s for step, s in steps.items() if step.startswith("dbt_"))
    print(f"  {'dbt (all stages)':<32} {dbt:7.1f}s")
    if not result.success:
        for failure in result.get_step_failure_events():
            error = failure.step_failure_data.error
            print(f"  failed: {failure.step_key}: {error.message[:2000] if error else ''}")
    return {"total": total, "dbt": dbt, **steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dir", type=Path, default=None, help="workspace (default: a temp dir)")
    args = parser.parse_args()

    home = args.dir or Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    if home.exists() and any(home.iterdir()):
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = generate_world(home, args.persons, args.seed, end=END)
    print(f"generate {args.persons:,} persons: {time.perf_counter() - started:.1f}s")
    print("  rows: " + ", ".join(f"{name} {rows:,}" for name, rows in report.rows.items()))

    settings = PlatformSettings(home=home, as_of=END)
    cdp = CdpResource.from_settings(settings)
    config = cdp.loaded_config().config
    started = time.perf_counter()
    assets = [
        *build_ingest_assets(config),
        *build_identity_assets(config),
        *build_dbt_assets(config),
        customer_scores,
        behavioural_clusters,
        recommendations,
    ]
    print(f"definitions (dbt manifest included): {time.perf_counter() - started:.1f}s")
    resources = {"cdp": cdp, "dbt": dbt_cli_resource()}
    first = run_once(assets, resources, "first run")
    second = run_once(assets, resources, "second run (landing unchanged)")

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        sizes = {t: connection.execute(f"select count(*) from {t}").fetchone()[0] for t in MARTS}
    print("\nmarts: " + ", ".join(f"{table} {rows:,}" for table, rows in sizes.items()))
    print(
        f"\nSUMMARY persons={args.persons} pipeline_first={first['total']:.1f}s "
        f"dbt_first={first['dbt']:.1f}s pipeline_second={second['total']:.1f}s "
        f"dbt_second={second['dbt']:.1f}s"
    )
    if args.dir is None:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
