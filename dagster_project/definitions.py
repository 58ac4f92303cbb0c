"""Assembles the platform's Dagster definitions from settings and cdp.yml.

`dagster dev` and the UI load the lazy ``defs`` below; ``cdp run`` calls
:func:`build_definitions` with its own settings (for ``--as-of``), so both see the same graph:
ingest -> identity -> dbt (staging, intermediate, marts features) -> customer models -> dbt
(customer_traits with scores, segments) -> behavioural clusters -> dbt segment models -> serving
snapshot -> the daily decision batch; the decision log enters as a source (decision_log -> dbt
measurement marts -> decision_measurement); the real-time event log is folded into landing files
before the ingest of its two sources (realtime_events_fold).
"""

import logging
import os
from typing import Any

import dagster as dg

from dagster_project.defs.dbt.assets import build_dbt_assets, dbt_cli_resource
from dagster_project.defs.decisions.assets import (
    build_batch_assets,
    decision_log,
    decision_measurement,
    decisions_policy,
)
from dagster_project.defs.events.assets import realtime_events_fold
from dagster_project.defs.events.checks import offsets_accounted_for
from dagster_project.defs.identity.assets import build_identity_assets, identity_settings
from dagster_project.defs.identity.checks import build_identity_checks
from dagster_project.defs.ingest.assets import build_ingest_assets
from dagster_project.defs.ingest.checks import build_ingest_checks
from dagster_project.defs.ingest.sensors import build_landing_sensor
from dagster_project.defs.models.assets import customer_scores
from dagster_project.defs.privacy.assets import RETENTION_ASSET_KEY, build_retention_asset
from dagster_project.defs.privacy.erasure import (
    build_erasure_job,
    build_erasure_scan,
    build_erasure_sensor,
    erasures,
)
from dagster_project.defs.publish.assets import SNAPSHOT_KEY, build_publish_assets
from dagster_project.defs.publish.checks import build_publish_checks
from dagster_project.defs.recommendations.assets import recommendations
from dagster_project.defs.resources import CdpResource
from dagster_project.defs.schedules import build_full_refresh, build_retention_schedule
from dagster_project.defs.segments.assets import behavioural_clusters
from dagster_project.lib.config import ConfigError
from dagster_project.lib.logs import DEFAULT_LOG_LEVEL, chosen_log_level
from dagster_project.lib.settings import PlatformSettings
from identity import IdentitySettingsError
from privacy.retention import retention_problems


def run_console_config(level: int) -> dict[str, Any]:
    """Run config that sets the threshold of a run's console logger to ``level``.

    A run's console output goes to the terminal of whoever launched it (``dagster dev`` for the
    sensor's runs): without this config Dagster logs a line per event there, at DEBUG. The run's
    log in the UI keeps every event whatever the level. (A ``loggers=`` default on Definitions
    would not do: Dagster uses its own console logger whenever the run config names none.)
    """
    return {"loggers": {"console": {"config": {"log_level": logging.getLevelName(level)}}}}


def build_definitions(
    settings: PlatformSettings, *, log_level: int = DEFAULT_LOG_LEVEL
) -> dg.Definitions:
    """The whole asset graph for one workspace; fails early on an invalid cdp.yml.

    ``log_level`` is the console threshold of the runs the sensor launches (``CDP_LOG_LEVEL``
    for ``dagster dev``).
    """
    cdp = CdpResource.from_settings(settings)
    loaded = cdp.loaded_config()
    try:  # the identity: section fails here, at start, naming its key
        identity_settings(loaded)
    except IdentitySettingsError as exc:
        raise ConfigError(str(exc)) from exc
    config = loaded.config
    policy = decisions_policy(loaded)  # the decisions: section fails here too, naming its key
    problems = retention_problems(config.privacy, config.realtime, policy)
    if problems:  # a retention too short for caps or the live profile fails here, naming its key
        raise ConfigError(f"{loaded.path}: " + "; ".join(problems))
    ingest_assets = build_ingest_assets(config)
    run_config = run_console_config(log_level)
    # the daily refresh (and its e-mail batch) runs as a decision period starts
    full_refresh_job, daily_full_refresh = build_full_refresh(
        run_config, hour=policy.period_start_hour
    )
    retention_job, daily_retention = build_retention_schedule(RETENTION_ASSET_KEY, run_config)
    batch_assets = build_batch_assets(policy)
    # the erasure scan runs after everything a refresh writes
    last_writers = [SNAPSHOT_KEY, RETENTION_ASSET_KEY, decision_measurement.key]
    last_writers += [key for asset in batch_assets for key in asset.keys]
    erasure_job = build_erasure_job(run_config)
    return dg.Definitions(
        assets=[
            realtime_events_fold,
            *ingest_assets,
            *build_identity_assets(config),
            *build_dbt_assets(config),
            customer_scores,
            behavioural_clusters,
            recommendations,
            *build_publish_assets(),
            decision_log,
            decision_measurement,
            *batch_assets,
            build_retention_asset(config),
            erasures,
            build_erasure_scan(last_writers),
        ],
        asset_checks=[
            offsets_accounted_for,
            *build_ingest_checks(config),
            *build_identity_checks(config),
            *build_publish_checks(),
        ],
        sensors=[
            build_landing_sensor(ingest_assets, run_config=run_config),
            build_erasure_sensor(erasure_job, str(settings.home.resolve())),
        ],
        schedules=[daily_full_refresh, daily_retention],
        jobs=[full_refresh_job, retention_job, erasure_job],
        resources={"cdp": cdp, "dbt": dbt_cli_resource()},
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Entry point for `dagster dev` (settings from CDP_* variables)."""
    try:
        log_level = chosen_log_level(environ=os.environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return build_definitions(PlatformSettings(), log_level=log_level)
