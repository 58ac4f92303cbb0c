"""The Dagster publish asset and its checks, materialized for real."""

from __future__ import annotations

import dagster as dg
import duckdb

from dagster_project.defs.publish.assets import SNAPSHOT_KEY, build_publish_assets, publish_deps
from dagster_project.defs.publish.checks import build_publish_checks
from dagster_project.defs.resources import CdpResource
from snapshots import TABLE_NAMES, read_current, read_manifest, snapshot_folder
from tests.support.api_harness import Published


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


def test_publish_depends_on_every_declared_mart() -> None:
    keys = {key.to_user_string() for key in publish_deps()}
    # one dbt mart per snapshot table, the identity explanations included: identity's
    # outputs reach the snapshot only through dbt
    assert keys == {f"dbt/{name}" for name in TABLE_NAMES}
    assert {
        "dbt/customers",
        "dbt/customer_identifiers",
        "dbt/identifier_lookup",
        "dbt/identity_records",
        "dbt/identity_evidence",
        "dbt/customer_id_history",
        "dbt/customer_aliases",
    } <= keys
    (asset,) = build_publish_assets()
    assert asset.key == SNAPSHOT_KEY
    assert set(asset.asset_deps[SNAPSHOT_KEY]) == set(publish_deps())


def test_the_probe_check_fails_on_a_lookup_that_finds_nobody(fresh_world: Published) -> None:
    con = duckdb.connect(str(fresh_world.world.warehouse))
    con.execute(
        "update identifier_lookup set customer_id = 'cus_gone' "
        "where identifier_type = 'email' and identifier_value = 'person0@shopmail.com'"
    )
    con.close()
    result = dg.materialize(
        [*build_publish_assets(), *build_publish_checks()],
        resources={"cdp": resource(fresh_world)},
        raise_on_error=False,
    )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["current_snapshot_is_complete"].passed
    probe = checks["lookups_find_their_customer"]
    assert not probe.passed
    assert probe.description == "email: per*** -> None"  # masked: no identifier in a check
    assert probe.metadata["failed"].value == 1


def test_every_publish_dependency_is_a_dbt_model() -> None:
    """The snapshot's tables exist as dbt assets (parsed from the real project)."""
    from dagster_project.defs.dbt.assets import build_dbt_assets
    from dagster_project.lib.config import CdpConfig

    definitions = build_dbt_assets(CdpConfig.model_validate({"version": 1, "sources": []}))
    models = {key for definition in definitions for key in definition.keys}
    assert set(publish_deps()) <= models


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
