"""Customer models on a generated world: accuracy against baselines, training and scoring time.

Usage: ``python benchmarks/bench_models.py [--persons 10000] [--seed 42] [--days 1100]``

Generates a world, materializes ingest, identity and the first dbt stage (which builds the
features at the as-of date and the labelled training examples: one macro, many cutoffs), then
runs the models library exactly as the ``models/customer_scores`` asset does and prints, from
its time-split backtests: purchase-propensity and churn ROC-AUC against recency-only and BG/NBD
baselines, CLV error (MAE, Spearman) against BG/NBD + Gamma-Gamma, and the wall time of
reading, training (backtest fits included) and scoring. ``--days`` defaults to 1,100 so the
365-day CLV horizon can be backtested (it needs two horizons of history; the default 730-day
world leaves the CLV backtest "skipped" with that reason). Needs ``lifetimes`` for the BG/NBD
figures (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import dagster as dg

from dagster_project.defs.dbt.assets import MODELS_OP, build_dbt_assets, dbt_cli_resource
from dagster_project.defs.identity.assets import build_identity_assets
from dagster_project.defs.ingest.assets import build_ingest_assets
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.generate import generate_world
from dagster_project.lib.models import CHURN, CLV, PURCHASE, read_model_inputs, train_and_score
from dagster_project.lib.settings import PlatformSettings

END = date(2026, 10, 31)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def dbt_model_seconds(home: Path, run_id: str, names: tuple[str, ...]) -> dict[str, float]:
    """Execution time of some dbt models, from the first stage's run_results.json."""
    path = home / "runs" / run_id / MODELS_OP / "run_results.json"
    if not path.exists():
        return {}
    results = json.loads(path.read_text())["results"]
    return {
        r["unique_id"].split(".")[-1]: float(r["execution_time"])
        for r in results
        if r["unique_id"].split(".")[-1] in names
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--days", type=int, default=1100, help="days of history in the world")
    parser.add_argument("--dir", type=Path, default=None, help="workspace (default: a temp dir)")
    args = parser.parse_args()

    home = args.dir or Path(tempfile.mkdtemp(prefix="bench_models_"))
    if home.exists() and any(home.iterdir()):
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    generate_world(home, args.persons, args.seed, end=END, days=args.days)
    seconds = time.perf_counter() - started
    print(f"generate {args.persons:,} persons, {args.days} days: {seconds:.1f}s")

    settings = PlatformSettings(home=home, as_of=END)
    cdp = CdpResource.from_settings(settings)
    config = cdp.loaded_config().config
    dbt_models = build_dbt_assets(config)[0]  # the first stage: features and training examples
    started = time.perf_counter()
    result = dg.materialize(
        [*build_ingest_assets(config), *build_identity_assets(config), dbt_models],
        resources={"cdp": cdp, "dbt": dbt_cli_resource()},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    print(f"ingest + identity + dbt stage 1: {time.perf_counter() - started:.1f}s")
    if not result.success:
        print("pipeline FAILED: " + ", ".join(e.step_key for e in result.get_step_failure_events()))
        return 1
    features = dbt_model_seconds(
        home, result.run_id, ("int_customer_features_computed", "int_training_examples_labelled")
    )
    for name, seconds in features.items():
        print(f"  dbt {name}: {seconds:.1f}s")

    started = time.perf_counter()
    inputs = read_model_inputs(home / "warehouse.duckdb")
    read_seconds = time.perf_counter() - started
    print(
        f"read {len(inputs.examples):,} training examples and {len(inputs.current):,} current "
        f"rows: {read_seconds:.1f}s"
    )
    models = train_and_score(inputs, config.models, END)
    total = read_seconds + models.seconds
    print(f"train (backtests included) and score: {models.seconds:.1f}s")

    figures: dict[str, object] = {}
    for name in (PURCHASE, CHURN):
        report = models.reports[name]
        backtest = report.backtest
        baseline = backtest.get("baseline_auc", {})
        print(
            f"\n{name} (horizon {report.horizon_days} d): {report.status} {report.version}, "
            f"{report.training_rows:,} examples, {report.training_seconds:.1f}s"
        )
        if report.reason or backtest.get("skipped"):
            print(f"  {report.reason or backtest['skipped']}")
            continue
        print(
            f"  backtest at {backtest['test_cutoff']} ({backtest['test_rows']:,} customers, "
            f"observed rate {backtest['observed_rate']:.3f}, mean predicted "
            f"{backtest['mean_predicted']:.3f}, ECE {_fmt(backtest['expected_calibration_error'])})"
        )
        print(
            f"  AUC model {_fmt(backtest['auc'])}"
            f"  recency-only {_fmt(baseline.get('recency_only'))}"
            f"  BG/NBD {_fmt(baseline.get('bgnbd'))}"
            + (f"  ({backtest['bgnbd_unavailable']})" if backtest.get("bgnbd_unavailable") else "")
        )
        print(f"  top decile lift {report.lift[0][3] if report.lift else None}")
        print("  top features: " + ", ".join(n for n, _ in report.importance[:5]))
        figures[f"{name}_auc"] = backtest["auc"]
        figures[f"{name}_recency_auc"] = baseline.get("recency_only")
        figures[f"{name}_bgnbd_auc"] = baseline.get("bgnbd")
    clv = models.reports[CLV]
    backtest = clv.backtest
    print(
        f"\n{CLV} (horizon {clv.horizon_days} d): {clv.status} {clv.version}, "
        f"{clv.training_rows:,} examples, {clv.training_seconds:.1f}s"
    )
    if clv.reason or backtest.get("skipped"):
        print(f"  {clv.reason or backtest['skipped']}")
    else:
        print(
            f"  backtest at {backtest['test_cutoff']} ({backtest['test_rows']:,} customers): "
            f"MAE model {_fmt(backtest['model_mae'])} vs BG/NBD+GG "
            f"{_fmt(backtest.get('bgnbd_mae'))}; "
            f"Spearman model {_fmt(backtest['model_spearman'])} vs "
            f"{_fmt(backtest.get('bgnbd_spearman'))}; total predicted / actual "
            f"{_fmt(backtest['model_total_ratio'])} vs {_fmt(backtest.get('bgnbd_total_ratio'))}"
        )
        figures["clv_mae"] = backtest["model_mae"]
        figures["clv_bgnbd_mae"] = backtest.get("bgnbd_mae")
        figures["clv_spearman"] = backtest["model_spearman"]
        figures["clv_bgnbd_spearman"] = backtest.get("bgnbd_spearman")
    print(
        f"\nSUMMARY persons={args.persons} examples={len(inputs.examples)} "
        f"models_seconds={total:.1f} (target < 120 at 100k) "
        + " ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
    )
    if args.dir is None:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
