"""The daily full build of the whole asset graph."""

from __future__ import annotations

from typing import Any

import dagster as dg

FULL_REFRESH_JOB = "cdp_full_refresh"


def build_full_refresh(
    run_config: dict[str, Any] | None = None,
) -> tuple[dg.UnresolvedAssetJobDefinition, dg.ScheduleDefinition]:
    """The whole-graph job and its 03:00 UTC schedule.

    ``run_config`` is the job's default config: the console log level the user chose, so a
    scheduled or UI-launched run does not print a line per event in `dagster dev`'s terminal.
    """
    job = dg.define_asset_job(
        FULL_REFRESH_JOB,
        selection=dg.AssetSelection.all(),
        description="Every asset: ingest, identity, dbt models, segments and publish.",
        config=run_config,
    )
    schedule = dg.ScheduleDefinition(
        name="daily_full_refresh",
        job=job,
        cron_schedule="0 3 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Rebuilds the whole graph every day at 03:00 UTC.",
    )
    return job, schedule
