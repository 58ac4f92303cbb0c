"""Asset checks that hold every ingest to 'nothing lost' by recounting what is on disk."""

from collections.abc import Sequence

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
            "Every row read from every landing file is in the lake, in quarantine, or was "
            "already in the lake; the lake and quarantine Parquet row counts match the manifest."
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
            if e["rows_read"] != e["rows_ingested"] + e["rows_quarantined"] + e["rows_duplicate"]
        ]
        ingested = sum(e["rows_ingested"] for e in manifest.files)
        quarantined = sum(e["rows_quarantined"] for e in manifest.files)
        read = sum(e["rows_read"] for e in manifest.files)
        duplicate = sum(e["rows_duplicate"] for e in manifest.files)
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
                "lake_parts": lake_parts,
                "files": len(manifest.files),
            },
        )

    return _check


def _quarantine_rate(source: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=lake_asset_key(source),
        name="quarantine_rate_below_5_percent",
        description=(
            "Warns when more than 5% of the rows read were quarantined: the mapping or the "
            "delivery is probably wrong; the reasons table says which."
        ),
    )
    def _check(cdp: CdpResource) -> dg.AssetCheckResult:
        manifest = Manifest.load(cdp.workspace().source_lake(source), source)
        read = sum(e["rows_read"] for e in manifest.files)
        quarantined = sum(e["rows_quarantined"] for e in manifest.files)
        rate = quarantined / read if read else 0.0
        worst = sorted(
            manifest.files, key=lambda e: -e["rows_quarantined"] / max(e["rows_read"], 1)
        )[:5]
        return dg.AssetCheckResult(
            passed=rate <= MAX_QUARANTINE_RATE,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{quarantined} of {read} rows quarantined ({rate:.2%})",
            metadata={
                "quarantine_rate": round(rate, 6),
                "worst_files": dg.MetadataValue.md(
                    markdown_table(
                        ["file", "read", "quarantined"],
                        [[e["path"], e["rows_read"], e["rows_quarantined"]] for e in worst],
                    )
                ),
            },
        )

    return _check


def build_ingest_checks(config: CdpConfig) -> Sequence[dg.AssetChecksDefinition]:
    """Two checks per source: the row balance (blocking) and the quarantine rate (warning)."""
    checks: list[dg.AssetChecksDefinition] = []
    for source in config.sources:
        checks += [_rows_accounted_for(source.name), _quarantine_rate(source.name)]
    return checks
