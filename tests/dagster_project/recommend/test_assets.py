"""The recommendations asset under a real dagster.materialize, on a constructed warehouse."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import yaml

from dagster_project.defs.dbt.translator import CdpTranslator
from dagster_project.defs.recommendations.assets import recommendations
from dagster_project.defs.recommendations.checks import (
    CUSTOMER_RECOMMENDATIONS_KEY,
    HYBRID_CHECK_NAME,
    SIMILAR_PRODUCTS_KEY,
)
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import CdpConfig
from dagster_project.lib.recommend import (
    customer_recommendations_path,
    similar_products_path,
)
from tests.dagster_project.recommend.warehouse import AS_OF, World, days_ago, shop


def _materialize(
    home: Path, world: World, **recommendations_config: object
) -> dg.ExecuteInJobResult:
    home.mkdir(exist_ok=True)
    world.write(home / "warehouse.duckdb")
    config = {
        "version": 1,
        "sources": [],
        "recommendations": {"min_customers": 10, **recommendations_config},
    }
    (home / "cdp.yml").write_text(yaml.safe_dump(config))
    cdp = CdpResource(home=str(home), config_path=str(home / "cdp.yml"), as_of=AS_OF.isoformat())
    return dg.materialize([recommendations], resources={"cdp": cdp}, raise_on_error=False)


def _metadata(result: dg.ExecuteInJobResult, key: dg.AssetKey) -> dict[str, object]:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_materialize_writes_both_files_with_metadata(tmp_path: Path) -> None:
    world = shop()
    world.customers.append("newcomer")
    for n in range(1, 60, 3):
        world.buy(f"cust{n:03d}", f"c{(n + 1) % 10}", days_ago(2))
    home = tmp_path / "home"
    result = _materialize(home, world)
    assert result.success
    recs = pq.read_table(customer_recommendations_path(home / "lake")).to_pandas()
    similar = pq.read_table(similar_products_path(home / "lake")).to_pandas()
    assert list(recs.columns) == ["customer_id", "rank", "product_id", "score", "strategy"]
    assert list(similar.columns) == ["product_id", "rank", "similar_product_id", "score"]
    assert set(recs.loc[recs["customer_id"] == "newcomer", "strategy"]) == {"popular"}
    metadata = _metadata(result, CUSTOMER_RECOMMENDATIONS_KEY)
    assert metadata["dagster/row_count"] == len(recs)
    assert metadata["customers_with_recommendations"] == 61
    assert "| hybrid |" in str(metadata["customers_by_strategy"])
    assert "recall@10" in str(metadata["evaluation"])
    assert "hybrid_vs_popular_recall" in metadata
    assert "hybrid_vs_category_affinity_recall" in metadata
    assert _metadata(result, SIMILAR_PRODUCTS_KEY)["method"] == "als_item_factors"
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == HYBRID_CHECK_NAME
    assert check.severity == dg.AssetCheckSeverity.WARN


def test_hybrid_below_popularity_warns(tmp_path: Path) -> None:
    world = shop()
    # A crowd makes s9 the best seller before the holdout; in the holdout the electronics and
    # coffee fans all buy it, against their tastes: only popularity sees it coming.
    for n in range(40):
        for k in range(3):
            world.view(f"crowd{n}", "s9", days_ago(16 + k), "add_to_cart")
    for n in range(60):
        if n % 3 != 2:
            world.buy(f"cust{n:03d}", "s9", days_ago(1))
    result = _materialize(
        tmp_path / "home",
        world,
        weights={"collaborative": 1.0, "content": 1.0, "popular": 0.0},
    )
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN


def test_tiny_world_materializes_with_a_stated_fallback(tmp_path: Path) -> None:
    world = World()
    world.product("p1", "Grocery", "Bean Co", 5.0)
    world.view("a", "p1", days_ago(1))
    world.customers.append("b")
    result = _materialize(tmp_path / "home", world)
    assert result.success
    metadata = _metadata(result, CUSTOMER_RECOMMENDATIONS_KEY)
    assert "no collaborative model" in str(metadata["notes"])
    [check] = result.get_asset_check_evaluations()
    assert check.passed  # nothing to compare: not a failure
    assert _metadata(result, SIMILAR_PRODUCTS_KEY)["method"] == "co_occurrence"


def test_a_missing_warehouse_fails_with_what_to_do(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "cdp.yml").write_text(yaml.safe_dump({"version": 1, "sources": []}))
    cdp = CdpResource(home=str(home), config_path=str(home / "cdp.yml"), as_of=AS_OF.isoformat())
    result = dg.materialize([recommendations], resources={"cdp": cdp}, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "materialize the dbt models first" in str(failure.step_failure_data.error)


def test_dbt_sources_map_onto_the_asset_keys() -> None:
    translator = CdpTranslator(CdpConfig(sources=[]))
    for table, key in (
        ("customer_recommendations", CUSTOMER_RECOMMENDATIONS_KEY),
        ("similar_products", SIMILAR_PRODUCTS_KEY),
    ):
        props = {"resource_type": "source", "source_name": "recommendations", "name": table}
        assert translator.get_asset_key(props) == key


def test_the_marts_build_after_the_asset_in_the_last_dbt_stage(tmp_path: Path) -> None:
    from dagster_project.defs.dbt.assets import (
        SEGMENT_MODELS_OP,
        build_dbt_assets,
        dbt_cli_resource,
    )
    from dagster_project.defs.dbt.translator import dbt_asset_key
    from tests.support import dbt_tiny_world as tiny

    config = CdpConfig.model_validate(tiny.CONFIG)
    dbt_defs = build_dbt_assets(config)
    cdp = CdpResource(home=str(tmp_path), config_path=str(tmp_path / "cdp.yml"))
    defs = dg.Definitions(
        assets=[*dbt_defs, recommendations], resources={"cdp": cdp, "dbt": dbt_cli_resource()}
    )
    graph = defs.resolve_asset_graph()
    stage_of = {key: a.op.name for a in dbt_defs for key in a.keys}
    for mart, source in (
        ("customer_recommendations", CUSTOMER_RECOMMENDATIONS_KEY),
        ("similar_products", SIMILAR_PRODUCTS_KEY),
    ):
        assert stage_of[dbt_asset_key(mart)] == SEGMENT_MODELS_OP
        staging = dbt_asset_key(f"stg_recommendations__{mart}")
        assert source in graph.get(staging).parent_keys
    # the asset reads first-stage models only, so the graph has no cycle
    for parent in graph.get(CUSTOMER_RECOMMENDATIONS_KEY).parent_keys:
        assert stage_of[parent] != SEGMENT_MODELS_OP
