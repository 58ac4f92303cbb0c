"""Erasure in the asset graph: requests carried out, and every store checked for erased people.

- ``privacy/erasures`` carries out the erasure requests not completed yet: those made over
  GraphQL (the API records and lists them; it cannot rewrite the lake), and any left
  ``incomplete``. The ``pending_erasures`` sensor launches it within a minute of a request; the
  daily refresh runs it too. ``cdp privacy erase`` does the same at once from the shell.
- ``privacy/erasure_scan`` runs after everything a refresh writes (the snapshot, the decision
  batches, retention) and scans every store for any identifier on the suppression list, plain
  in the stores and hashed for the comparison; its check ``no_erased_person_remains`` fails
  (ERROR) naming the stores and files, never the values.

Both only orchestrate: :mod:`privacy.erasure` and the erasers
(:mod:`dagster_project.lib.erasure.registry`) do the work.
"""

import time
from collections.abc import Iterator, Sequence
from typing import Final

import dagster as dg

from dagster_project.defs.resources import CdpResource
from dagster_project.lib.erasure.registry import build_erasers
from dagster_project.lib.markdown import markdown_table
from privacy.erasure import carry_out_pending, home_lock
from privacy.suppression import COMPLETED, INCOMPLETE, PENDING, PrivacyStore

PRIVACY_GROUP: Final[str] = "privacy"
ERASURES_KEY: Final[dg.AssetKey] = dg.AssetKey(["privacy", "erasures"])
ERASURE_SCAN_KEY: Final[dg.AssetKey] = dg.AssetKey(["privacy", "erasure_scan"])
ERASURE_CHECK: Final[str] = "no_erased_person_remains"
ERASURES_JOB: Final[str] = "privacy_erasures"


@dg.asset(
    key=ERASURES_KEY,
    group_name=PRIVACY_GROUP,
    kinds={"sqlite", "parquet"},
    description=(
        "Carries out erasure requests not completed yet (made over GraphQL, or left "
        "incomplete): every store rewritten without the person, status per store recorded."
    ),
)
def erasures(context: dg.AssetExecutionContext, cdp: CdpResource) -> dg.MaterializeResult:
    """Erase each pending request's person from every store; report counts, never values."""
    workspace = cdp.workspace()
    keyring = cdp.keyring()
    with home_lock(workspace.home):  # re-entrant under `cdp run`, a real wait elsewhere
        results = carry_out_pending(
            workspace.home, keyring, build_erasers(workspace.home, cdp.loaded_config().path)
        )
    rows = [
        [r.request_id, r.status, r.removed, f"{r.seconds:.1f}", r.message or "-"] for r in results
    ]
    for result in results:
        context.log.info(
            f"erasure {result.request_id}: {result.status}, {result.removed} row(s) removed"
        )
    metadata: dict[str, object] = {
        "requests_carried_out": len(results),
        "requests_incomplete": sum(1 for r in results if r.status == INCOMPLETE),
        "rows_removed": sum(r.removed for r in results),
        "requests": dg.MetadataValue.md(
            markdown_table(["request", "status", "removed", "seconds", "message"], rows)
            if rows
            else "_no erasure request was waiting_"
        ),
    }
    return dg.MaterializeResult(metadata=metadata)


def build_erasure_scan(deps: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    """The scan of every store, after ``deps`` (what the refresh writes last)."""

    @dg.asset(
        key=ERASURE_SCAN_KEY,
        group_name=PRIVACY_GROUP,
        deps=[ERASURES_KEY, *deps],
        kinds={"sqlite", "parquet", "duckdb"},
        check_specs=[
            dg.AssetCheckSpec(
                ERASURE_CHECK,
                asset=ERASURE_SCAN_KEY,
                description="No store holds an identifier of an erased person.",
            )
        ],
        description=(
            "Scans every store (landing, lake, quarantine, identity, warehouse, snapshots, event "
            "log and live state, decision log, audit, exports, Dagster storage) for identifiers "
            "on the suppression list."
        ),
    )
    def erasure_scan(
        context: dg.AssetExecutionContext, cdp: CdpResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Count what still matches the list, per store; the check fails on any match."""
        del context
        workspace = cdp.workspace()
        store = PrivacyStore.at(workspace.home)
        suppression = store.suppression(cdp.keyring())
        requests = store.requests()
        erasers = build_erasers(workspace.home, cdp.loaded_config().path)
        rows: list[list[object]] = []
        remaining: dict[str, int] = {}
        places: list[str] = []
        began = time.monotonic()
        for eraser in erasers:
            started = time.monotonic()
            scan = eraser.scan(suppression) if suppression else None
            count = scan.remaining if scan is not None else 0
            remaining[eraser.name] = count
            if scan is not None:
                places += [f"{eraser.name}: {where}" for where in scan.where]
            rows.append([eraser.name, count, f"{time.monotonic() - started:.2f}"])
        left = sum(remaining.values())
        by_status: dict[str, int] = {}
        for request in requests:
            by_status[request.status] = by_status.get(request.status, 0) + 1
        metadata: dict[str, object] = {
            "suppression_list_entries": len(suppression),
            "requests_completed": by_status.get(COMPLETED, 0),
            "requests_pending": by_status.get(PENDING, 0) + by_status.get(INCOMPLETE, 0),
            "matches_left": left,
            "scan_seconds": round(time.monotonic() - began, 2),
            "stores": dg.MetadataValue.md(
                markdown_table(["store", "matches left", "seconds"], rows)
            ),
        }
        # what an erasure can fix (not a scan-only store, whose values an asset must stop
        # recording) reopens the requests, so the sensor does not loop on it
        fixable = sum(remaining[e.name] for e in erasers if not getattr(e, "scan_only", False))
        reopened = store.reopen() if fixable else []
        if reopened:
            metadata["requests_reopened"] = len(reopened)
        yield dg.MaterializeResult(metadata=metadata)
        description = (
            "no store holds an identifier of an erased person"
            if not left
            else f"{left} match(es) of erased persons left in "
            + ", ".join(f"{name} ({n})" for name, n in remaining.items() if n)
            + f"; {len(reopened)} erasure request(s) reopened: the pending_erasures sensor "
            "carries them out again (or run `cdp privacy erase` for the person)"
        )
        yield dg.AssetCheckResult(
            check_name=ERASURE_CHECK,
            asset_key=ERASURE_SCAN_KEY,
            passed=left == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            description=description,
            metadata={
                "matches_left": left,
                "entries_checked": len(suppression),
                "where": dg.MetadataValue.md(
                    "\n".join(f"- {p}" for p in places[:50]) or "_nowhere_"
                ),
            },
        )

    return erasure_scan


def build_erasure_job(
    run_config: dict[str, object] | None = None,
) -> "dg.UnresolvedAssetJobDefinition":
    """The erasures asset alone (what the sensor launches)."""
    return dg.define_asset_job(
        ERASURES_JOB,
        selection=dg.AssetSelection.assets(ERASURES_KEY),
        description="Carries out erasure requests waiting in the privacy store.",
        config=run_config,
    )


def build_erasure_sensor(job: "dg.UnresolvedAssetJobDefinition", home: str) -> dg.SensorDefinition:
    """Launches the erasures job when a request waits (made over GraphQL, or incomplete)."""

    @dg.sensor(
        name="pending_erasures",
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Carries out erasure requests made over GraphQL within a minute.",
    )
    def pending_erasures(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        del context
        from pathlib import Path

        waiting = sorted(
            (r.request_id, r.completed_at.isoformat() if r.completed_at else "")
            for r in PrivacyStore.at(Path(home)).requests()
            if r.status in (PENDING, INCOMPLETE)
        )
        if not waiting:
            return dg.SensorResult(skip_reason="no erasure request waiting")
        # a reopened request has a new completion time since its last run: a new run key
        key = ",".join(f"{request}@{done}" for request, done in waiting)
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=key)])

    return pending_erasures
