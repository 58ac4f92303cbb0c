"""Segments: the catalogue, cursor pagination through members, customers(filter:)."""

from __future__ import annotations

from tests.support.api_harness import Api
from tests.support.api_world import SEGMENTS, customer_id, is_member

MEMBERS = """query($name: String!, $after: String) { segment(name: $name) {
    name size members(first: 40, after: $after) {
        totalCount edges { cursor customerId enteredAt }
        pageInfo { hasNextPage endCursor } } } }"""


def test_segments_catalogue(api: Api) -> None:
    segments = api.gql(
        "{ segments { name description owner size family definedBy } }", key="segments"
    )["data"]["segments"]
    assert [s["name"] for s in segments] == sorted(SEGMENTS)
    by_name = {s["name"]: s for s in segments}
    for name, (description, owner) in SEGMENTS.items():
        expected = sum(is_member(name, i) for i in range(300))
        assert by_name[name] == {
            "name": name,
            "description": description,
            "owner": owner,
            "size": expected,
            "family": "rule",
            "definedBy": f"segments/{name}",
        }


def test_paging_through_a_segment_exports_every_member_once(api: Api) -> None:
    after = None
    exported: list[str] = []
    pages = 0
    while True:
        segment = api.gql(MEMBERS, {"name": "frequent_buyers", "after": after}, key="segments")[
            "data"
        ]["segment"]
        members = segment["members"]
        assert members["totalCount"] == segment["size"] == 150
        exported += [e["customerId"] for e in members["edges"]]
        pages += 1
        if not members["pageInfo"]["hasNextPage"]:
            assert members["pageInfo"]["endCursor"] == members["edges"][-1]["cursor"]
            break
        after = members["pageInfo"]["endCursor"]
    assert pages == 4  # 40 + 40 + 40 + 30
    assert exported == [customer_id(i) for i in range(300) if is_member("frequent_buyers", i)]


def test_empty_segment_has_an_empty_page(api: Api) -> None:
    members = api.gql(MEMBERS, {"name": "email_unsubscribed"}, key="segments")["data"]["segment"][
        "members"
    ]
    assert members == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


def test_customers_filter_by_segment_and_trait_thresholds(api: Api) -> None:
    query = """query($after: String) { customers(
        filter: {segment: "frequent_buyers",
                 traits: [{name: "orderCount", gte: 3}, {name: "engagement_score", lt: 50}]},
        first: 20, after: $after) {
            totalCount edges { node { customerId traits { orderCount engagementScore } } }
            pageInfo { hasNextPage endCursor } } }"""
    expected = [
        customer_id(i)
        for i in range(300)
        if i % 2 == 0 and i != 299 and i % 7 >= 3 and i % 100 < 50
    ]
    found: list[str] = []
    after = None
    while True:
        page = api.gql(query, {"after": after}, key="web")["data"]["customers"]
        assert page["totalCount"] == len(expected)
        for edge in page["edges"]:
            traits = edge["node"]["traits"]
            assert traits["orderCount"] >= 3 and traits["engagementScore"] < 50
            found.append(edge["node"]["customerId"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert found == expected


def test_customers_filter_by_traits_only(api: Api) -> None:
    body = api.gql(
        '{ customers(filter: {traits: [{name: "lifetimeRevenue", gt: 2950}]}) '
        "{ totalCount edges { node { customerId } } } }",
        key="profile",
    )
    # lifetime revenue is 10 * i: customers 296..299
    assert body["data"]["customers"]["totalCount"] == 4
    assert [e["node"]["customerId"] for e in body["data"]["customers"]["edges"]] == [
        customer_id(i) for i in range(296, 300)
    ]


def test_member_profiles_resolve_through_the_page(api: Api) -> None:
    body = api.gql(
        '{ segment(name: "high_value") { members(first: 3) { edges { customerId '
        "node { customerId segments { name } } } } } }",
        key="web",
    )
    edges = body["data"]["segment"]["members"]["edges"]
    assert [e["node"]["customerId"] for e in edges] == [e["customerId"] for e in edges]
    assert all("high_value" in [s["name"] for s in e["node"]["segments"]] for e in edges)
