"""dbt models as Dagster assets: lineage from ingest and identity, tests as checks, a real run."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from dagster_project.defs.dbt.assets import build_dbt_assets, dbt_cli_resource
from dagster_project.defs.dbt.project import dbt_project
from dagster_project.defs.dbt.translator import BEHAVIOURAL_CLUSTERS_KEY, dbt_asset_key
from dagster_project.defs.ingest.assets import build_ingest_assets, lake_asset_key
from dagster_project.defs.resources import CdpResource
from dagster_project.defs.segments.assets import behavioural_clusters
from dagster_project.lib.dbt_project import behavioural_clusters_path
from tests.support import dbt_tiny_world as tiny


def _resources(home: Path) -> dict[str, object]:
    (home / "cdp.yml").write_text(yaml.safe_dump(tiny.CONFIG))
    cdp = CdpResource(home=str(home), config_path=str(home / "cdp.yml"), as_of="2025-06-30")
    return {"cdp": cdp, "dbt": dbt_cli_resource()}


@pytest.fixture(scope="module")
def dbt_asset_defs() -> list[dg.AssetsDefinition]:
    config = tiny.CdpConfig.model_validate(tiny.CONFIG)
    return build_dbt_assets(config)


def test_dbt_lineage_reaches_ingest_identity_and_clusters(
    dbt_asset_defs: list[dg.AssetsDefinition], tmp_path: Path
) -> None:
    config = tiny.CdpConfig.model_validate(tiny.CONFIG)
    defs = dg.Definitions(
        assets=[*build_ingest_assets(config), *dbt_asset_defs, behavioural_clusters],
        resources=_resources(tmp_path),
    )
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()

    def parents(model: str) -> set[dg.AssetKey]:
        return set(graph.get(dbt_asset_key(model)).parent_keys)

    # One dbt source per kind fans out to every ingest asset of that kind, and only those.
    assert parents("stg_lake__people") == {lake_asset_key("crm"), lake_asset_key("shop_accounts")}
    assert parents("stg_lake__events") == {lake_asset_key("web_events")}
    assert parents("stg_lake__consents") == set()  # no consents source in this cdp.yml
    assert parents("stg_identity__identity_map") == {dg.AssetKey(["identity", "identity_map"])}
    assert parents("stg_clusters__behavioural_clusters") == {BEHAVIOURAL_CLUSTERS_KEY}
    union = parents("int_segment_members_unioned")
    assert dbt_asset_key("stg_clusters__behavioural_clusters") in union
    assert {dbt_asset_key(s) for s in ("frequent_buyers", "at_risk", "high_value")} <= union
    assert set(graph.get(BEHAVIOURAL_CLUSTERS_KEY).parent_keys) == {
        dbt_asset_key("customer_traits")
    }
    groups = {
        model: graph.get(dbt_asset_key(model)).group_name
        for model in ("stg_lake__orders", "int_orders_resolved", "customers", "browsers")
    }
    assert groups == {
        "stg_lake__orders": "staging",
        "int_orders_resolved": "intermediate",
        "customers": "marts",
        "browsers": "segments",
    }
    # dbt tests are asset checks, singular tests included (attached through their meta).
    check_keys = {key for a in dbt_asset_defs for key in a.check_keys}
    assert (
        dg.AssetCheckKey(dbt_asset_key("customers"), "unique_customers_customer_id") in check_keys
    )
    assert (
        dg.AssetCheckKey(dbt_asset_key("customer_traits"), "assert_traits_arithmetic_is_consistent")
        in check_keys
    )
    # The three stages split around the customer models and the clustering asset.
    stage_of = {key: a.op.name for a in dbt_asset_defs for key in a.keys}
    assert stage_of[dbt_asset_key("int_training_examples_labelled")] == "dbt_models"
    assert stage_of[dbt_asset_key("customer_traits")] == "dbt_scored_models"
    assert stage_of[dbt_asset_key("customer_segments")] == "dbt_segment_models"


def test_manifest_is_reused_while_the_project_is_unchanged(
    dbt_asset_defs: list[dg.AssetsDefinition],
) -> None:
    project = dbt_project()
    manifest = project.manifest_path
    before = manifest.stat().st_mtime_ns
    config = tiny.CdpConfig.model_validate(tiny.CONFIG)
    build_dbt_assets(config)
    assert manifest.stat().st_mtime_ns == before


@pytest.mark.slow
def test_materializing_dbt_and_clusters_builds_every_mart(
    dbt_asset_defs: list[dg.AssetsDefinition], tmp_path: Path
) -> None:
    world = tiny.build_tiny_world(tmp_path / "home", extra_customers=40)
    result = dg.materialize(
        [*dbt_asset_defs, behavioural_clusters],
        resources=_resources(world.workspace.home),
        raise_on_error=False,
    )
    assert result.success, [e.step_key for e in result.get_step_failure_events()]
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) > 100
    failed = {(e.asset_key.to_user_string(), e.check_name) for e in evaluations if not e.passed}
    # Only the warn-level check for an email address no identity record knows.
    assert failed == {
        ("dbt/int_email_events_resolved", "not_null_int_email_events_resolved_customer_id")
    }
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dbt_asset_key("customers") in materialized
    assert dbt_asset_key("customer_segments") in materialized
    assert BEHAVIOURAL_CLUSTERS_KEY in materialized

    clusters = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == BEHAVIOURAL_CLUSTERS_KEY
    )
    assert "silhouette" in clusters and "cluster_profiles" in clusters
    assert behavioural_clusters_path(world.workspace).exists()
    with duckdb.connect(str(world.workspace.warehouse), read_only=True) as connection:
        families = dict(
            connection.execute(
                "select segment_family, sum(member_count) from segments group by 1"
            ).fetchall()
        )
        clustered = connection.execute(
            "select count(*) from customer_segments where segment like 'cluster_%'"
        ).fetchone()[0]
    assert families["behavioural_cluster"] == clusters["clustered_customers"].value == clustered
    assert families["rule"] > 0
    # Every stage left its dbt artefacts under the run's folder, not in the repository.
    run_dir = world.workspace.runs / result.run_id
    assert (run_dir / "dbt_models" / "run_results.json").exists()
    assert (run_dir / "dbt_scored_models" / "run_results.json").exists()
    assert (run_dir / "dbt_segment_models" / "run_results.json").exists()
