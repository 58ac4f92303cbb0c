"""The fold's promise, checked after each fold: every folded offset is in exactly one file.

Blocking, so a gap (events the batch graph would never see) stops the ingest of the folded
sources in that run rather than passing silently into the lake.
"""

import dagster as dg

from dagster_project.defs.events.assets import FOLD_ASSET_KEY
from dagster_project.defs.resources import CdpResource
from events.fold import coverage_problems, folded_ranges, read_manifest

OFFSETS_CHECK = "offsets_accounted_for"


@dg.asset_check(
    asset=FOLD_ASSET_KEY,
    name=OFFSETS_CHECK,
    description=(
        "The events files in the real-time landing folder tile the log's offsets 1..watermark: "
        "no gap (ERROR: events the batch would miss), no overlap or file past the watermark "
        "(WARN: the ingest counts the repeated records as duplicates)."
    ),
    blocking=True,
)
def offsets_accounted_for(cdp: CdpResource) -> dg.AssetCheckResult:
    """Compare the events files' ranges with the manifest's watermark."""
    loaded = cdp.loaded_config()
    workspace = cdp.workspace()
    settings = loaded.config.realtime.fold
    watermark = read_manifest(workspace.lake).events_offset
    ranges = folded_ranges(loaded.landing_dir(workspace.home), settings)
    problems = coverage_problems(ranges, watermark)
    gaps = [p for p in problems if "in no events file" in p]
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR if gaps else dg.AssetCheckSeverity.WARN,
        description="; ".join(problems)
        or f"offsets 1-{watermark} in {len(ranges)} file(s), each once",
        metadata={"watermark": watermark, "files": len(ranges), "problems": len(problems)},
    )
