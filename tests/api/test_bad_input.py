"""Bad input gets a clear GraphQL error (or null for nobody), never a crash or a stack trace."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from collections.abc import Callable

import pytest

from api.graphql.executor import INTERNAL_ERROR_MESSAGE
from snapshots import DATABASE_FILE, read_current, snapshot_folder, write_current
from tests.support.api_harness import Api, Published

LOOKUP = """query($t: String!, $v: String!) { customer(lookup: {type: $t, value: $v}) {
    customerId } }"""


def only_error(body: dict) -> dict:
    assert len(body["errors"]) == 1, body
    return body["errors"][0]


def test_unknown_customer_is_null_without_errors(api: Api) -> None:
    body = api.gql('{ customer(id: "cus_9999") { customerId } }')
    assert body == {"data": {"customer": None}}


@pytest.mark.parametrize(
    ("type_", "value", "message"),
    [
        ("email", "not-an-email", "'not-an-email' is not a valid email address"),
        ("email", "a@b", "'a@b' is not a valid email address"),
        ("email", "test@example.com", "placeholder value"),
        ("phone", "+1 (555) 010-2030", "not a valid phone number"),
        ("phone", "123-456-7890", "placeholder value"),
        ("phone", "0000000000", "placeholder value"),
        ("phone", "call me", "not a valid phone number"),
        ("cookie_id", "n/a", "placeholder value"),
        ("email", "   ", "`lookup.value` is empty"),
        (
            "passport",
            "X1",
            "unknown identifier type 'passport'; use one of: account_id, "
            "alias_customer_id, cookie_id, email, loyalty_id, phone",
        ),
    ],
)
def test_malformed_lookup_values_are_clear_errors(
    api: Api, type_: str, value: str, message: str
) -> None:
    body = api.gql(LOOKUP, {"t": type_, "v": value})
    error = only_error(body)
    assert message in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["data"] == {"customer": None}


def test_exactly_one_of_id_or_lookup(api: Api) -> None:
    both = api.gql(
        '{ customer(id: "cus_0001", lookup: {type: "email", value: "x@y.com"}) { customerId } }'
    )
    assert only_error(both)["message"] == "give exactly one of `id` or `lookup`"
    neither = api.gql("{ customer { customerId } }")
    assert only_error(neither)["message"] == "give exactly one of `id` or `lookup`"


@pytest.mark.parametrize(
    "query",
    [
        '{ segment(name: "high_value") { members(first: 101) { edges { customerId } } } }',
        "{ customers(filter: {}, first: 5000) { edges { cursor } } }",
        '{ customer(id: "cus_0000") { events(first: 101) { edges { cursor } } } }',
    ],
)
def test_oversize_page_is_an_error(api: Api, query: str) -> None:
    error = only_error(api.gql(query))
    assert "more than the maximum page size 100" in error["message"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "maximum": 100}


def test_non_positive_page_is_an_error(api: Api) -> None:
    body = api.gql('{ segment(name: "high_value") { members(first: 0) { totalCount } } }')
    assert "`first` must be at least 1" in only_error(body)["message"]


@pytest.mark.parametrize("cursor", ["garbage!!", "eyJhIjoxfQ", "WyJjdXN0b21lciIsImN1c18wMDEwIl0"])
def test_foreign_or_broken_cursor_is_an_error(api: Api, cursor: str) -> None:
    # the last one is a valid cursor of customers(filter:), not of segment members
    body = api.gql(
        'query($a: String) { segment(name: "high_value") { members(first: 2, after: $a)'
        " { totalCount } } }",
        {"a": cursor},
    )
    assert "`after`" in only_error(body)["message"]


def test_unknown_segment_is_an_error_that_lists_nothing(api: Api) -> None:
    body = api.gql('{ segment(name: "vip") { name } }')
    error = only_error(body)
    assert error["message"] == "unknown segment 'vip'; `segments { name }` lists them"
    assert error["extensions"]["code"] == "NOT_FOUND"
    filtered = api.gql('{ customers(filter: {segment: "vip"}) { edges { cursor } } }')
    assert only_error(filtered)["message"].startswith("unknown segment 'vip'")


def test_unknown_or_unbounded_trait_condition_is_an_error(api: Api) -> None:
    unknown = api.gql(
        '{ customers(filter: {traits: [{name: "favouriteCategory", gt: 1}]}) { edges { cursor } } }'
    )
    assert "'favouriteCategory' is not a numeric trait" in only_error(unknown)["message"]
    unbounded = api.gql(
        '{ customers(filter: {traits: [{name: "orderCount"}]}) { edges { cursor } } }'
    )
    assert "has no bound" in only_error(unbounded)["message"]


def test_too_deep_query_is_refused_before_execution(api: Api) -> None:
    deep = """{ customer(id: "cus_0000") { segments { segment { members(first: 1) { edges {
        node { segments { segment { members(first: 1) { edges { node { customerId } } } } } }
    } } } } } }"""
    body = api.gql(deep)
    assert body["data"] is None
    assert "exceeds maximum operation depth of 8" in only_error(body)["message"]


def test_alias_bomb_is_refused(api: Api) -> None:
    aliases = " ".join(f'c{i}: customer(id: "cus_{i:04d}") {{ customerId }}' for i in range(40))
    body = api.gql("{ " + aliases + " }")
    assert body["data"] is None
    assert "aliases found. Allowed: 15" in only_error(body)["message"]


def test_token_limit_is_enforced(api: Api) -> None:
    fields = " ".join(["customerId"] * 2500)
    body = api.gql('{ customer(id: "cus_0001") { ' + fields + " } }")
    assert body["data"] is None
    assert "more than 2000 tokens" in only_error(body)["message"]


def test_syntax_error_is_reported(api: Api) -> None:
    body = api.gql("{ customer(id: ")
    assert "Syntax Error" in only_error(body)["message"]


def test_non_json_body_is_a_400(api: Api) -> None:
    response = api.client.post(
        "/graphql",
        content=b"{not json",
        headers={
            "Authorization": f"Bearer {api.keys['admin']}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 400


def test_internal_errors_are_masked_and_leak_no_trace(
    make_api: Callable[..., Api], fresh_world: Published, caplog: pytest.LogCaptureFixture
) -> None:
    from dagster_project.lib.publish import publish_snapshot

    world = fresh_world.world
    publish_snapshot(world.warehouse, world.serving_dir)
    # A damaged snapshot (a column the API reads is gone) stands in for any internal failure.
    source = snapshot_folder(world.serving_dir, read_current(world.serving_dir))
    broken = world.serving_dir / "20990101T000000000000Z-broken"
    shutil.copytree(source, broken)
    manifest = (broken / "manifest.json").read_text().replace(source.name, broken.name)
    os.chmod(broken / "manifest.json", stat.S_IWUSR | stat.S_IRUSR)
    (broken / "manifest.json").write_text(manifest)
    os.chmod(broken / DATABASE_FILE, stat.S_IWUSR | stat.S_IRUSR)
    con = sqlite3.connect(broken / DATABASE_FILE)
    con.execute("alter table customer_events rename to customer_events_old")
    con.execute("create table customer_events (customer_id text, event_id text)")
    con.commit()
    con.close()
    write_current(world.serving_dir, broken.name)
    api = make_api(fresh_world)
    response = api.post(
        '{ customer(id: "cus_0000") { customerId events(first: 2) { edges { cursor } } } }',
        headers={"X-Request-Id": "req-42"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-42"
    body = response.json()
    error = only_error(body)
    assert error["message"] == INTERNAL_ERROR_MESSAGE
    assert "extensions" not in error
    text = str(body)
    for leak in ("Traceback", "sqlite", "occurred_at", "OperationalError", ".py"):
        assert leak not in text
    assert body["data"] == {"customer": None}  # events is non-null, so the error nulls its parent
    logged = [r for r in caplog.records if "internal error (request req-42)" in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the trace is in the server log only


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'[{"query": "{ segments { name } }"}]', 400, "batches are not accepted"),
        (b'{"variables": {}}', 400, "No GraphQL query found"),
        (b'{"query": "{ segments { name } }", "variables": [1]}', 400, "must be a JSON object"),
        (b'{"query": "{ segments { name } }", "operationName": 3}', 400, "must be a string"),
        (
            b'{"query": "query A { segments { name } }", "operationName": "B"}',
            400,
            'Unknown operation named "B"',
        ),
        (b'{"query": "' + b" " * 300_000 + b'"}', 413, "larger than"),
    ],
)
def test_malformed_http_requests_are_4xx(api: Api, body: bytes, status: int, message: str) -> None:
    response = api.client.post(
        "/graphql",
        content=body,
        headers={
            "Authorization": f"Bearer {api.keys['admin']}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == status
    assert message in response.text


def test_subscriptions_are_refused(api: Api) -> None:
    response = api.post("subscription { customerChanged }")
    assert response.status_code == 400
    assert response.text == "subscriptions are not offered: send a query or a mutation"


def test_a_mutation_the_schema_lacks_is_a_validation_error(api: Api) -> None:
    # decide and recordDecisionOutcome are the only writes (tests/api/test_decide.py)
    body = api.gql("mutation { deleteCustomer(id: 1) }")
    assert body["data"] is None
    assert "Cannot query field 'deleteCustomer' on type 'Mutation'" in body["errors"][0]["message"]


def test_non_json_content_type_is_415(api: Api) -> None:
    response = api.client.post(
        "/graphql",
        content=b"query=%7B%7D",
        headers={
            "Authorization": f"Bearer {api.keys['admin']}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status_code == 415
    assert "application/json" in response.text


def test_too_many_trait_conditions_are_a_clear_error(api: Api) -> None:
    # sent as a variable: the token limit does not apply to variables
    conditions = [{"name": "orderCount", "gte": 0}] * 998
    body = api.gql(
        "query($f: CustomerFilter!) { customers(filter: $f) { edges { cursor } } }",
        {"f": {"traits": conditions}},
    )
    error = only_error(body)
    assert error["message"] == "998 trait conditions; at most 20 are accepted in one filter"
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
