"""Decisions as Dagster assets: the log into the lake, the daily batch, the measurement.

    decision_log: decisions/{deliveries, decision_items, outcomes} (the SQLite log ->
        lake/_decisions/<table>/<day>.parquet, only new days rewritten; dbt's decisions.<table>)
        -> dbt_models (stg_decisions__*, marts/measurement: decision_delivery_outcomes,
           decision_outcomes, decision_item_outcomes)
        -> decisions/decision_measurement (lift against the holdout, off-policy estimates)
    serving/snapshot
        -> decisions/<placement>_decisions (every message placement an e-mail carries, e.g.
           daily_email: decide for every customer as of the run, export the sends)

The batch writes new decisions after the log was exported, so the next run's decision_log
carries them into the marts: measurement always looks at the log as the run found it.
Orchestration only: the work is ``dagster_project.lib.decision_batch``,
``dagster_project.lib.decision_measurement`` and the ``decisions`` library.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

import math
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg

from dagster_project.defs.dbt.translator import dbt_asset_key
from dagster_project.defs.decisions.checks import (
    DECISION_LOG_KEYS,
    DECISION_MEASUREMENT_KEY,
    NOT_WORSE_CHECK,
    not_worse_check_result,
)
from dagster_project.defs.publish.assets import SNAPSHOT_KEY
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import LoadedConfig
from dagster_project.lib.dbt_project import decision_log_dir
from dagster_project.lib.decision_batch import (
    BatchResult,
    batch_placements,
    load_decisions_policy,
    run_batch,
)
from dagster_project.lib.decision_measurement import (
    LIFT_HEADERS,
    POLICY_HEADERS,
    MeasurementInputError,
    lift_rows,
    measure,
    policy_rows,
    read_measurement_inputs,
)
from dagster_project.lib.markdown import markdown_table
from dagster_project.lib.snapshot_probe import open_current
from decisions import (
    DecisionService,
    DecisionsPolicy,
    DecisionStore,
    PolicyError,
    check_references,
)
from decisions.facts import SnapshotFactsError
from decisions.store import default_store_path
from snapshots import SnapshotError

GROUP = "decisions"
#: The marts the measurement reads (built in the first dbt stage from the exported log).
MEASUREMENT_MARTS: tuple[str, ...] = (
    "decision_outcomes",
    "decision_delivery_outcomes",
    "decision_item_outcomes",
)


def decisions_policy(loaded: LoadedConfig) -> DecisionsPolicy:
    """The ``decisions:`` policy of cdp.yml; ConfigError (file, key, problem) when invalid."""
    return load_decisions_policy(loaded)


def batch_asset_key(placement: str) -> dg.AssetKey:
    """``decisions/<placement>_decisions``, e.g. ``decisions/daily_email_decisions``."""
    return dg.AssetKey([GROUP, f"{placement}_decisions"])


_LOG_DESCRIPTIONS = {
    "deliveries": "one row per decision and channel: is_sent and the reasons",
    "decision_items": "one row per chosen item, with its score and logged propensity",
    "outcomes": "outcomes reported against a decision id (open, click, purchase, ...)",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key,
            group_name=GROUP,
            kinds={"sqlite", "parquet"},
            description=(
                f"lake/_decisions/{key.path[-1]}/<YYYY-MM-DD>.parquet "
                f"({_LOG_DESCRIPTIONS[key.path[-1]]}): the decision log "
                "(CDP_HOME/decisions/decisions.sqlite) exported for dbt's decisions source, one "
                "file per UTC day of the row's own time. Incremental: only days that got new "
                "rows since the last export (rowid watermarks in _manifest.json) are rewritten, "
                "whole, from one consistent snapshot of the append-only log; a missing or "
                "inconsistent manifest means a full export (also `cdp decisions export --full`). "
                "No files when nothing was decided yet."
            ),
        )
        for key in DECISION_LOG_KEYS
    ],
    name="decision_log",
)
def decision_log(context: dg.AssetExecutionContext, cdp: CdpResource) -> Iterator[Any]:
    """Bring the export up to date with the log as the run finds it (all five tables)."""
    workspace = cdp.workspace()
    out_dir = decision_log_dir(workspace)
    with DecisionStore.open(default_store_path(workspace.home)) as store:
        result = store.export(out_dir)
        counts = store.counts()
    mode = f"full: {result.reason}" if result.full else "incremental"
    days = {name: len(days) for name, days in result.days.items()}
    context.log.info(
        f"decision log exported to {out_dir} ({mode}): rows written {result.written}, "
        f"days rewritten {days} in {result.seconds:.2f}s"
    )
    for key in DECISION_LOG_KEYS:
        table = key.path[-1]
        metadata: dict[str, Any] = {
            "dagster/row_count": result.totals.get(table, 0),
            "rows_written": result.written.get(table, 0),
            "days_rewritten": len(result.days.get(table, ())),
            "days": _day_list(result.days.get(table, ())),
            "export": "full" if result.full else "incremental",
            "path": dg.MetadataValue.path(str(result.folder(table))),
        }
        if table == "deliveries":
            metadata |= {
                "full_reason": result.reason,
                "files": dg.MetadataValue.md(
                    markdown_table(
                        ["table", "rows written", "days rewritten", "total rows"],
                        [
                            [name, written, len(result.days[name]), result.totals[name]]
                            for name, written in sorted(result.written.items())
                        ],
                    )
                ),
                "decisions": counts.get("choices", 0),
                "sends": counts.get("sends", 0),
                "outcomes": counts.get("outcomes", 0),
                "log_size_mb": round(
                    (counts.get("database_bytes", 0) + counts.get("wal_bytes", 0)) / 1e6, 2
                ),
                "seconds": dg.MetadataValue.float(round(result.seconds, 2)),
            }
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)


def _day_list(days: Sequence[str]) -> str:
    """The days rewritten, short: a full export of a long log lists only its range."""
    if len(days) <= 7:
        return ", ".join(days) or "none"
    return f"{days[0]} .. {days[-1]} ({len(days)} days)"


def _known_references(con: sqlite3.Connection) -> tuple[set[str], set[str]]:
    segments = {row[0] for row in con.execute("select segment from segments")}
    traits = {row[1] for row in con.execute("pragma table_info(customer_traits)")}
    return segments, traits


def batch_metadata(result: BatchResult) -> dict[str, Any]:
    """Counts by outcome (adding up to the customers decided), the export, a masked sample."""
    outcomes = sorted(result.by_outcome.items(), key=lambda item: (-item[1], item[0]))
    metadata: dict[str, Any] = {
        "dagster/row_count": result.rows,
        "customers": result.customers,
        "sent": result.by_outcome.get("sent", 0),
        # refused before ranking (no address, consent): counted by reason, not logged, so the
        # site still gets a real choice for them this period
        "refused_unlogged": result.refused_unlogged,
        "sent_without_address": result.sent_without_address,
        "by_outcome": dg.MetadataValue.md(markdown_table(["outcome", "customers"], outcomes)),
        "by_arm": dg.MetadataValue.md(
            markdown_table(["arm", "customers"], sorted(result.by_arm.items()))
        ),
        "outcome_counts": dg.MetadataValue.json(dict(outcomes)),
        "sales_running": result.sales,
        "decided_at": result.now.isoformat(),
        "period_start": result.period_start.isoformat(),
        "decide_seconds": dg.MetadataValue.float(round(result.decide_seconds, 2)),
        "seconds": dg.MetadataValue.float(round(result.seconds, 2)),
        "path": dg.MetadataValue.path(str(result.parquet_path)),
        "csv_path": dg.MetadataValue.path(str(result.csv_path)),
        "sample": dg.MetadataValue.md(
            markdown_table(
                list(result.sample[0]) if result.sample else ["subject"],
                [list(row.values()) for row in result.sample],
            )
        ),
    }
    return metadata


def build_batch_asset(placement: str) -> dg.AssetsDefinition:
    """The daily batch of one message placement, after the snapshot is published."""

    @dg.asset(
        key=batch_asset_key(placement),
        deps=[SNAPSHOT_KEY],
        group_name=GROUP,
        kinds={"python", "parquet", "csv"},
        description=(
            f"Decides placement '{placement}' on e-mail for every customer of the snapshot just "
            "published, as of the run (`--as-of`: the end of that day), through the decision "
            "service (consent, caps, holdout, experiments; logged, so the site and call center "
            "see the same decision). Writes the sends for a sending platform to "
            f"CDP_HOME/exports/{placement}/<period day>.parquet and .csv (decision_id, "
            "customer_id, email, subject, theme, product_ids, experiment/arm), atomically. "
            "A second run in the same period re-uses the stored decisions."
        ),
    )
    def _batch(context: dg.AssetExecutionContext, cdp: CdpResource) -> dg.MaterializeResult:
        workspace = cdp.workspace()
        loaded = cdp.loaded_config()
        policy = decisions_policy(loaded)
        if placement not in batch_placements(policy):
            raise dg.Failure(
                description=f"{loaded.path}: decisions.placements.{placement} is no longer an "
                "e-mail message placement; reload the definitions"
            )
        now = cdp.now()
        try:
            with open_current(workspace.serving) as snapshot:
                segments, traits = _known_references(snapshot.con)
                check_references(policy, segments, traits, str(loaded.path))
                with DecisionStore.open(default_store_path(workspace.home)) as store:
                    service = DecisionService(policy, store)
                    result = run_batch(service, snapshot.con, workspace.home, placement, now)
        except (PolicyError, SnapshotFactsError, SnapshotError) as exc:
            raise dg.Failure(description=str(exc)) from exc
        context.log.info(
            f"{placement}: {result.customers} customers decided in {result.decide_seconds:.1f}s, "
            f"{result.rows} sends exported to {result.parquet_path}"
        )
        if result.sent_without_address:
            context.log.warning(
                f"{placement}: {result.sent_without_address} sends have no e-mail address in "
                "the snapshot although the service checks reachability; they are logged as "
                "sent but not in the export (sent_without_address in the metadata)"
            )
        return dg.MaterializeResult(metadata=batch_metadata(result))

    return _batch


def build_batch_assets(policy: DecisionsPolicy) -> list[dg.AssetsDefinition]:
    """One batch asset per message placement an e-mail carries."""
    return [build_batch_asset(name) for name in batch_placements(policy)]


@dg.asset(
    key=DECISION_MEASUREMENT_KEY,
    deps=[dbt_asset_key(name) for name in MEASUREMENT_MARTS],
    group_name=GROUP,
    kinds={"python", "statsmodels"},
    check_specs=[NOT_WORSE_CHECK],
    description=(
        "What the decisions achieved, from the attributed marts: per placement, channel and arm, "
        "conversion, visit and unsubscribe rates and revenue per decision against the holdout "
        "(intention to treat; 95 % intervals: Newcombe for differences of rates, log-adjusted "
        "ratios, Welch for revenue, via statsmodels), experiment arms against their control per "
        "send (opens, clicks, conversions), and an off-policy estimate (IPS and self-normalized "
        "IPS) of the same ranking without exploration from the logged propensities."
    ),
)
def decision_measurement(cdp: CdpResource) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Read the marts, compare, estimate, report."""
    workspace = cdp.workspace()
    policy = decisions_policy(cdp.loaded_config())
    started = time.perf_counter()
    try:
        inputs = read_measurement_inputs(workspace.warehouse)
    except MeasurementInputError as exc:
        raise dg.Failure(description=str(exc)) from exc
    measurement = measure(inputs, policy)
    metadata: dict[str, Any] = {
        "dagster/row_count": measurement.deliveries,
        "deliveries": measurement.deliveries,
        "shown_items": len(inputs.items),
        "lift_vs_holdout": dg.MetadataValue.md(
            _table(LIFT_HEADERS, lift_rows(measurement.holdout_lifts), _NO_HOLDOUT)
        ),
        "arms_per_send": dg.MetadataValue.md(
            _table(LIFT_HEADERS, lift_rows(measurement.arm_lifts, per="send"), _NO_ARMS)
        ),
        "off_policy": dg.MetadataValue.md(
            _table(POLICY_HEADERS, policy_rows(measurement.policy_estimates), _NO_ITEMS)
        ),
        "seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 2)),
    }
    for row in measurement.policy_estimates:
        if row.estimate.logged_n and math.isfinite(row.estimate.snips):
            metadata[f"{row.placement}/snips_{row.candidate}"] = dg.MetadataValue.float(
                round(row.estimate.snips, 6)
            )
    yield dg.MaterializeResult(metadata=metadata)
    yield not_worse_check_result(measurement)


_NO_HOLDOUT = "No placement has both holdout and treated decisions yet."
_NO_ARMS = "No placement has two experiment arms with sends yet."
_NO_ITEMS = "No shown items logged yet."


def _table(headers: Sequence[str], rows: list[list[Any]], empty: str) -> str:
    return markdown_table(headers, rows) if rows else empty
