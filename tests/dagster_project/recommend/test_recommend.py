"""Recommendations on a constructed warehouse (real DuckDB): exclusions, fallbacks, ranks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dagster_project.lib.config import ConfigError, RecommendationsConfig, load_config
from dagster_project.lib.recommend import (
    HYBRID,
    POPULAR,
    RecommendationResult,
    build_inputs,
    read_inputs,
    run_recommendations,
)
from tests.dagster_project.recommend.warehouse import AS_OF, World, days_ago, shop

CONFIG = RecommendationsConfig(min_customers=10)


def _run(
    world: World, tmp_path: Path, config: RecommendationsConfig = CONFIG
) -> RecommendationResult:
    inputs = read_inputs(world.write(tmp_path / "warehouse.duckdb"), AS_OF)
    return run_recommendations(inputs, config, AS_OF)


def _list(result: RecommendationResult, customer: str) -> pd.DataFrame:
    recs = result.recommendations
    return recs[recs["customer_id"] == customer].sort_values("rank")


def test_just_bought_durable_category_is_excluded(tmp_path: Path) -> None:
    world = shop()
    # An electronics fan who bought a TV three days ago: no TV, no other Electronics product.
    for k in range(8):
        world.view("fan", f"t{k}", days_ago(10 + k), "add_to_cart")
    world.buy("fan", "t3", days_ago(3))
    result = _run(world, tmp_path)
    fan = _list(result, "fan")
    assert not fan.empty
    assert not fan["product_id"].str.startswith("t").any()
    # An electronics fan who bought nothing still gets TVs: the exclusion is what removed them.
    assert _list(result, "cust003")["product_id"].str.startswith("t").any()


def test_durable_bought_long_ago_is_not_recommended_again_but_its_category_is(
    tmp_path: Path,
) -> None:
    world = shop()
    config = RecommendationsConfig(min_customers=10, durable_suppression_days=30)
    result = _run(world, tmp_path, config)
    products = set(_list(result, "cust000")["product_id"])  # bought t0 60 days ago
    assert "t0" not in products
    assert products & {f"t{i}" for i in range(1, 10)}


def test_consumable_bought_is_still_recommended(tmp_path: Path) -> None:
    world = shop()
    result = _run(world, tmp_path)
    drinker = _list(result, "cust001")  # bought c1 eight days ago, views coffee
    assert "c1" in set(drinker["product_id"])
    assert drinker["product_id"].str.startswith("c").sum() >= 5


def test_out_of_range_products_are_never_recommended(tmp_path: Path) -> None:
    result = _run(shop(), tmp_path)
    assert "x0" not in set(result.recommendations["product_id"])
    assert "x0" not in set(result.similar["similar_product_id"])
    assert any("out of range" in note for note in result.notes)


def test_customer_without_history_gets_popularity(tmp_path: Path) -> None:
    world = shop()
    world.customers.append("newcomer")
    result = _run(world, tmp_path)
    newcomer = _list(result, "newcomer")
    assert len(newcomer) == CONFIG.top_n
    assert set(newcomer["strategy"]) == {POPULAR}
    assert (newcomer["score"].diff().dropna() <= 0).all()
    # Everyone else with history gets the hybrid.
    assert set(_list(result, "cust001")["strategy"]) == {HYBRID}
    assert result.by_strategy[POPULAR] == 1


def test_ranks_are_one_to_n_and_unique_per_customer(tmp_path: Path) -> None:
    result = _run(shop(), tmp_path)
    recs = result.recommendations
    assert not recs.duplicated(["customer_id", "rank"]).any()
    assert not recs.duplicated(["customer_id", "product_id"]).any()
    for _, group in recs.groupby("customer_id"):
        assert list(group.sort_values("rank")["rank"]) == list(range(1, len(group) + 1))
        assert (group.sort_values("rank")["score"].diff().dropna() <= 1e-12).all()
    sims = result.similar
    assert not sims.duplicated(["product_id", "rank"]).any()
    assert (sims["product_id"] != sims["similar_product_id"]).all()
    assert result.similar_method == "als_item_factors"


def test_evaluation_reports_every_strategy_and_baseline(tmp_path: Path) -> None:
    world = shop()
    for n in range(1, 60, 3):  # coffee drinkers buy again in the holdout
        world.buy(f"cust{n:03d}", f"c{(n + 1) % 10}", days_ago(2))
    result = _run(world, tmp_path)
    evaluation = result.evaluation
    assert evaluation.skipped_reason is None
    assert evaluation.customers == 20
    assert set(evaluation.recall) == {
        "hybrid",
        "collaborative",
        "content",
        "category_affinity",
        "popular",
    }
    assert all(0.0 <= v <= 1.0 for v in [*evaluation.recall.values(), *evaluation.ndcg.values()])


def test_tiny_world_falls_back_without_a_model(tmp_path: Path) -> None:
    world = World()
    world.product("p1", "Grocery", "Bean Co", 5.0)
    world.view("a", "p1", days_ago(1))
    world.view("b", "p1", days_ago(2))
    world.customers.append("c")
    result = _run(world, tmp_path)
    assert any("no collaborative model" in note for note in result.notes)
    assert set(result.recommendations["product_id"]) == {"p1"}
    assert set(_list(result, "a")["strategy"]) == {"content"}
    assert set(_list(result, "c")["strategy"]) == {POPULAR}
    assert result.similar.empty
    assert result.similar_method == "co_occurrence"
    assert result.evaluation.skipped_reason is not None


@pytest.mark.parametrize("case", ["no_events", "no_products", "nothing"])
def test_empty_inputs_never_crash(tmp_path: Path, case: str) -> None:
    world = World()
    world.customers += ["a", "b"]
    if case != "no_products" and case != "nothing":
        world.product("p1", "Grocery", "Bean Co", 5.0)
    if case == "no_products":
        world.view("a", "p1", days_ago(1))  # a product nobody catalogued
    result = _run(world, tmp_path)
    assert result.recommendations.empty
    assert result.similar.empty
    assert result.notes


def test_frames_without_a_warehouse_work_too() -> None:
    inputs = build_inputs(
        pd.DataFrame(columns=["customer_id", "product_id", "event_type", "occurred_at"]),
        pd.DataFrame(columns=["product_id", "product_name", "category", "brand", "price"]),
        pd.DataFrame({"customer_id": ["a"]}),
    )
    result = run_recommendations(inputs, CONFIG, AS_OF)
    assert result.recommendations.empty
    assert result.customers == 1


def test_invalid_recommendations_key_fails_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "cdp.yml"
    path.write_text("version: 1\nsources: []\nrecommendations:\n  top_n: 10\n  durable_days: 5\n")
    with pytest.raises(ConfigError, match=r"recommendations\.durable_days"):
        load_config(path)
    path.write_text("version: 1\nsources: []\nrecommendations:\n  top_n: 0\n")
    with pytest.raises(ConfigError, match=r"recommendations\.top_n"):
        load_config(path)
    path.write_text("version: 1\nsources: []\n")
    assert load_config(path).config.recommendations.top_n == 10
