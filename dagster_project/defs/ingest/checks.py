"""Asset checks that hold every ingest to 'nothing lost' and judge each new delivery on its own.

Descriptions and metadata carry counts, file paths and file-level reasons only, never a value
from a delivered record (values may be personal; the quarantine files hold them).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from dagster_project.defs.ingest.assets import lake_asset_key
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import CdpConfig
from dagster_project.lib.ingest.lake import Manifest, lake_stats
from dagster_project.lib.markdown import markdown_table

MAX_QUARANTINE_RATE = 0.05


def _rows_accounted_for(source: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=lake_asset_key(source),
        name="rows_accounted_for",
        description=(
            "Every row read from every landing file is in the lake, in quarantine, was "
            "already in the lake, or belonged to an erased person (suppressed); the lake and "
            "quarantine Parquet row counts match the manifest."
        ),
        blocking=True,
    )
    def _check(cdp: CdpResource) -> dg.AssetCheckResult:
        workspace = cdp.workspace()
        manifest = Manifest.load(workspace.source_lake(source), source)
        lake_rows, lake_parts = lake_stats(workspace.source_lake(source))
        quarantine_rows, _ = lake_stats(workspace.source_quarantine(source))
        unbalanced = [
            e["path"]
            for e in manifest.files
            if e["rows_read"]
            != e["rows_ingested"]
            + e["rows_quarantined"]
            + e["rows_duplicate"]
            + e.get("rows_suppressed", 0)
        ]
        ingested = sum(e["rows_ingested"] for e in manifest.files)
        quarantined = sum(e["rows_quarantined"] for e in manifest.files)
        read = sum(e["rows_read"] for e in manifest.files)
        duplicate = sum(e["rows_duplicate"] for e in manifest.files)
        suppressed = sum(e.get("rows_suppressed", 0) for e in manifest.files)
        problems = []
        if unbalanced:
            problems.append(f"files whose counts do not balance: {unbalanced}")
        if ingested != lake_rows:
            problems.append(f"manifest says {ingested} rows ingested, lake holds {lake_rows}")
        if quarantined != quarantine_rows:
            problems.append(
                f"manifest says {quarantined} rows quarantined, quarantine holds {quarantine_rows}"
            )
        return dg.AssetCheckResult(
            passed=not problems,
            description="; ".join(problems) or f"{read} rows read, all accounted for",
            metadata={
                "rows_read": read,
                "rows_in_lake": lake_rows,
                "rows_in_quarantine": quarantine_rows,
                "rows_duplicate": duplicate,
                "rows_suppressed": suppressed,
                "lake_parts": lake_parts,
                "files": sum(1 for e in manifest.files if e.get("part")),
            },
        )

    return _check


#: The check's name says what it judges: the files the latest materialization brought.
NEW_FILES_CHECK = "new_files_quarantine_rate_below_5_percent"


#: At most this many failing files are named in the description (all are in the metadata table).
_LISTED = 10


@dataclass(frozen=True)
class _Verdict:
    """One new file that failed the check, and how badly."""

    summary: str
    is_error: bool


def _judge(entry: dict[str, Any]) -> _Verdict | None:
    """None when a new file is fine; else what is wrong with it (counts and file-level reasons).

    A file's reason is a file-level problem such as a missing column: never a field value.
    """
    path, reason = entry["path"], entry.get("reason") or ""
    if entry.get("status") == "unreadable":
        return _Verdict(f"{path}: unreadable ({reason})", is_error=True)
    read, quarantined = entry["rows_read"], entry["rows_quarantined"]
    if not read or quarantined / read <= MAX_QUARANTINE_RATE:
        return None
    every = quarantined == read
    detail = f"{quarantined} of {read} rows quarantined ({quarantined / read:.2%})"
    if every:
        detail = f"every row quarantined ({read} of {read})"
    return _Verdict(f"{path}: {detail}" + (f": {reason}" if reason else ""), is_error=every)


def _new_files_quarantine_rate(source: str) -> dg.AssetChecksDefinition:
    asset_key = lake_asset_key(source)

    @dg.asset_check(
        asset=asset_key,
        name=NEW_FILES_CHECK,
        description=(
            "Judges each file the latest materialization ingested: a file with more than 5% of "
            "its rows quarantined warns (the mapping or the delivery is probably wrong; the "
            "reasons table says which); a file with every row quarantined, or one that could "
            "not be read at all, fails at ERROR. Files ingested earlier are not counted again, "
            "so a bad delivery cannot hide behind a long good history."
        ),
    )
    def _check(context: dg.AssetCheckExecutionContext, cdp: CdpResource) -> dg.AssetCheckResult:
        latest = context.instance.get_latest_materialization_event(asset_key)
        run_id = latest.run_id if latest is not None else None
        manifest = Manifest.load(cdp.workspace().source_lake(source), source)
        new = [e for e in manifest.files if run_id is not None and e.get("run_id") == run_id]
        verdicts = [v for v in map(_judge, new) if v is not None]
        errors = [v for v in verdicts if v.is_error]
        read = sum(e["rows_read"] for e in new)
        quarantined = sum(e["rows_quarantined"] for e in new)
        if verdicts:
            worst_first = errors + [v for v in verdicts if not v.is_error]
            listed = "; ".join(v.summary for v in worst_first[:_LISTED])
            more = f"; and {len(verdicts) - _LISTED} more" if len(verdicts) > _LISTED else ""
            description = f"{len(verdicts)} of {len(new)} new file(s) fail: {listed}{more}"
        elif new:
            description = (
                f"{len(new)} new file(s): {quarantined} of {read} rows quarantined, no file above "
                f"{MAX_QUARANTINE_RATE:.0%}"
            )
        else:
            description = "no new files in the latest materialization"
        rows = [
            [
                e["path"],
                e.get("status", ""),
                e["rows_read"],
                e["rows_quarantined"],
                f"{e['rows_quarantined'] / e['rows_read']:.2%}" if e["rows_read"] else "",
            ]
            for e in new
        ]
        return dg.AssetCheckResult(
            passed=not verdicts,
            severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
            description=description,
            metadata={
                "new_files": len(new),
                "failing_files": len(verdicts),
                "quarantine_rate": round(quarantined / read, 6) if read else 0.0,
                "materialization_run_id": run_id or "",
                "new_file_table": dg.MetadataValue.md(
                    markdown_table(["file", "status", "read", "quarantined", "rate"], rows)
                    if rows
                    else "_no new files_"
                ),
            },
        )

    return _check


def build_ingest_checks(config: CdpConfig) -> Sequence[dg.AssetChecksDefinition]:
    """Two checks per source: the row balance (blocking) and the new files' quarantine rate."""
    checks: list[dg.AssetChecksDefinition] = []
    for source in config.sources:
        checks += [_rows_accounted_for(source.name), _new_files_quarantine_rate(source.name)]
    return checks
