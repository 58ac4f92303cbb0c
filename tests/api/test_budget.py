"""The request budget: shape and cost refused before work, time and size capped during it."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from dagster_project.lib.publish import publish_snapshot
from tests.support.api_harness import Api, Published, Server, copy_world, start_server, stop_server
from tests.support.api_world import customer_id, email

#: The fan-out a security review found: within depth and alias limits, 481,731 edges.
FAN_OUT = """{ segments { members(first: 50) { edges { node { segments { segment {
    members(first: 500) { edges { customerId } } } } } } } } }"""
#: 400 copies of one field: 1.6 KB, under the token limit, quadratic to validate.
DUPLICATES = "{ " + "segments { name } " * 400 + "}"
LOOKUP = """query Lookup($v: String!) { customer(lookup: {type: "email", value: $v}) {
    customerId email } }"""


def only_error(body: dict) -> dict:
    assert len(body["errors"]) == 1, body
    return body["errors"][0]


def timed(api: Api, query: str, variables: dict | None = None) -> tuple[dict, float]:
    started = time.perf_counter()
    body = api.gql(query, variables)
    return body, time.perf_counter() - started


def test_the_fan_out_query_is_refused_before_it_runs(api: Api) -> None:
    db = api.state.snapshots.current.db
    api.gql("{ segments { name } }")  # the catalogue is read once per snapshot
    before = db.query_count
    api.gql(FAN_OUT)  # the first time pays parse and validation
    body, seconds = timed(api, FAN_OUT)
    error = only_error(body)
    assert body["data"] is None
    assert error["extensions"]["code"] == "BUDGET_EXCEEDED"
    assert error["extensions"]["budget"] == "nodes"
    assert error["extensions"]["estimated"] > error["extensions"]["limit"] == 100_000
    assert "over the budget of 100,000" in error["message"]
    assert db.query_count == before  # nothing was read
    assert seconds < 0.05


def test_repeated_fields_are_refused_before_validation(api: Api) -> None:
    started = time.perf_counter()
    body = api.gql(DUPLICATES)
    seconds = time.perf_counter() - started
    error = only_error(body)
    assert error["extensions"]["budget"] == "repeats"
    assert "'segments' is selected 400 times" in error["message"]
    assert seconds < 0.05
    # spread through fragments, the same field counts the same
    spread = "fragment S on Query { segments { name } } { " + "...S " * 30 + "}"
    assert only_error(api.gql(spread))["extensions"]["budget"] == "repeats"
    # a field selected a few times (fragments overlapping) is fine
    assert "errors" not in api.gql("{ segments { name } segments { name owner } }")


def test_nested_fragments_cannot_blow_up_the_shape_check(api: Api) -> None:
    # each fragment spreads the previous twice: 2**24 expansions if walked naively
    fragments = ["fragment F0 on Segment { name }"]
    for level in range(1, 25):
        fragments.append(f"fragment F{level} on Segment {{ ...F{level - 1} x: name }}")
    fragments = [f.replace("x:", f"a{i}:") for i, f in enumerate(fragments)]
    query = "{ segments { ...F24 } } " + " ".join(fragments)
    started = time.perf_counter()
    body = api.gql(query)
    assert time.perf_counter() - started < 0.5
    assert body["errors"]


def test_the_selection_cap(make_api: Callable[..., Api], published: Published) -> None:
    api = make_api(published, api_max_selections=12)
    fields = "customerId region country isAnonymous signedUpAt recordCount sourceCount"
    body = api.gql(
        '{ a: customer(id: "cus_0001") { ' + fields + " } "
        'b: customer(id: "cus_0002") { ' + fields + " } }"
    )
    error = only_error(body)
    assert error["extensions"] == {"code": "BUDGET_EXCEEDED", "budget": "selections", "limit": 12}


def test_a_new_comment_does_not_validate_the_document_again(api: Api) -> None:
    executor = api.state.executor
    api.gql(LOOKUP, {"v": email(1)})
    hits = executor.normalized_hits
    for i in range(5):
        body = api.gql(LOOKUP + f"\n# {i} random", {"v": email(1)})
        assert body["data"]["customer"]["customerId"] == customer_id(1)
    assert executor.normalized_hits == hits + 5


def test_cost_follows_page_sizes_given_as_variables(api: Api) -> None:
    query = """query($n: Int) { customers(filter: {}, first: $n) { edges { node {
        identity { records { evidence { rule otherRecord { source } } } } } } } }"""
    assert "errors" not in api.gql(query, {"n": 5})
    refused = api.gql(query, {"n": 100})
    assert only_error(refused)["extensions"]["budget"] == "nodes"


def test_a_list_sized_by_its_own_argument_costs_what_it_asks(
    make_api: Callable[..., Api], published: Published
) -> None:
    # decisions(last:) is sized by `last` (default 5), not by its bound of 50
    tight = make_api(published, api_max_nodes=400)
    query = """query($n: Int) { customers(filter: {}, first: 5) { edges { node {
        decisions(last: $n) { items { sale { id } } } } } } }"""
    assert "errors" not in tight.gql(query, {"n": 2}, key="channel")
    refused = tight.gql(query, {"n": 50}, key="channel")
    assert only_error(refused)["extensions"]["budget"] == "nodes"


def test_segment_members_are_one_statement_for_every_segment(api: Api) -> None:
    db = api.state.snapshots.current.db
    api.gql("{ segments { name } }")
    before = db.query_count
    body = api.gql("{ segments { name members(first: 2) { edges { customerId cursor } } } }")
    assert "errors" not in body
    assert len(body["data"]["segments"]) == 4
    sizes = {s["name"]: len(s["members"]["edges"]) for s in body["data"]["segments"]}
    assert sizes == {
        "browsers": 2,
        "email_unsubscribed": 0,
        "frequent_buyers": 2,
        "high_value": 2,
    }
    assert db.query_count - before == 1


def test_an_operation_past_its_time_limit_is_stopped(
    make_api: Callable[..., Api], published: Published
) -> None:
    api = make_api(published, api_operation_timeout_seconds=0.000_001)
    body = api.gql("{ customers(filter: {}, first: 10) { edges { node { customerId } } } }")
    error = body["errors"][0]
    assert error["extensions"]["budget"] == "time"
    assert "time limit" in error["message"]
    nested = api.gql('{ customer(id: "cus_0001") { traits { orderCount } } }')
    assert nested["errors"][0]["extensions"]["budget"] == "time"


def test_an_oversize_response_is_replaced_and_nothing_is_audited(
    make_api: Callable[..., Api], published: Published, tmp_path: Path
) -> None:
    api = make_api(published, api_max_response_bytes=65_536)
    query = """{ customers(filter: {}, first: 100) { edges { node { customerId email phone
        firstName lastName fullName streetAddress city provenance { attribute source updatedAt }
        events(first: 10) { edges { node { eventId occurredAt detail } } } } } } }"""
    response = api.post(query, key="pii")
    assert response.status_code == 200
    body = response.json()
    error = only_error(body)
    assert body["data"] is None
    assert error["extensions"]["budget"] == "response_bytes"
    assert error["extensions"]["size"] > 65_536
    assert len(response.content) < 1_000
    assert list((tmp_path / "audit").glob("pii-*.jsonl")) == [] or all(
        not p.read_text() for p in (tmp_path / "audit").glob("pii-*.jsonl")
    )


@pytest.fixture(scope="module")
def server(
    published: Published, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Published, Server]]:
    tmp_path = tmp_path_factory.mktemp("budget")
    world = copy_world(published, tmp_path / "home")
    w = world.world
    publish_snapshot(w.warehouse, w.serving_dir)
    running = start_server(w.home, tmp_path, workers=1)
    try:
        yield world, running
    finally:
        stop_server(running)


@pytest.mark.e2e
def test_a_lookup_beside_refused_heavy_queries_stays_fast(
    server: tuple[Published, Server],
) -> None:
    world, running = server
    headers = {"Authorization": f"Bearer {world.keys['admin']}"}
    url = running.url + "/graphql"
    stop = threading.Event()
    refusals: list[float] = []
    problems: list[str] = []

    def attack(query: str) -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                started = time.perf_counter()
                body = client.post(url, json={"query": query}, headers=headers).json()
                refusals.append(time.perf_counter() - started)
                if body.get("data") is not None or "BUDGET" not in json.dumps(body):
                    problems.append(json.dumps(body)[:200])

    attackers = [threading.Thread(target=attack, args=(q,)) for q in (FAN_OUT, DUPLICATES)]
    lookups: list[float] = []
    with httpx.Client(timeout=10) as client:
        client.post(url, json={"query": LOOKUP, "variables": {"v": email(3)}}, headers=headers)
        for thread in attackers:
            thread.start()
        try:
            for i in range(60):
                started = time.perf_counter()
                response = client.post(
                    url, json={"query": LOOKUP, "variables": {"v": email(i)}}, headers=headers
                )
                lookups.append(time.perf_counter() - started)
                assert response.json()["data"]["customer"]["customerId"] == customer_id(i)
                time.sleep(0.01)
        finally:
            stop.set()
            for thread in attackers:
                thread.join()
    assert problems == []
    assert len(refusals) > 20
    assert statistics.median(refusals) < 0.05, sorted(refusals)[-5:]
    lookups.sort()
    p95 = lookups[int(len(lookups) * 0.95)]
    assert p95 < 0.02, (statistics.median(lookups), p95, lookups[-3:])
