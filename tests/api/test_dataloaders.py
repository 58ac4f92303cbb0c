"""DataLoaders keep a page of customers at a small, fixed number of snapshot queries."""

from __future__ import annotations

from tests.support.api_harness import Api

PAGE = """query($first: Int!) { segment(name: "frequent_buyers") { members(first: $first) {
    edges { node { customerId email traits { orderCount engagementScore }
                   segments { name enteredAt segment { owner } } } } } } }"""

FULL = """query($first: Int!) { customers(filter: {segment: "browsers"}, first: $first) {
    edges { node { customerId traits { orderCount } segments { name }
        identifiers { type value } events(first: 3) { edges { node { eventId } } }
        identity { records { recordId evidence { rule } } history { eventType } } } } } }"""


def queries_for(api: Api, query: str, first: int) -> tuple[int, dict]:
    db = api.state.snapshots.current.db
    before = db.query_count
    body = api.gql(query, {"first": first}, key="admin")
    assert "errors" not in body, body
    return db.query_count - before, body


def test_page_of_100_members_with_traits_and_segments_costs_four_queries(api: Api) -> None:
    api.gql("{ segments { name } }")  # the catalogue is read once per snapshot
    queries, body = queries_for(api, PAGE, 100)
    edges = body["data"]["segment"]["members"]["edges"]
    assert len(edges) == 100
    assert all(e["node"]["traits"] is not None for e in edges)
    # members, customers, traits, segments
    assert queries == 4


def test_query_count_does_not_grow_with_the_page(api: Api) -> None:
    api.gql("{ segments { name } }")
    small, _ = queries_for(api, PAGE, 5)
    large, _ = queries_for(api, PAGE, 100)
    assert small == large


def test_every_nested_field_is_batched(api: Api) -> None:
    api.gql("{ segments { name } }")
    small, _ = queries_for(api, FULL, 3)
    large, body = queries_for(api, FULL, 100)
    assert len(body["data"]["customers"]["edges"]) == 100
    # filter, traits, segments, identifiers, events, records, evidence, history
    assert large == small == 8


def test_lookup_by_email_is_one_query(api: Api) -> None:
    db = api.state.snapshots.current.db
    before = db.query_count
    body = api.gql(
        '{ customer(lookup: {type: "email", value: "person4@shopmail.com"}) '
        "{ customerId email firstName } }"
    )
    assert body["data"]["customer"]["customerId"] == "cus_0004"
    assert db.query_count - before == 1
