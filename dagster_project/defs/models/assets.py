"""Customer models: one asset between the first two dbt stages, trained and scored as of the run.

    dbt_models (int_training_examples_labelled, int_customer_features_computed)
        -> models/customer_scores (this asset: lake/_models/customer_scores.parquet,
           models under CDP_HOME/models/<name>/<version>/)
        -> dbt_scored_models (stg_models__customer_scores -> customer_traits)

The logic is ``dagster_project.lib.models``; this module reads, calls, saves and reports. Each
model's backtest and baselines are materialization metadata, and the asset's own checks
(``<model>_not_worse_than_baseline``, WARN) flag a model that loses to its baseline.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

from collections.abc import Iterator
from typing import Any

import dagster as dg

from dagster_project.defs import RUN_NOTE_KEY
from dagster_project.defs.dbt.translator import dbt_asset_key
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.dbt_project import customer_scores_path
from dagster_project.lib.markdown import markdown_table
from dagster_project.lib.models import (
    FALLBACK,
    MODEL_NAMES,
    ModelInputError,
    ModelReport,
    ModelsResult,
    read_model_inputs,
    save_model,
    train_and_score,
    write_scores,
)

CUSTOMER_SCORES_KEY = dg.AssetKey(["models", "customer_scores"])


def check_name(model: str) -> str:
    """The WARN check of one model: its backtest is not worse than its best baseline."""
    return f"{model}_not_worse_than_baseline"


def _figure(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def model_metadata(report: ModelReport, path: str) -> dict[str, Any]:
    """One model's block of metadata, its keys prefixed by the model name."""
    prefix = report.name
    items: dict[str, Any] = {
        "status": report.status,
        "version": report.version,
        "horizon_days": report.horizon_days,
        "training_rows": report.training_rows,
        "scored_customers": report.scored_customers,
        "training_seconds": round(report.training_seconds, 2),
        "saved_to": dg.MetadataValue.path(path),
    }
    if report.reason:
        items["reason"] = report.reason
    backtest = report.backtest
    rows = [(key, _figure(value)) for key, value in backtest.items() if not isinstance(value, dict)]
    for key, value in backtest.items():
        if isinstance(value, dict):
            rows += [(f"{key}.{name}", _figure(figure)) for name, figure in value.items()]
    if rows:
        items["backtest"] = dg.MetadataValue.md(markdown_table(["figure", "value"], rows))
    for key in ("auc", "model_mae", "model_spearman"):
        if isinstance(backtest.get(key), float):
            items[f"backtest_{key}"] = dg.MetadataValue.float(backtest[key])
    if report.reliability:
        items["calibration"] = dg.MetadataValue.md(
            markdown_table(["bin", "customers", "mean predicted", "observed"], report.reliability)
        )
    if report.lift:
        items["lift_by_decile"] = dg.MetadataValue.md(
            markdown_table(["decile", "customers", "observed rate", "lift"], report.lift)
        )
    if report.importance:
        items["feature_importance"] = dg.MetadataValue.md(
            markdown_table(
                ["feature", "permutation importance"],
                [(name, round(value, 5)) for name, value in report.importance],
            )
        )
    return {f"{prefix}/{key}": value for key, value in items.items()}


def baseline_check(report: ModelReport) -> dg.AssetCheckResult:
    """WARN when the backtest loses to the best baseline; passes (saying why) when not judged."""
    name = check_name(report.name)
    backtest = report.backtest
    if report.status == FALLBACK:
        return dg.AssetCheckResult(
            check_name=name,
            passed=True,
            description=f"not judged: the model fell back to its baseline ({report.reason})",
            metadata={"status": report.status},
        )
    if report.worse_than_baseline is None:
        why = backtest.get("skipped") or backtest.get("bgnbd_unavailable") or "no figures"
        return dg.AssetCheckResult(
            check_name=name,
            passed=True,
            description=f"not judged: {why}",
            metadata={"status": report.status},
        )
    if "auc" in backtest:
        model, baseline, what = backtest["auc"], backtest["best_baseline_auc"], "AUC"
    else:
        model, baseline, what = backtest["model_mae"], backtest["bgnbd_mae"], "MAE"
    verdict = "worse than" if report.worse_than_baseline else "at least as good as"
    return dg.AssetCheckResult(
        check_name=name,
        passed=not report.worse_than_baseline,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"backtest {what} {model:.4f} is {verdict} the best baseline's {baseline:.4f}"
        ),
        metadata={"model": float(model), "baseline": float(baseline)},
    )


def scores_metadata(result: ModelsResult, saved: dict[str, str]) -> dict[str, Any]:
    """Row count, timings and every model's block."""
    scores = result.scores
    metadata: dict[str, Any] = {
        "dagster/row_count": len(scores),
        "as_of": result.as_of.isoformat(),
        "seconds": round(result.seconds, 2),
        "models": dg.MetadataValue.md(
            markdown_table(
                ["model", "status", "version", "horizon days", "training rows", "scored"],
                [
                    (
                        r.name,
                        r.status,
                        r.version,
                        r.horizon_days,
                        r.training_rows,
                        r.scored_customers,
                    )
                    for r in result.reports.values()
                ],
            )
        ),
    }
    for report in result.reports.values():
        metadata |= model_metadata(report, saved[report.name])
    fallbacks = [r for r in result.reports.values() if r.status == FALLBACK]
    if fallbacks:
        metadata[RUN_NOTE_KEY] = "customer models: " + "; ".join(
            f"{r.name} fell back to the recency/frequency heuristic ({r.reason})" for r in fallbacks
        )
    return metadata


@dg.asset(
    key=CUSTOMER_SCORES_KEY,
    deps=[
        dbt_asset_key("int_training_examples_labelled"),
        dbt_asset_key("int_customer_features_computed"),
    ],
    group_name="models",
    kinds={"python", "scikitlearn", "parquet"},
    check_specs=[dg.AssetCheckSpec(check_name(m), asset=CUSTOMER_SCORES_KEY) for m in MODEL_NAMES],
    description=(
        "Customer models (scikit-learn histogram gradient boosting): purchase_probability, "
        "churn_risk and predicted_clv (expected orders x expected order value), trained on the "
        "dbt features at past cutoffs (int_training_examples_labelled) with labels that end by "
        "the as-of date, backtested on the latest held-out horizon against recency-only and "
        "BG/NBD (+ Gamma-Gamma) baselines, saved under CDP_HOME/models/<name>/<version>/, and "
        "applied to the features at the as-of date. Writes lake/_models/customer_scores.parquet, "
        "which the next dbt stage joins into customer_traits. Too little history: a documented "
        "recency/frequency fallback (status: fallback, with the reason)."
    ),
)
def customer_scores(
    context: dg.AssetExecutionContext, cdp: CdpResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Train, backtest, save and score the customer models as of the run's date."""
    workspace = cdp.workspace()
    config = cdp.loaded_config().config
    as_of = cdp.as_of_date() or cdp.now().date()
    try:
        inputs = read_model_inputs(workspace.warehouse)
    except ModelInputError as exc:
        raise dg.Failure(description=str(exc)) from exc
    result = train_and_score(inputs, config.models, as_of)
    saved = {
        name: str(save_model(report, workspace.home, as_of.isoformat()))
        for name, report in result.reports.items()
    }
    path = customer_scores_path(workspace)
    write_scores(result.scores, path)
    for report in result.reports.values():
        if report.status == FALLBACK:
            context.log.warning(f"{report.name}: fallback heuristic ({report.reason})")
        else:
            context.log.info(f"{report.name}: trained {report.version}, {report.backtest}")
    metadata = scores_metadata(result, saved)
    metadata["path"] = dg.MetadataValue.path(str(path))
    yield dg.MaterializeResult(metadata=metadata)
    for report in result.reports.values():
        yield baseline_check(report)
