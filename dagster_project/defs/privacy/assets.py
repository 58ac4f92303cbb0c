"""``privacy/retention``: event and decision data older than the retention leave every store.

The asset only orchestrates: :mod:`privacy.retention` does the work (idempotent, so a second run
the same day removes nothing). It runs after the real-time events are ingested and the decision
log is exported, so in the daily refresh it never rewrites a file another step is writing; its
own daily schedule (``daily_privacy_retention``) runs it alone as well.
"""

from typing import Final

import dagster as dg

from dagster_project.defs import RUN_NOTE_KEY
from dagster_project.defs.decisions.checks import DECISION_LOG_KEYS
from dagster_project.defs.ingest.assets import lake_asset_key
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import CdpConfig
from dagster_project.lib.dbt_project import decision_log_dir
from dagster_project.lib.markdown import markdown_table
from privacy.retention import (
    RetentionError,
    RetentionPaths,
    RetentionReport,
    apply_retention,
)

PRIVACY_GROUP: Final[str] = "privacy"
RETENTION_ASSET_KEY: Final[dg.AssetKey] = dg.AssetKey(["privacy", "retention"])


def _iso(value: object) -> str:
    return "not configured (kept)" if value is None else str(value)


def retention_metadata(report: RetentionReport) -> dict[str, object]:
    """Cutoffs, and per store the rows removed, files, bytes freed and old rows kept."""
    rows = [
        [
            store.store,
            ", ".join(f"{k}={v}" for k, v in store.rows_removed.items()) or "-",
            store.files_rewritten,
            store.files_removed,
            store.bytes_freed,
            ", ".join(f"{k}={v}" for k, v in store.kept.items() if v) or "-",
        ]
        for store in report.stores
    ]
    metadata: dict[str, object] = {
        "now": report.now.isoformat(),
        "events_cutoff": _iso(report.events_cutoff),
        "decisions_cutoff": _iso(report.decisions_cutoff),
        "rows_removed": report.rows_removed,
        "bytes_freed": report.bytes_freed,
        "stores": dg.MetadataValue.md(
            markdown_table(
                ["store", "removed", "files rewritten", "files removed", "bytes freed", "kept"],
                rows,
            )
            if rows
            else "_no retention configured (privacy.retention in cdp.yml): nothing removed_"
        ),
    }
    for store in report.stores:
        for table, count in store.rows_removed.items():
            metadata[f"{store.store}/{table}"] = count
        for reason, count in store.kept.items():
            metadata[f"{store.store}/kept/{reason}"] = count
        metadata[f"{store.store}/bytes_freed"] = store.bytes_freed
    notes = [f"{store.store}: {note}" for store in report.stores for note in store.notes]
    if notes:
        metadata["notes"] = dg.MetadataValue.md("\n".join(f"- {note}" for note in notes))
    behind = sum(store.kept.get("events_not_consumed", 0) for store in report.stores)
    if behind:
        metadata[RUN_NOTE_KEY] = (
            f"retention kept {behind} event(s) older than privacy.retention.events_days: the "
            "stream processor or the fold has not consumed them yet (is `cdp stream` running?)"
        )
    return metadata


def build_retention_asset(config: CdpConfig) -> dg.AssetsDefinition:
    """The retention asset, after the ingest of the folded events (when configured) and the
    decision log's export."""
    events_source = config.realtime.fold.events_source
    deps = list(DECISION_LOG_KEYS)  # the export it rewrites
    if any(source.name == events_source for source in config.sources):
        deps.append(lake_asset_key(events_source))

    @dg.asset(
        key=RETENTION_ASSET_KEY,
        group_name=PRIVACY_GROUP,
        deps=deps,
        kinds={"sqlite", "parquet"},
        description=(
            "Removes event and decision data older than privacy.retention (cdp.yml) from the "
            "event log, the live state and outbox, the folded real-time lake files and the "
            "decision log with its lake export; events not yet consumed are kept."
        ),
    )
    def retention(context: dg.AssetExecutionContext, cdp: CdpResource) -> dg.MaterializeResult:
        """Apply the retention as of the run's now; report what went, per store."""
        loaded = cdp.loaded_config()
        workspace = cdp.workspace()
        config = loaded.config
        try:
            key = list(config.source(events_source).record_key_columns)
        except KeyError:
            key = ["event_id"]
        paths = RetentionPaths(
            home=workspace.home,
            landing_dir=loaded.landing_dir(workspace.home),
            lake_dir=workspace.lake,
            quarantine_dir=workspace.quarantine,
            decision_export_dir=decision_log_dir(workspace),
        )
        try:
            report = apply_retention(
                paths,
                config.privacy,
                config.realtime,
                config.decisions,
                events_key_columns=key,
                now=cdp.now(),
            )
        except RetentionError as exc:
            raise dg.Failure(description=f"{loaded.path}: {exc}") from exc
        context.log.info(
            f"retention as of {report.now.isoformat()}: {report.rows_removed} row(s) removed, "
            f"{report.bytes_freed} bytes freed"
        )
        return dg.MaterializeResult(metadata=retention_metadata(report))

    return retention
