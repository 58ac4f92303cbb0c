"""Checks that the snapshot the API serves is whole and answers lookups."""

import sqlite3
from collections.abc import Sequence

import dagster as dg

from api.repositories.customers import lookup_customer
from api.snapshot import Snapshot, SnapshotError, read_current, snapshot_folder
from dagster_project.defs.publish.assets import SNAPSHOT_KEY
from dagster_project.defs.resources import CdpResource

#: Identifiers probed per type by the lookup check.
PROBES_PER_TYPE = 3


def _open_current(cdp: CdpResource) -> Snapshot:
    serving = cdp.workspace().serving
    snapshot_id = read_current(serving)
    if snapshot_id is None:
        raise SnapshotError(f"{serving}: no CURRENT pointer")
    return Snapshot.open(snapshot_folder(serving, snapshot_id))


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
            snapshot = _open_current(cdp)
        except (OSError, SnapshotError) as exc:
            return dg.AssetCheckResult(passed=False, description=str(exc))
        try:
            found = {
                table: int(snapshot.db.rows(f'select count(*) from "{table}"')[0][0])
                for table in snapshot.manifest.tables
            }
        except sqlite3.Error as exc:
            snapshot.close()
            return dg.AssetCheckResult(passed=False, description=f"unreadable snapshot: {exc}")
        snapshot.close()
        wrong = {
            t: (n, snapshot.manifest.tables[t])
            for t, n in found.items()
            if n != snapshot.manifest.tables[t]
        }
        return dg.AssetCheckResult(
            passed=not wrong,
            description="; ".join(
                f"{t}: {n} rows, manifest says {m}" for t, (n, m) in wrong.items()
            )
            or f"snapshot {snapshot.id}: all {len(found)} tables complete",
            metadata={"snapshot_id": snapshot.id, **{f"rows_{t}": n for t, n in found.items()}},
        )

    @dg.asset_check(
        asset=SNAPSHOT_KEY,
        name="lookups_find_their_customer",
        description="For each identifier type, a few identifiers looked up the way the API "
        "does find the customer that owns them.",
    )
    def lookups_find_their_customer(cdp: CdpResource) -> dg.AssetCheckResult:
        try:
            snapshot = _open_current(cdp)
        except (OSError, SnapshotError) as exc:
            return dg.AssetCheckResult(passed=False, description=str(exc))
        failures = []
        probed = 0
        try:
            for identifier_type in snapshot.manifest.identifier_types:
                samples = snapshot.db.rows(
                    "select identifier_value, customer_id from identifier_lookup "
                    "where identifier_type = ? limit ?",
                    (identifier_type, PROBES_PER_TYPE),
                )
                for value, customer_id in samples:
                    probed += 1
                    hit = lookup_customer(snapshot.db, identifier_type, value)
                    if hit is None or hit.customer["customer_id"] != customer_id:
                        failures.append(
                            f"{identifier_type}: {value[:3]}*** -> "
                            f"{hit.customer['customer_id'] if hit else None}"
                        )
        finally:
            snapshot.close()
        return dg.AssetCheckResult(
            passed=not failures,
            description="; ".join(failures[:10]) or f"{probed} probe lookups found their customer",
            metadata={"probed": probed, "failed": len(failures)},
        )

    return [current_snapshot_is_complete, lookups_find_their_customer]
