"""The publish asset: after dbt, copy the marts into a new snapshot and switch the API to it.

Orchestration only; the work is ``dagster_project.lib.publish.publish_snapshot``. The API picks
the new snapshot up within a poll interval, finishing requests in flight on the old one. Every
snapshot table is a dbt mart (the identity explanations included), so the marts are the only
dependencies: the identity outputs reach the snapshot through them.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg

from dagster_project.defs.dbt.translator import dbt_asset_key
from dagster_project.defs.identity.assets import identity_settings
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.markdown import markdown_table
from dagster_project.lib.publish import MART_NAMES, PublishResult, publish_snapshot

SNAPSHOT_KEY = dg.AssetKey(["serving", "snapshot"])
PUBLISH_GROUP = "serving"


def publish_deps() -> list[dg.AssetKey]:
    """Every mart the snapshot copies (one per table the snapshot format declares)."""
    return [dbt_asset_key(name) for name in MART_NAMES]


class PublishConfig(dg.Config):
    """Launchpad options of a publish."""

    keep: int = 3
    lease_ttl_seconds: float = 120.0


def publish_metadata(result: PublishResult) -> dict[str, Any]:
    """What an operator checks after a publish: which snapshot, how big, what it holds."""
    manifest = result.manifest
    rows = [[name, count] for name, count in sorted(manifest.tables.items())]
    return {
        "snapshot_id": manifest.snapshot_id,
        "dagster/row_count": manifest.tables.get("customers", 0),
        "size_mb": round(manifest.size_bytes / 1e6, 2),
        "tables": dg.MetadataValue.md(markdown_table(["table", "rows"], rows)),
        "identifier_types": ", ".join(manifest.identifier_types),
        "seconds": dg.MetadataValue.json(result.seconds),
        "deleted_snapshots": ", ".join(result.deleted) or "none",
        "kept_snapshots": ", ".join(result.kept),
        "path": dg.MetadataValue.path(str(result.folder)),
    }


def build_publish_assets() -> Sequence[dg.AssetsDefinition]:
    """The ``serving/snapshot`` asset."""

    @dg.asset(
        key=SNAPSHOT_KEY,
        deps=publish_deps(),
        group_name=PUBLISH_GROUP,
        kinds={"sqlite"},
        description="Read-only SQLite snapshot of the contract-enforced marts for the API, "
        "verified against the warehouse, then switched to atomically (serving/CURRENT).",
    )
    def serving_snapshot(
        context: dg.AssetExecutionContext, cdp: CdpResource, config: PublishConfig
    ) -> dg.MaterializeResult:
        workspace = cdp.workspace()
        result = publish_snapshot(
            workspace.warehouse,
            workspace.serving,
            identity_settings=identity_settings(cdp.loaded_config()),
            as_of=cdp.as_of_date(),
            keep=config.keep,
            lease_ttl_seconds=config.lease_ttl_seconds,
        )
        context.log.info(
            f"serving snapshot {result.snapshot_id} ({len(result.manifest.tables)} tables); "
            f"deleted {result.deleted or 'nothing'}"
        )
        return dg.MaterializeResult(metadata=publish_metadata(result))

    return [serving_snapshot]
