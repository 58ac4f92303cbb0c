"""Recommendations and products served over real HTTP from a published snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from dagster_project.lib.publish import publish_snapshot
from tests.support.api_harness import (
    Api,
    Published,
    Server,
    copy_world,
    start_server,
    stop_server,
)
from tests.support.api_world import customer_id

PRODUCTS = [
    ("P1", "Espresso Beans", "Grocery", "Bean Co", 12.5, True),
    ("P2", "Filter Coffee", "Grocery", "Bean Co", 9.0, True),
    ("P3", "Wool Socks", "Apparel", "Thread", 8.0, True),
    ("P4", "Old Kettle", "Home & Kitchen", "Boil", None, False),
]

RECOMMENDATIONS = """
query ($id: ID!, $first: Int!) {
  customer(id: $id) {
    customerId
    recommendations(first: $first) {
      rank score strategy
      product { id name category brand price similar(first: 2) { rank score product { id } } }
    }
  }
}
"""


def _fill(warehouse: Path) -> None:
    """Recommendations for customers 1 and 2 (customer 3 has none), similar products of P1."""
    with duckdb.connect(str(warehouse)) as con:
        con.executemany("insert into products values (?, ?, ?, ?, ?, ?)", PRODUCTS)
        rows = [
            (customer_id(1), 1, "P1", 0.9, "hybrid"),
            (customer_id(1), 2, "P3", 0.5, "hybrid"),
            (customer_id(1), 3, "P2", 0.4, "hybrid"),
            (customer_id(2), 1, "P2", 1.0, "popular"),
        ]
        con.executemany("insert into customer_recommendations values (?, ?, ?, ?, ?)", rows)
        con.executemany(
            "insert into similar_products values (?, ?, ?, ?)",
            [("P1", 1, "P2", 0.8), ("P1", 2, "P3", 0.1), ("P1", 3, "P4", 0.05)],
        )


@pytest.fixture(scope="module")
def served(
    published: Published, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Published, Server]]:
    tmp_path = tmp_path_factory.mktemp("recommendations")
    world = copy_world(published, tmp_path / "home")
    _fill(world.world.warehouse)
    publish_snapshot(world.world.warehouse, world.world.serving_dir)
    server = start_server(world.home, tmp_path)
    try:
        yield world, server
    finally:
        stop_server(server)


def _post(served: tuple[Published, Server], query: str, variables: dict, key: str) -> dict:
    world, server = served
    response = httpx.post(
        server.url + "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {world.keys[key]}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_recommendations_are_served_in_rank_order_with_products(
    served: tuple[Published, Server],
) -> None:
    body = _post(served, RECOMMENDATIONS, {"id": customer_id(1), "first": 10}, "profile")
    assert "errors" not in body, body
    recs = body["data"]["customer"]["recommendations"]
    assert [r["rank"] for r in recs] == [1, 2, 3]
    assert [r["product"]["id"] for r in recs] == ["P1", "P3", "P2"]
    assert recs[0]["product"] == {
        "id": "P1",
        "name": "Espresso Beans",
        "category": "Grocery",
        "brand": "Bean Co",
        "price": 12.5,
        "similar": [
            {"rank": 1, "score": 0.8, "product": {"id": "P2"}},
            {"rank": 2, "score": 0.1, "product": {"id": "P3"}},
        ],
    }
    assert {r["strategy"] for r in recs} == {"hybrid"}
    first = _post(served, RECOMMENDATIONS, {"id": customer_id(1), "first": 2}, "profile")
    assert len(first["data"]["customer"]["recommendations"]) == 2


def test_popular_and_empty_lists(served: tuple[Published, Server]) -> None:
    body = _post(served, RECOMMENDATIONS, {"id": customer_id(2), "first": 10}, "profile")
    [rec] = body["data"]["customer"]["recommendations"]
    assert rec["strategy"] == "popular"
    body = _post(served, RECOMMENDATIONS, {"id": customer_id(3), "first": 10}, "profile")
    assert body["data"]["customer"]["recommendations"] == []


def test_product_lookup(served: tuple[Published, Server]) -> None:
    query = "query ($id: ID!) { product(id: $id) { id name price similar { product { id } } } }"
    body = _post(served, query, {"id": "P4"}, "profile")
    assert body["data"]["product"] == {
        "id": "P4",
        "name": "Old Kettle",
        "price": None,
        "similar": [],
    }
    assert _post(served, query, {"id": "nope"}, "profile")["data"]["product"] is None


def test_recommendations_need_profile_read(served: tuple[Published, Server]) -> None:
    query = "query ($id: ID!) { product(id: $id) { id } }"
    body = _post(served, query, {"id": "P1"}, "segments")
    assert body["errors"][0]["extensions"]["requiredScope"] == "profile:read"


def test_first_out_of_range_is_a_client_error(served: tuple[Published, Server]) -> None:
    body = _post(served, RECOMMENDATIONS, {"id": customer_id(1), "first": 51}, "profile")
    assert "between 1 and 50" in body["errors"][0]["message"]


def test_recommendation_lists_count_against_the_budget(api: Api) -> None:
    query = (
        "{ customers(filter: {}, first: 100) { edges { node { recommendations(first: 50) { "
        "product { similar(first: 20) { product { id name } } } } } } } }"
    )
    body = api.gql(query)
    assert body["errors"][0]["extensions"]["code"] == "BUDGET_EXCEEDED"


def test_a_snapshot_without_recommendations_serves_empty_lists(api: Api) -> None:
    body = api.gql(
        "query ($id: ID!) { customer(id: $id) { recommendations { rank } } }",
        {"id": customer_id(1)},
        key="profile",
    )
    assert body["data"]["customer"]["recommendations"] == []
