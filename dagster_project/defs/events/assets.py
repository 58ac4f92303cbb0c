"""``realtime_events_fold``: the event log as landing files of two ordinary sources.

The asset only orchestrates: :mod:`events.fold` does the work (exactly once through its
watermark manifest). The ingest assets of the two folded sources depend on it, so one run folds
first and then ingests what it folded with the usual validation, quarantine and lineage.
"""

from typing import Final

import dagster as dg

from dagster_project.defs import RUN_NOTE_KEY
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import CdpConfig
from dagster_project.lib.markdown import markdown_table
from events.fold import FoldError, FoldReport, fold

REALTIME_GROUP: Final[str] = "realtime"
FOLD_ASSET_KEY: Final[dg.AssetKey] = dg.AssetKey("realtime_events_fold")


def folded_source_names(config: CdpConfig) -> frozenset[str]:
    """The configured sources the fold writes landing files for (their ingest runs after it)."""
    settings = config.realtime.fold
    wanted = {settings.events_source, settings.price_changes_source}
    return frozenset(source.name for source in config.sources if source.name in wanted)


def fold_metadata(report: FoldReport, missing_sources: list[str]) -> dict[str, object]:
    """What an operator acts on: volumes, the offset range, the files, failures and lag."""
    metadata: dict[str, object] = {
        "events_folded": report.events_folded,
        "event_rows": report.event_rows,
        "price_change_rows": report.price_change_rows,
        "offset_range": (
            f"{report.offset_before + 1}-{report.offset_after}"
            if report.offset_after > report.offset_before
            else "none (nothing new)"
        ),
        "watermark": report.offset_after,
        "log_head": report.head,
        "lag_events_before_fold": report.lag_events,
        "lag_seconds": round(report.lag_seconds, 3),
        "failed_events_exported": report.failed_events,
        "failed_events_total": report.failed_events_total,
        "provisional_customers": report.provisional_customers,
        "catalog_events_not_folded": report.catalog_events_not_folded,
        "price_changes_without_price": report.price_changes_without_price,
        "files": dg.MetadataValue.md(
            markdown_table(["file"], [[f] for f in report.files]) if report.files else "_none_"
        ),
    }
    notes: list[str] = []
    if missing_sources and report.head > 0:  # events arrived that the batch will not see
        notes.append(
            f"cdp.yml declares no source {', '.join(missing_sources)}: folded files are not "
            "ingested; add the source(s) (see `cdp generate`'s cdp.yml)"
        )
    if report.failed_events:
        notes.append(f"{report.failed_events} new failed event(s); `cdp events failed` lists them")
    if notes:
        metadata[RUN_NOTE_KEY] = "; ".join(notes)
    return metadata


@dg.asset(
    key=FOLD_ASSET_KEY,
    group_name=REALTIME_GROUP,
    kinds={"sqlite", "jsonl"},
    description=(
        "Folds the real-time event log (CDP_HOME/events/log.sqlite) into landing files of the "
        "real-time events and price-change sources, exactly once (watermark in "
        "lake/_realtime/fold_manifest.json); exports failed events and provisional customers "
        "to lake/_realtime for DuckDB and identity."
    ),
)
def realtime_events_fold(
    context: dg.AssetExecutionContext, cdp: CdpResource
) -> dg.MaterializeResult:
    """Fold the log, then report what an operator needs (the ingest follows in the same run)."""
    loaded = cdp.loaded_config()
    workspace = cdp.workspace()
    config = loaded.config
    settings = config.realtime.fold
    try:
        report = fold(
            workspace.home,
            loaded.landing_dir(workspace.home),
            settings,
            config.realtime.identifiers,
        )
    except FoldError as exc:
        raise dg.Failure(description=str(exc)) from exc
    configured = folded_source_names(config)
    missing = [
        name
        for name in (settings.events_source, settings.price_changes_source)
        if name not in configured
    ]
    context.log.info(
        f"folded {report.events_folded} event(s) (offsets {report.offset_before + 1}-"
        f"{report.offset_after}, head {report.head}) into {len(report.files)} file(s); "
        f"{report.failed_events} failed event(s) exported"
    )
    return dg.MaterializeResult(metadata=fold_metadata(report, missing))
