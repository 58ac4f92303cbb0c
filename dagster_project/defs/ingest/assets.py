"""One ingest asset per source in cdp.yml: landing files -> typed Parquet + quarantine."""

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from dagster_project.defs.events.assets import FOLD_ASSET_KEY, folded_source_names
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import KIND_FIELDS, CdpConfig, FieldType, SourceConfig
from dagster_project.lib.ingest import FileStatus, IngestError, IngestReport, ingest_source
from dagster_project.lib.markdown import markdown_table
from dagster_project.lib.settings import PlatformSettings
from privacy.keys import PrivacyKeyError
from privacy.suppression import (
    Normalize,
    PrivacyStore,
    Suppression,
    SuppressionCache,
    store_normalizer,
)

INGEST_GROUP = "ingest"

_COLUMN_TYPES = {
    FieldType.TEXT: "string",
    FieldType.TIMESTAMP: "timestamp (UTC)",
    FieldType.DATE: "date",
    FieldType.BOOLEAN: "boolean",
    FieldType.INTEGER: "int64",
    FieldType.DECIMAL: "double",
}


def lake_asset_key(source_name: str) -> dg.AssetKey:
    """Asset key of a source's Parquet in the lake; dbt sources map onto the same key."""
    return dg.AssetKey(["lake", source_name])


#: Metadata key of the records of erased persons an ingest dropped.
SUPPRESSED_METADATA = "rows suppressed (erased persons)"


def load_suppression(home: Path) -> tuple[Suppression, Normalize] | None:
    """The suppression list (erased persons) and the normalizer its values are matched with;
    None when nothing was ever erased, so an ingest without erasures hashes nothing.

    The privacy key is read from the platform settings (``CDP_PRIVACY_KEY`` or the key file)
    when the asset runs, never passed through Dagster's run config, where it would be shown.
    A list without a key cannot be applied: that is an error, not a silent skip.
    """
    store = PrivacyStore.at(home)
    if not store.exists() or store.version()[0] == 0:
        return None
    try:
        keyring = PlatformSettings(home=home).privacy_keyring(home)
    except PrivacyKeyError as exc:
        raise dg.Failure(
            description=f"erased persons must be dropped at ingest, but the privacy key is "
            f"missing: {exc}"
        ) from exc
    suppression = SuppressionCache(home, keyring).get()
    return (suppression, store_normalizer(home)) if suppression else None


def _column_schema(source: SourceConfig) -> dg.TableSchema:
    columns = [dg.TableColumn("record_id", "string", description="record key, '|'-joined")]
    for field in KIND_FIELDS[source.kind]:
        mapped = source.mapping.get(field.name)
        origin = f"from {mapped}" if mapped else "not mapped (null)"
        columns.append(dg.TableColumn(field.name, _COLUMN_TYPES[field.type], description=origin))
    for name, column in sorted(source.identifiers.items()):
        columns.append(dg.TableColumn(name, "string", description=f"identifier from {column}"))
    columns.append(dg.TableColumn("passthrough", "map<string,string>", description="unmapped"))
    return dg.TableSchema(columns=columns)


def report_metadata(report: IngestReport) -> dict[str, dg.MetadataValue | int | float | str]:
    """What an operator wants to see after an ingest: volumes, quarantine, a preview."""
    file_rows = [
        [
            f.path,
            f.status,
            f.rows_read,
            f.rows_ingested,
            f.rows_quarantined,
            f.rows_duplicate,
            f.rows_suppressed,
            f.reason,
        ]
        for f in report.files
    ]
    reasons = sorted(report.quarantine_reasons.items(), key=lambda item: -item[1])[:20]
    metadata: dict[str, dg.MetadataValue | int | float | str] = {
        "dagster/row_count": report.lake_rows_total,
        "rows_read": report.rows_read,
        "rows_ingested": report.rows_ingested,
        "rows_quarantined": report.rows_quarantined,
        "rows_duplicate": report.rows_duplicate,
        SUPPRESSED_METADATA: report.rows_suppressed,
        "quarantine_rate": round(report.rows_quarantined / report.rows_read, 6)
        if report.rows_read
        else 0.0,
        "files_seen": report.files_seen,
        "files_ingested": report.files_ingested,
        "files_skipped": report.files_skipped,
        "lake_files": report.lake_files,
        "files": dg.MetadataValue.md(
            markdown_table(
                [
                    "file",
                    "status",
                    "read",
                    "ingested",
                    "quarantined",
                    "duplicate",
                    "suppressed",
                    "note",
                ],
                file_rows,
            )
            if file_rows
            else "_no files_"
        ),
        "quarantine_reasons": dg.MetadataValue.md(
            markdown_table(["reason", "rows"], [[r, n] for r, n in reasons])
            if reasons
            else "_nothing quarantined_"
        ),
    }
    if report.preview:  # masked by the ingest library: personal values show as ***
        headers = list(report.preview[0].keys())
        metadata["preview"] = dg.MetadataValue.md(
            markdown_table(headers, [[row.get(h) for h in headers] for row in report.preview])
        )
    return metadata


def build_ingest_asset(
    source: SourceConfig, deps: Sequence[dg.AssetKey] = ()
) -> dg.AssetsDefinition:
    """The asset for one source; its key and description come from cdp.yml.

    ``deps`` are assets that write this source's landing files and so run first (the
    real-time fold for the folded sources).
    """

    @dg.asset(
        key=lake_asset_key(source.name),
        group_name=INGEST_GROUP,
        deps=list(deps),
        kinds={"parquet", source.format},
        description=source.description
        or f"{source.kind} source '{source.name}' ({source.format}, {source.path}) as Parquet",
        metadata={
            "dagster/column_schema": _column_schema(source),
            "source_kind": str(source.kind),
            "landing_glob": source.path,
        },
        tags={"kind": str(source.kind)},
    )
    def _ingest(context: dg.AssetExecutionContext, cdp: CdpResource) -> dg.MaterializeResult:
        loaded = cdp.loaded_config()
        workspace = cdp.workspace()
        erased = load_suppression(workspace.home)
        try:
            report = ingest_source(
                loaded,
                loaded.config.source(source.name),
                workspace,
                ingested_at=datetime.now(UTC),
                progress=lambda step, done, total: context.log.debug(
                    f"{source.name}: {step} {done}/{total}"
                ),
                run_id=context.run_id,
                suppression=erased[0] if erased else None,
                normalize=erased[1] if erased else None,
            )
        except IngestError as exc:
            raise dg.Failure(description=str(exc)) from exc
        unreadable = [f for f in report.files if f.status == FileStatus.UNREADABLE]
        if unreadable:
            listing = "; ".join(f"{f.path}: {f.reason}" for f in unreadable)
            if report.lake_files == 0:
                # Nothing of this source is readable: there is no lake for downstream to use.
                raise dg.Failure(
                    description=f"{source.name}: {len(unreadable)} unreadable file(s): {listing}",
                    metadata=report_metadata(report),
                )
            # The readable files are in the lake; the new-files check fails at ERROR naming
            # each unreadable one (retried next run), so the bad delivery is seen.
            context.log.warning(f"{source.name}: unreadable file(s), retried next run: {listing}")
        context.log.info(
            f"{source.name}: read {report.rows_read}, ingested {report.rows_ingested}, "
            f"quarantined {report.rows_quarantined}, duplicate {report.rows_duplicate}, "
            f"suppressed (erased persons) {report.rows_suppressed}, "
            f"skipped {report.files_skipped} already-ingested file(s)"
        )
        return dg.MaterializeResult(metadata=report_metadata(report))

    return _ingest


def build_ingest_assets(config: CdpConfig) -> Sequence[dg.AssetsDefinition]:
    """One asset per configured source; the folded real-time sources after the fold."""
    folded = folded_source_names(config)
    return [
        build_ingest_asset(source, deps=[FOLD_ASSET_KEY] if source.name in folded else [])
        for source in config.sources
    ]
