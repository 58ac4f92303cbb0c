"""The Dagster publish asset and its checks, materialized for real."""

from __future__ import annotations

import dagster as dg
from conftest import Published

from api.snapshot import read_current, read_manifest, snapshot_folder
from dagster_project.defs.publish.assets import SNAPSHOT_KEY, build_publish_assets, publish_deps
from dagster_project.defs.publish.checks import build_publish_checks
from dagster_project.defs.resources import CdpResource


def resource(world: Published, as_of: str | None = "2025-06-30") -> CdpResource:
    config = world.home / "cdp.yml"
    config.write_text("version: 1\ndefaults:\n  phone_region: GB\nsources: []\n")
    return CdpResource(home=str(world.home), config_path=str(config), as_of=as_of)


def test_publish_asset_switches_the_snapshot_and_checks_pass(fresh_world: Published) -> None:
    result = dg.materialize(
        [*build_publish_assets(), *build_publish_checks()],
        resources={"cdp": resource(fresh_world)},
        raise_on_error=True,
    )
    assert result.success
    serving = fresh_world.world.serving_dir
    snapshot_id = read_current(serving)
    manifest = read_manifest(snapshot_folder(serving, snapshot_id))
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == SNAPSHOT_KEY]
    metadata = event.materialization.metadata
    assert metadata["snapshot_id"].value == snapshot_id
    assert metadata["dagster/row_count"].value == 300 == manifest.tables["customers"]
    assert manifest.as_of.isoformat() == "2025-06-30"
    assert manifest.identity_settings["phone_default_region"] == "GB"
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"current_snapshot_is_complete": True, "lookups_find_their_customer": True}


def test_publish_depends_on_the_marts_and_identity() -> None:
    keys = {key.to_user_string() for key in publish_deps()}
    assert {
        "dbt/customers",
        "dbt/customer_identifiers",
        "dbt/customer_segments",
        "dbt/segments",
        "identity/identity_map",
        "identity/identity_edges",
    } <= keys
    (asset,) = build_publish_assets()
    assert asset.key == SNAPSHOT_KEY
    assert set(asset.asset_deps[SNAPSHOT_KEY]) == set(publish_deps())


def test_checks_fail_without_a_snapshot(fresh_world: Published) -> None:
    result = dg.materialize(
        [*build_publish_assets(), *build_publish_checks()],
        resources={"cdp": resource(fresh_world)},
        selection=dg.AssetSelection.checks_for_assets(SNAPSHOT_KEY),
        raise_on_error=False,
    )
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and not any(e.passed for e in evaluations)
    assert all("no CURRENT pointer" in (e.description or "") for e in evaluations)
