"""A real uvicorn server (``cdp serve``) in a subprocess, over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dagster_project.lib.publish import publish_snapshot
from tests.support.api_harness import Published, Server, copy_world, start_server, stop_server
from tests.support.api_world import customer_id, email, is_member

pytestmark = pytest.mark.e2e

LOOKUP = """query Lookup($t: String!, $v: String!) { customer(lookup: {type: $t, value: $v}) {
    customerId email } }"""


def post(
    client: httpx.Client, server: Server, key: str, query: str, variables: dict | None = None
) -> dict:
    response = client.post(
        server.url + "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def served(
    published: Published, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Published, Server, Path]]:
    """One two-worker server for the module (starting one costs seconds); the republish test
    runs last because it changes the world."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    world = copy_world(published, tmp_path / "home")
    w = world.world
    publish_snapshot(w.warehouse, w.serving_dir)
    server = start_server(w.home, tmp_path, workers=2)
    try:
        yield world, server, tmp_path
    finally:
        stop_server(server)


def test_lookups_paging_masking_and_audit_over_http(
    served: tuple[Published, Server, Path],
) -> None:
    world, server, tmp_path = served
    keys = world.keys
    with httpx.Client(timeout=10) as client:
        assert client.get(server.url + "/health").json()["status"] == "ok"
        for type_, value, expected in [
            ("email", " PERSON11@shopmail.com", 11),
            ("phone", "(415) 555-0011", 11),
            ("account_id", "ACC-11", 11),
            ("loyalty_id", "L000011", 11),
            ("cookie_id", "ck_11", 11),
            ("alias_customer_id", "cus_old_0001", 1),
        ]:
            body = post(client, server, keys["pii"], LOOKUP, {"t": type_, "v": value})
            assert body["data"]["customer"]["customerId"] == customer_id(expected), type_
        masked = post(client, server, keys["web"], LOOKUP, {"t": "email", "v": email(12)})
        assert masked["data"]["customer"] == {"customerId": customer_id(12), "email": "***"}
        after, members = None, []
        while True:
            page = post(
                client,
                server,
                keys["segments"],
                'query($a: String) { segment(name: "browsers") { members(first: 30, '
                "after: $a) { edges { customerId } pageInfo { hasNextPage endCursor } } } }",
                {"a": after},
            )["data"]["segment"]["members"]
            members += [e["customerId"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert members == [customer_id(i) for i in range(300) if is_member("browsers", i)]
        assert (
            client.post(
                server.url + "/graphql", json={"query": "{ segments { name } }"}
            ).status_code
            == 401
        )
    audit = [
        json.loads(line)
        for path in (tmp_path / "audit").glob("pii-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    # six pii lookups of two customers, each revealing the email; the web key revealed nothing
    assert sorted((a["key"], a["customer_id"]) for a in audit) == sorted(
        [("pii", customer_id(11))] * 5 + [("pii", customer_id(1))]
    )
    assert all(a["fields"] == ["Customer.email"] and a["operation"] == "Lookup" for a in audit)


def metrics_text(client: httpx.Client, server: Server, key: str) -> str:
    response = client.get(server.url + "/metrics", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.text


def lookup_count(client: httpx.Client, server: Server, key: str) -> float:
    text = metrics_text(client, server, key)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cdp_api_graphql_operations_total" and sample.labels == {
                "operation": "Lookup",
                "status": "ok",
            }:
                return sample.value
    return 0.0


def test_metrics_aggregate_both_workers(served: tuple[Published, Server, Path]) -> None:
    world, server, _ = served
    with httpx.Client(timeout=10) as client:
        before = lookup_count(client, server, world.keys["admin"])
    for i in range(40):  # a new connection each time: the kernel spreads them over workers
        with httpx.Client(timeout=10) as client:
            post(client, server, world.keys["profile"], LOOKUP, {"t": "email", "v": email(i)})
    with httpx.Client(timeout=10) as client:
        assert lookup_count(client, server, world.keys["admin"]) - before == 40
        text = metrics_text(client, server, world.keys["admin"])
    assert "cdp_api_snapshot_info{" in text
    assert "cdp_api_snapshot_age_seconds " in text


def test_republishing_while_requests_run_fails_no_request(
    served: tuple[Published, Server, Path],
) -> None:
    world, server, _ = served
    before = httpx.get(server.url + "/health").json()["snapshot_id"]
    stop = threading.Event()
    outcomes: list[str] = []
    problems: list[str] = []

    def hammer(offset: int) -> None:
        with httpx.Client(timeout=10) as client:
            i = offset
            while not stop.is_set():
                i = (i + 7) % 298
                try:
                    body = post(
                        client,
                        server,
                        world.keys["admin"],
                        '{ snapshot { snapshotId } customer(id: "cus_0002") { city } '
                        f'other: customer(lookup: {{type: "email", value: "{email(i)}"}})'
                        " { customerId traits { orderCount } segments { name } } }",
                    )
                except (AssertionError, httpx.HTTPError) as exc:
                    problems.append(repr(exc))
                    continue
                if "errors" in body or body["data"]["other"] is None:
                    problems.append(json.dumps(body)[:300])
                outcomes.append(body["data"]["customer"]["city"])

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    w = world.world
    con = duckdb.connect(str(w.warehouse))
    con.execute("update customers set city = 'Oakland' where customer_id = 'cus_0002'")
    con.close()
    published = [publish_snapshot(w.warehouse, w.serving_dir, keep=2) for _ in range(3)]
    latest = published[-1].snapshot_id
    deadline = time.monotonic() + 10
    while httpx.get(server.url + "/health").json()["snapshot_id"] != latest:
        assert time.monotonic() < deadline, "the server did not switch"
        time.sleep(0.1)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert problems == []
    assert len(outcomes) > 50
    assert outcomes[0] == "San Francisco" and outcomes[-1] == "Oakland"
    assert before != latest
    with httpx.Client(timeout=10) as client:
        for _ in range(4):  # every worker serves the new snapshot
            body = post(client, server, world.keys["pii"], "{ snapshot { snapshotId } }")
            assert body["data"]["snapshot"]["snapshotId"] == latest
            client.close()
            client = httpx.Client(timeout=10)
