"""Real dbt and dagster.materialize on the tiny world: the asset's files become the marts."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from dagster_project.defs.recommendations.assets import recommendations
from dagster_project.defs.resources import CdpResource
from tests.support import dbt_tiny_world as tiny

pytestmark = pytest.mark.slow


def _dbt(world: tiny.TinyWorld, *args: str) -> None:
    result = tiny.run_dbt(world, ["build", *args])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_tiny_world_recommendations_reach_the_contracted_marts(tmp_path: Path) -> None:
    world = tiny.build_tiny_world(tmp_path / "home")
    home = world.workspace.home
    _dbt(world)  # every model; the recommendation marts are empty before the asset has run
    with duckdb.connect(str(world.workspace.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from customer_recommendations").fetchone() == (0,)
        products = con.execute("select count(*) from products").fetchone()[0]
    assert products > 0
    (home / "cdp.yml").write_text(yaml.safe_dump(tiny.CONFIG))
    cdp = CdpResource(
        home=str(home), config_path=str(home / "cdp.yml"), as_of=world.as_of.isoformat()
    )
    result = dg.materialize([recommendations], resources={"cdp": cdp})
    assert result.success
    _dbt(world, "--select", "source:recommendations+")
    with duckdb.connect(str(world.workspace.warehouse), read_only=True) as con:
        customers = con.execute("select count(*) from customers").fetchone()[0]
        rows = con.execute(
            "select customer_id, rank, product_id, score, strategy from customer_recommendations"
        ).fetchall()
        in_range = {
            r[0]
            for r in con.execute("select product_id from products where is_in_range").fetchall()
        }
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_name = 'customer_recommendations'"
            ).fetchall()
        )
    assert rows
    assert len({r[0] for r in rows}) == customers  # every customer has a list
    assert {r[4] for r in rows} <= {"hybrid", "content", "popular", "collaborative"}
    assert {r[2] for r in rows} <= in_range
    assert types == {
        "customer_id": "VARCHAR",
        "rank": "INTEGER",
        "product_id": "VARCHAR",
        "score": "DOUBLE",
        "strategy": "VARCHAR",
    }
