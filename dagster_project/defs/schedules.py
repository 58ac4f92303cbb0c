"""The daily full build of the whole asset graph, at the start of a decision period."""

from __future__ import annotations

from typing import Any

import dagster as dg

FULL_REFRESH_JOB = "cdp_full_refresh"


def build_full_refresh(
    run_config: dict[str, Any] | None = None, *, hour: int = 14
) -> tuple[dg.UnresolvedAssetJobDefinition, dg.ScheduleDefinition]:
    """The whole-graph job and its daily schedule at ``hour``:00 UTC.

    ``hour`` is the decision policy's ``period_start_hour`` (cdp.yml ``decisions:``; 14 by
    default, when the day's sales start): the graph ends with the daily e-mail batch, which
    should decide as a period starts, with that day's sales running, not hours before them
    (a 03:00 run decided in the period that began at 14:00 the day before, on sales about to
    end). ``run_config`` is the job's default config: the console log level the user chose, so
    a scheduled or UI-launched run does not print a line per event in `dagster dev`'s terminal.
    """
    if not 0 <= hour <= 23:
        raise ValueError(f"the schedule's hour must be 0-23, got {hour}")
    job = dg.define_asset_job(
        FULL_REFRESH_JOB,
        selection=dg.AssetSelection.all(),
        description="Every asset: ingest, identity, dbt models, segments, publish, decisions.",
        config=run_config,
    )
    schedule = dg.ScheduleDefinition(
        name="daily_full_refresh",
        job=job,
        cron_schedule=f"0 {hour} * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Rebuilds the whole graph every day at {hour:02d}:00 UTC, when a decision period "
            "starts (decisions.period_start_hour), so the daily batch decides with the day's "
            "sales."
        ),
    )
    return job, schedule


RETENTION_JOB = "privacy_retention"


def build_retention_schedule(
    asset_key: dg.AssetKey, run_config: dict[str, Any] | None = None, *, hour: int = 3
) -> tuple[dg.UnresolvedAssetJobDefinition, dg.ScheduleDefinition]:
    """The retention asset alone, daily at ``hour``:00 UTC (the daily refresh runs it too).

    Its own schedule so old data goes every day even when the full refresh is paused or fails
    earlier in its graph; a second run the same day removes nothing.
    """
    if not 0 <= hour <= 23:
        raise ValueError(f"the schedule's hour must be 0-23, got {hour}")
    job = dg.define_asset_job(
        RETENTION_JOB,
        selection=dg.AssetSelection.assets(asset_key),
        description="Removes event and decision data older than privacy.retention.",
        config=run_config,
    )
    schedule = dg.ScheduleDefinition(
        name="daily_privacy_retention",
        job=job,
        cron_schedule=f"0 {hour} * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Every day at {hour:02d}:00 UTC: event and decision data older than "
            "privacy.retention (cdp.yml) leave the logs, the live state and the lake."
        ),
    )
    return job, schedule
