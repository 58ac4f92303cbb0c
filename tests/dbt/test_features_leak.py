"""The features macro at a past cutoff sees nothing after it (real dbt on the tiny world).

``int_training_examples_labelled`` evaluates ``macros/customer_features.sql`` at past cutoffs;
``int_customer_features_computed`` at the as-of date. An order placed after a cutoff must change
that cutoff's label and nothing of its features, and the features at a cutoff must equal the
features of a build run ``--as-of`` that cutoff.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dagster_project.lib.models import FEATURE_COLUMNS
from tests.support.dbt_tiny_world import TinyWorld, build_tiny_world, lake_table, run_dbt, ts

MODELS = "+int_training_examples_labelled +int_customer_features_computed"
#: Small horizons and two cutoffs per model keep the build short.
MODEL_VARS = {
    "cdp_models": {
        "purchase_horizon_days": 30,
        "churn_horizon_days": 90,
        "clv_horizon_days": 365,
        "training_cutoffs": 2,
        "cutoff_step_days": 30,
    }
}
CUTOFF = date(2025, 5, 31)  # as_of 2025-06-30 minus the 30-day purchase horizon
#: Per horizon h (30, 90, 365): as_of - h and as_of - 2h, and one 30-day step back from each.
EXPECTED_CUTOFFS = [
    "2023-06-01",
    "2023-07-01",
    "2024-05-31",
    "2024-06-30",
    "2024-12-02",
    "2025-01-01",
    "2025-03-02",
    "2025-04-01",
    "2025-05-01",
    "2025-05-31",
]  # as_of 2025-06-30 minus the 30-day purchase horizon
#: Feature columns of the macro compared at the cutoff (the favourite labels included).
COMPARED = [*FEATURE_COLUMNS, "favourite_category", "favourite_brand", "last_order_at"]


def _build(world: TinyWorld, as_of: date | None = None) -> None:
    result = run_dbt(world, ["run", "--select", MODELS], as_of=as_of, extra_vars=MODEL_VARS)
    assert result.returncode == 0, result.stdout[-5000:]


def _read(world: TinyWorld, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(world.workspace.warehouse), read_only=True) as connection:
        return connection.sql(sql).df()


def _examples_at(world: TinyWorld, cutoff: date) -> pd.DataFrame:
    frame = _read(
        world,
        f"select * from int_training_examples_labelled where cutoff_date = date '{cutoff}'",
    )
    return frame.set_index("customer_id").sort_index()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> TinyWorld:
    world = build_tiny_world(tmp_path_factory.mktemp("leak") / "home", extra_customers=12)
    _build(world)
    return world


def test_cutoffs_end_every_horizon_by_the_as_of_date(world: TinyWorld) -> None:
    cutoffs = _read(world, "select distinct cutoff_date from int_training_examples_labelled")
    observed = {str(d.date()) for d in pd.to_datetime(cutoffs["cutoff_date"])}
    # the 2023 cutoffs precede the tiny world's first data: no customer, no row
    assert observed == {c for c in EXPECTED_CUTOFFS if c >= "2024"}, observed
    assert {"2024-06-30", "2025-01-01", "2025-04-01", "2025-05-31"} <= observed
    labels = _read(
        world,
        """select cutoff_date, count(purchase_label) as purchase, count(churn_label) as churn,
                  count(clv_revenue_label) as clv
           from int_training_examples_labelled group by 1 order by 1""",
    ).set_index("cutoff_date")
    # a label exists only when its horizon ends by the as-of date
    assert (labels.loc[labels.index > pd.Timestamp("2025-04-01"), "churn"] == 0).all()
    assert labels.loc[pd.Timestamp("2025-04-01"), "churn"] > 0  # 04-01 + 90 d = the as-of date
    assert (labels.loc[labels.index > pd.Timestamp("2024-06-30"), "clv"] == 0).all()
    assert (labels["purchase"] > 0).all()


def test_an_order_after_the_cutoff_changes_its_label_not_its_features(
    world: TinyWorld, tmp_path: Path
) -> None:
    before = _examples_at(world, CUTOFF)
    customer = _read(world, "select customer_id from int_orders_resolved where order_id = 'O10'")
    [bob] = customer["customer_id"]  # A2's only order was on 2024-01-15
    assert not before.loc[bob, "purchase_label"]
    current_before = _read(world, "select * from int_customer_features_computed").set_index(
        "customer_id"
    )

    late = {
        "record_id": "O99",
        "order_id": "O99",
        "account_id": "A2",
        "ordered_at": ts("2025-06-05 09:00"),  # after the cutoff, before the as-of date
        "status": "completed",
        "total_amount": 75.0,
        "currency": "USD",
    }
    part = world.workspace.source_lake("orders") / "part-0000000000000099.parquet"
    pq.write_table(lake_table(world.config, "orders", [late]), part)
    try:
        _build(world)
        after = _examples_at(world, CUTOFF)
        current_after = _read(world, "select * from int_customer_features_computed").set_index(
            "customer_id"
        )
    finally:
        part.unlink()
        _build(world)

    assert list(after.index) == list(before.index)
    pd.testing.assert_frame_equal(after[COMPARED], before[COMPARED])
    assert after.loc[bob, "purchase_label"]  # the label sees the order ...
    # ... and so do the features at the as-of date, which is after the order
    assert current_after.loc[bob, "order_count"] == current_before.loc[bob, "order_count"] + 1


def test_features_at_a_cutoff_equal_a_build_as_of_that_cutoff(
    world: TinyWorld, tmp_path: Path
) -> None:
    at_cutoff = _examples_at(world, CUTOFF)
    other = build_tiny_world(tmp_path / "home", extra_customers=12)
    _build(other, as_of=CUTOFF)
    as_of = _read(other, "select * from int_customer_features_computed").set_index("customer_id")
    as_of = as_of.sort_index()
    assert list(as_of.index) == list(at_cutoff.index)
    pd.testing.assert_frame_equal(as_of[COMPARED], at_cutoff[COMPARED])
