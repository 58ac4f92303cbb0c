"""The daily full build of the whole asset graph."""

from __future__ import annotations

import dagster as dg

FULL_REFRESH_JOB = "cdp_full_refresh"

full_refresh_job = dg.define_asset_job(
    FULL_REFRESH_JOB,
    selection=dg.AssetSelection.all(),
    description="Every asset: ingest, identity, dbt models, segments and publish.",
)

daily_full_refresh = dg.ScheduleDefinition(
    name="daily_full_refresh",
    job=full_refresh_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Rebuilds the whole graph every day at 03:00 UTC.",
)
