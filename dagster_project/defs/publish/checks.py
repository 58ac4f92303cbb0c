"""Checks that the snapshot the API serves is whole and answers lookups.

They read the snapshot as a reader would (``dagster_project.lib.snapshot_probe``: the format
plus a read-only SQLite connection), never through the API runtime.
"""

import sqlite3
from collections.abc import Sequence

import dagster as dg

from dagster_project.defs.publish.assets import SNAPSHOT_KEY
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.snapshot_probe import count_rows, open_current, probe_lookups
from snapshots import SnapshotError

#: Identifiers probed per type by the lookup check.
PROBES_PER_TYPE = 3


def build_publish_checks() -> Sequence[dg.AssetChecksDefinition]:
    """Row counts against the manifest, and a probe lookup per identifier type."""

    @dg.asset_check(
        asset=SNAPSHOT_KEY,
        name="current_snapshot_is_complete",
        description="CURRENT names a snapshot whose every table holds the rows its manifest "
        "(the warehouse counts at publish time) says.",
        blocking=True,
    )
    def current_snapshot_is_complete(cdp: CdpResource) -> dg.AssetCheckResult:
        try:
            with open_current(cdp.workspace().serving) as snapshot:
                try:
                    found = count_rows(snapshot)
                except sqlite3.Error as exc:
                    return dg.AssetCheckResult(
                        passed=False, description=f"unreadable snapshot: {exc}"
                    )
                expected = snapshot.manifest.tables
                snapshot_id = snapshot.id
        except (OSError, sqlite3.Error, SnapshotError) as exc:
            return dg.AssetCheckResult(passed=False, description=str(exc))
        wrong = {t: (n, expected[t]) for t, n in found.items() if n != expected[t]}
        return dg.AssetCheckResult(
            passed=not wrong,
            description="; ".join(
                f"{t}: {n} rows, manifest says {m}" for t, (n, m) in wrong.items()
            )
            or f"snapshot {snapshot_id}: all {len(found)} tables complete",
            metadata={"snapshot_id": snapshot_id, **{f"rows_{t}": n for t, n in found.items()}},
        )

    @dg.asset_check(
        asset=SNAPSHOT_KEY,
        name="lookups_find_their_customer",
        description="For each identifier type, a few identifiers looked up the way the API "
        "does find the customer that owns them.",
    )
    def lookups_find_their_customer(cdp: CdpResource) -> dg.AssetCheckResult:
        try:
            with open_current(cdp.workspace().serving) as snapshot:
                probe = probe_lookups(snapshot, PROBES_PER_TYPE)
        except (OSError, sqlite3.Error, SnapshotError) as exc:
            return dg.AssetCheckResult(passed=False, description=str(exc))
        return dg.AssetCheckResult(
            passed=not probe.failures,
            description="; ".join(probe.failures[:10])
            or f"{probe.probed} probe lookups found their customer",
            metadata={"probed": probe.probed, "failed": len(probe.failures)},
        )

    return [current_snapshot_is_complete, lookups_find_their_customer]
