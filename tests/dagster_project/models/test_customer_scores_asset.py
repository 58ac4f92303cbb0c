"""The customer models asset in a real Dagster run between real dbt stages (tiny world).

The tiny world has a few dozen customers: every model falls back to the documented heuristic,
says so in metadata and in the run note, and never crashes; customers without history get null
scores in customer_traits, never zeros.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from dagster_project.defs import RUN_NOTE_KEY
from dagster_project.defs.dbt.assets import (
    SCORED_MODELS_OP,
    build_dbt_assets,
    dbt_cli_resource,
)
from dagster_project.defs.dbt.translator import dbt_asset_key
from dagster_project.defs.models.assets import CUSTOMER_SCORES_KEY, check_name, customer_scores
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.dbt_project import customer_scores_path
from dagster_project.lib.models import FALLBACK, MODEL_NAMES
from dagster_project.lib.models.baselines import FALLBACK_VERSION
from tests.support import dbt_tiny_world as tiny


@pytest.fixture(scope="module")
def dbt_asset_defs() -> list[dg.AssetsDefinition]:
    return build_dbt_assets(tiny.CdpConfig.model_validate(tiny.CONFIG))


def test_scores_sit_between_the_first_two_dbt_stages(
    dbt_asset_defs: list[dg.AssetsDefinition], tmp_path: Path
) -> None:
    (tmp_path / "cdp.yml").write_text(yaml.safe_dump(tiny.CONFIG))
    cdp = CdpResource(home=str(tmp_path), config_path=str(tmp_path / "cdp.yml"))
    resources = {"cdp": cdp, "dbt": dbt_cli_resource()}
    defs = dg.Definitions(assets=[*dbt_asset_defs, customer_scores], resources=resources)
    graph = defs.resolve_asset_graph()
    assert set(graph.get(CUSTOMER_SCORES_KEY).parent_keys) == {
        dbt_asset_key("int_training_examples_labelled"),
        dbt_asset_key("int_customer_features_computed"),
    }
    assert set(graph.get(CUSTOMER_SCORES_KEY).child_keys) == {
        dbt_asset_key("stg_models__customer_scores")
    }
    stage_of = {key: a.op.name for a in dbt_asset_defs for key in a.keys}
    assert stage_of[dbt_asset_key("customer_traits")] == SCORED_MODELS_OP
    assert stage_of[dbt_asset_key("int_training_examples_labelled")] == "dbt_models"


@pytest.mark.slow
def test_a_tiny_world_falls_back_and_leaves_customers_without_history_null(
    dbt_asset_defs: list[dg.AssetsDefinition], tmp_path: Path
) -> None:
    world = tiny.build_tiny_world(tmp_path / "home", extra_customers=20)
    home = world.workspace.home
    (home / "cdp.yml").write_text(yaml.safe_dump(tiny.CONFIG))
    cdp = CdpResource(home=str(home), config_path=str(home / "cdp.yml"), as_of="2025-06-30")
    result = dg.materialize(
        [*dbt_asset_defs, customer_scores],
        resources={"cdp": cdp, "dbt": dbt_cli_resource()},
        raise_on_error=False,
    )
    assert result.success, [e.step_key for e in result.get_step_failure_events()]

    [materialization] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == CUSTOMER_SCORES_KEY
    ]
    metadata = materialization.metadata
    for name in MODEL_NAMES:
        assert metadata[f"{name}/status"].value == FALLBACK
        assert "models.min_training_rows" in metadata[f"{name}/reason"].value
        saved = json.loads((Path(metadata[f"{name}/saved_to"].value) / "metadata.json").read_text())
        assert saved["status"] == FALLBACK and saved["as_of"] == "2025-06-30"
    assert "fell back to the recency/frequency heuristic" in metadata[RUN_NOTE_KEY].value
    checks = {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == CUSTOMER_SCORES_KEY
    }
    assert set(checks) == {check_name(name) for name in MODEL_NAMES}
    assert all(c.passed and "not judged" in (c.description or "") for c in checks.values())
    assert customer_scores_path(world.workspace).exists()

    with duckdb.connect(str(world.workspace.warehouse), read_only=True) as connection:
        rows = connection.sql(
            """
            select t.customer_id, t.order_count, t.purchase_probability, t.churn_risk,
                   t.predicted_clv, f.customer_id is not null as has_history,
                   s.purchase_model_version
            from customer_traits as t
            left join int_customer_features_computed as f using (customer_id)
            left join stg_models__customer_scores as s using (customer_id)
            """
        ).df()
    buyers = rows.loc[rows["order_count"] > 0]
    assert len(buyers) > 10
    assert buyers[["purchase_probability", "churn_risk", "predicted_clv"]].notna().all().all()
    assert buyers["purchase_probability"].between(0, 1).all()
    assert (buyers["purchase_model_version"] == FALLBACK_VERSION).all()
    # no orders: the fallback has nothing to extrapolate from, so no score (null, not zero)
    others = rows.loc[rows["order_count"] == 0]
    assert len(others) > 0 and (~others["has_history"]).any()
    assert others[["purchase_probability", "churn_risk", "predicted_clv"]].isna().all().all()
