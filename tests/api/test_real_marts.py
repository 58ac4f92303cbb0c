"""Publish and serve marts built by the real dbt project (the dbt tests' constructed world)."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pytest

from dagster_project.lib.publish import MART_NAMES, publish_snapshot
from snapshots import read_current, read_manifest, snapshot_folder
from tests.support import dbt_tiny_world as tiny
from tests.support.api_harness import KEY_SCOPES, Api, Published, make_keys

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Published:
    world = tiny.build_tiny_world(tmp_path_factory.mktemp("real_marts"))
    result = tiny.run_dbt(world, ["build"], extra_vars={"affinity_min_pair_count": 1})
    assert result.returncode == 0, result.stdout[-4000:]
    workspace = world.workspace
    publish_snapshot(workspace.warehouse, workspace.serving)
    from tests.support.api_world import ApiWorld

    return Published(world=ApiWorld(home=workspace.home, persons=0), keys=make_keys(workspace.home))


def test_every_mart_is_published_with_its_row_count(real: Published) -> None:
    api_home = real.home
    con = duckdb.connect(str(api_home / "warehouse.duckdb"), read_only=True)
    try:
        expected = {m: con.execute(f"select count(*) from {m}").fetchone()[0] for m in MART_NAMES}
    finally:
        con.close()
    serving = api_home / "serving"
    manifest = read_manifest(snapshot_folder(serving, read_current(serving)))
    assert {m: manifest.tables[m] for m in MART_NAMES} == expected
    assert expected["customers"] > 0


def test_lookups_and_segments_on_real_marts(make_api: Callable[..., Api], real: Published) -> None:
    api = make_api(real)
    con = duckdb.connect(str(real.home / "warehouse.duckdb"), read_only=True)
    try:
        identifiers = con.execute(
            "select identifier_type, identifier_value, customer_id from customer_identifiers"
        ).fetchall()
        segment, size = con.execute(
            "select segment, count(*) from customer_segments group by 1 order by 2 desc limit 1"
        ).fetchone()
    finally:
        con.close()
    query = """query($t: String!, $v: String!) { customer(lookup: {type: $t, value: $v}) {
        customerId traits { orderCount } segments { name } identity { records { source } } } }"""
    for identifier_type, value, customer_id in identifiers:
        shown = value.upper() if identifier_type == "email" else value
        body = api.gql(query, {"t": identifier_type, "v": shown}, key="admin")
        assert "errors" not in body, body
        assert body["data"]["customer"]["customerId"] == customer_id, (identifier_type, value)
    members = api.gql(
        "query($s: String!) { segment(name: $s) { size members(first: 100) { edges { "
        "customerId node { customerId } } } } }",
        {"s": segment},
        key="admin",
    )["data"]["segment"]
    assert members["size"] == size == len(members["members"]["edges"])
    assert set(KEY_SCOPES) <= set(real.keys)
