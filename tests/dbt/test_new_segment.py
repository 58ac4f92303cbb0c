"""An analyst adds a segment with one SQL file and its YAML; no Python changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from dagster_project.defs.dbt.assets import build_dbt_assets
from dagster_project.defs.dbt.project import dbt_project
from dagster_project.defs.dbt.translator import dbt_asset_key
from dagster_project.lib.dbt_project import DBT_PROJECT_DIR, lake_globs, segment_model_names
from tests.support.dbt_tiny_world import build_tiny_world, run_dbt

pytestmark = pytest.mark.slow

SEGMENT_SQL = """\
-- Customers whose favourite category is shoes.
select customer_id
from {{ ref('customer_traits') }}
where favourite_category = 'Shoes'
"""

SEGMENT_YAML = """\
version: 2
models:
  - name: shoe_lovers
    description: Favourite category is shoes.
    config:
      meta: {name: shoe_lovers, description: "Favourite category: shoes.", owner: merchandising}
    columns:
      - name: customer_id
        data_tests: [unique, not_null]
"""


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "dbt"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    (copy / "models" / "segments" / "shoe_lovers.sql").write_text(SEGMENT_SQL)
    (copy / "models" / "segments" / "_shoe_lovers__models.yml").write_text(SEGMENT_YAML)
    return copy


def test_new_segment_file_lands_in_customer_segments(project_copy: Path, tmp_path: Path) -> None:
    world = build_tiny_world(tmp_path / "home")
    assert "shoe_lovers" in segment_model_names(project_copy)

    # The Dagster graph picks it up too: a new asset feeding the union of segments.
    assets = build_dbt_assets(world.config, project=dbt_project(project_copy))
    specs = {spec.key: spec for assets_def in assets for spec in assets_def.specs}
    union = specs[dbt_asset_key("int_segment_members_unioned")]
    assert dbt_asset_key("shoe_lovers") in {dep.asset_key for dep in union.deps}

    # A consents source configured but not ingested yet: its glob matches no file, and the
    # consents models still build (empty).
    globs = lake_globs(world.config, world.workspace.lake)
    globs["consents"] = [str(world.workspace.lake / "consent_log" / "*.parquet")]
    result = run_dbt(world, ["run"], project_dir=project_copy, extra_vars={"cdp_lake_globs": globs})
    assert result.returncode == 0, result.stdout[-5000:]
    with duckdb.connect(str(world.workspace.warehouse), read_only=True) as connection:
        assert connection.execute("select count(*) from stg_lake__consents").fetchone() == (0,)
        members = connection.execute(
            "select customer_id from customer_segments where segment = 'shoe_lovers' order by 1"
        ).fetchall()
        catalogue = connection.execute(
            "select description, owner, member_count from segments where segment = 'shoe_lovers'"
        ).fetchall()
    # Favourite category Shoes: Alice (bought shoes most), Bob (two shoe orders), cookie k4.
    assert [m[0] for m in members] == ["cus_a", "cus_b", "cus_d"]
    assert catalogue == [("Favourite category: shoes.", "merchandising", 3)]


def test_bad_vars_fail_loudly_instead_of_dropping_data(project_copy: Path, tmp_path: Path) -> None:
    world = build_tiny_world(tmp_path / "home")
    shipped = segment_model_names(DBT_PROJECT_DIR)  # without shoe_lovers
    result = run_dbt(
        world,
        ["compile", "--select", "int_segment_members_unioned"],
        project_dir=project_copy,
        extra_vars={"cdp_segment_models": shipped},
    )
    assert result.returncode != 0
    assert "segment model 'shoe_lovers' is not in var cdp_segment_models" in result.stdout
    # A malformed as-of date stops the whole project while parsing, before anything is built.
    result = run_dbt(world, ["parse"], project_dir=project_copy, extra_vars={"as_of": "yesterday"})
    assert result.returncode != 0
    assert "var 'as_of' must be a date as YYYY-MM-DD" in result.stdout
