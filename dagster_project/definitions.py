"""Assembles the platform's Dagster definitions from settings and cdp.yml.

`dagster dev` and the UI load the lazy ``defs`` below; ``cdp run`` calls
:func:`build_definitions` with its own settings (for ``--as-of``), so both see the same graph:
ingest -> identity -> dbt (staging, intermediate, marts, segments) -> behavioural clusters ->
dbt segment models -> serving snapshot.
"""

import dagster as dg

from dagster_project.defs.dbt.assets import build_dbt_assets, dbt_cli_resource
from dagster_project.defs.identity.assets import build_identity_assets, identity_settings
from dagster_project.defs.identity.checks import build_identity_checks
from dagster_project.defs.ingest.assets import build_ingest_assets
from dagster_project.defs.ingest.checks import build_ingest_checks
from dagster_project.defs.ingest.sensors import build_landing_sensor
from dagster_project.defs.publish.assets import build_publish_assets
from dagster_project.defs.publish.checks import build_publish_checks
from dagster_project.defs.resources import CdpResource
from dagster_project.defs.schedules import daily_full_refresh, full_refresh_job
from dagster_project.defs.segments.assets import behavioural_clusters
from dagster_project.lib.config import ConfigError
from dagster_project.lib.settings import PlatformSettings
from identity import IdentitySettingsError


def build_definitions(settings: PlatformSettings) -> dg.Definitions:
    """The whole asset graph for one workspace; fails early on an invalid cdp.yml."""
    cdp = CdpResource.from_settings(settings)
    loaded = cdp.loaded_config()
    try:  # the identity: section fails here, at start, naming its key
        identity_settings(loaded)
    except IdentitySettingsError as exc:
        raise ConfigError(str(exc)) from exc
    config = loaded.config
    ingest_assets = build_ingest_assets(config)
    return dg.Definitions(
        assets=[
            *ingest_assets,
            *build_identity_assets(config),
            *build_dbt_assets(config),
            behavioural_clusters,
            *build_publish_assets(),
        ],
        asset_checks=[
            *build_ingest_checks(config),
            *build_identity_checks(config),
            *build_publish_checks(),
        ],
        sensors=[build_landing_sensor(ingest_assets)],
        schedules=[daily_full_refresh],
        jobs=[full_refresh_job],
        resources={"cdp": cdp, "dbt": dbt_cli_resource()},
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Entry point for `dagster dev` (settings from CDP_* variables)."""
    return build_definitions(PlatformSettings())
