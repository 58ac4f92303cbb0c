"""``Customer.live`` and the live events in ``Customer.events``, over HTTP.

A real uvicorn server (``cdp serve``) over a published snapshot, a real event log and the real
stream processor running beside it: an appended event is read back through GraphQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from dagster_project.lib.publish import publish_snapshot
from events.config import LiveProfileSettings
from events.live import apply_event
from events.log import SqliteEventLog
from events.processor import StreamProcessor
from events.state import StateStore
from events.types import EventKind, LoggedEvent, NewEvent, ProductLine
from tests.support.api_harness import Published, Server, copy_world, start_server, stop_server
from tests.support.api_world import ALIAS, customer_id

pytestmark = pytest.mark.e2e

LIVE = """query($id: ID!) { customer(id: $id) { customerId live {
    lastSeenAt isProvisional
    recentProducts { product { id name } viewedAt }
    cart { product { id name } quantity }
    counters { kind count } } } }"""
EVENTS = """query($id: ID!, $first: Int!, $after: String) { customer(id: $id) {
    events(first: $first, after: $after) {
        edges { cursor node { eventId eventType productId source occurredAt } }
        pageInfo { hasNextPage endCursor } } } }"""


@dataclass
class Live:
    """A served world with its event log and a running processor."""

    world: Published
    server: Server
    log: SqliteEventLog
    client: httpx.Client

    def post(self, query: str, variables: dict[str, Any], key: str = "pii") -> dict[str, Any]:
        response = self.client.post(
            self.server.url + "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.world.keys[key]}"},
        )
        assert response.status_code == 200, response.text
        return response.json()


def _event(n: int, kind: EventKind, user: str, *products: ProductLine) -> NewEvent:
    now = datetime.now(UTC)
    return NewEvent(
        message_id=f"live-{n}",
        source="web",
        type="track",
        kind=kind,
        event=None,
        occurred_at=now + timedelta(microseconds=n),
        received_at=now,
        anonymous_id=f"anon-{user}",
        user_id=user,
        products=products,
        payload_sha256=f"sha-{n}",
    )


@pytest.fixture(scope="module")
def live(published: Published, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp_path = tmp_path_factory.mktemp("live")
    world = copy_world(published, tmp_path / "home")
    w = world.world
    with duckdb.connect(str(w.warehouse)) as con:  # a catalogue, for the product names
        con.execute(
            "insert into products (product_id, product_name, category, brand, price, "
            "is_in_range) values ('P1', 'Blue Lamp', 'home', 'Lumo', 30.0, true), "
            "('P2', 'Oak Desk', 'home', 'Woody', 250.0, true)"
        )
    publish_snapshot(w.warehouse, w.serving_dir)
    server = start_server(w.home, tmp_path)
    log = SqliteEventLog(w.home / "events" / "log.sqlite")
    processor = StreamProcessor.from_home(w.home, log=log)
    stop = threading.Event()
    thread = threading.Thread(target=processor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        with httpx.Client(timeout=10) as client:
            yield Live(world, server, log, client)
    finally:
        stop.set()
        thread.join(timeout=10)
        processor.close()
        log.close()
        stop_server(server)


def _wait_for(live: Live, customer: str, predicate: Any, timeout: float = 5.0) -> float:
    """Seconds until the customer's live profile satisfies ``predicate``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        body = live.post(LIVE, {"id": customer})
        if predicate(body["data"]["customer"]["live"]):
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"live profile of {customer} never matched: {body}")


def test_an_accepted_event_shows_in_the_live_profile_within_a_second(live: Live) -> None:
    customer = customer_id(7)  # account ACC-7 in the snapshot
    assert live.post(LIVE, {"id": customer})["data"]["customer"]["live"] is None
    live.log.append(
        [
            _event(1, EventKind.PRODUCT_VIEW, "ACC-7", ProductLine("P1")),
            _event(2, EventKind.PRODUCT_VIEW, "ACC-7", ProductLine("P9")),
            _event(3, EventKind.ADD_TO_CART, "ACC-7", ProductLine("P2", 2, 250.0)),
        ]
    )
    elapsed = _wait_for(live, customer, lambda p: p is not None and p["cart"])
    print(f"accepted -> visible over GraphQL: {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0, f"visible after {elapsed:.3f} s"

    profile = live.post(LIVE, {"id": customer})["data"]["customer"]["live"]
    assert profile["isProvisional"] is False
    assert profile["lastSeenAt"].endswith("Z")
    # P9 is not in the snapshot's catalogue yet: its id, no name
    assert [v["product"] for v in profile["recentProducts"]] == [
        {"id": "P9", "name": None},
        {"id": "P1", "name": "Blue Lamp"},
    ]
    assert profile["cart"] == [{"product": {"id": "P2", "name": "Oak Desk"}, "quantity": 2}]
    counters = {c["kind"]: c["count"] for c in profile["counters"]}
    assert counters["product_view"] == 2 and counters["add_to_cart"] == 1


def test_live_events_lead_the_timeline_and_page_into_the_snapshot(live: Live) -> None:
    customer = customer_id(9)
    live.log.append(
        [
            _event(11, EventKind.PRODUCT_VIEW, "ACC-9", ProductLine("P1")),
            _event(12, EventKind.ADD_TO_CART, "ACC-9", ProductLine("P1", 1, 30.0)),
        ]
    )
    _wait_for(live, customer, lambda p: p is not None and p["cart"])

    seen: list[dict[str, Any]] = []
    after = None
    while True:
        body = live.post(EVENTS, {"id": customer, "first": 1, "after": after})
        events = body["data"]["customer"]["events"]
        seen += [edge["node"] for edge in events["edges"]]
        if not events["pageInfo"]["hasNextPage"]:
            break
        after = events["pageInfo"]["endCursor"]
    ids = [e["eventId"] for e in seen]
    # newest first: the two live events (the next batch run gives them these ids), then the
    # snapshot's two; each once across pages
    assert ids[:2] == ["realtime_events:live-12", "realtime_events:live-11"]
    assert [e["eventType"] for e in seen[:2]] == ["add_to_cart", "product_view"]
    assert len(ids) == len(set(ids)) == 4
    assert all(e["source"] == "web_events" or e["source"] == "orders" for e in seen[2:])
    times = [e["occurredAt"] for e in seen]
    assert times == sorted(times, reverse=True)


def test_live_follows_scopes_and_masking(live: Live) -> None:
    customer = customer_id(7)
    _wait_for(live, customer, lambda p: p is not None)
    # profile:read without pii:read: the live profile holds no personal data, all shown
    body = live.post(LIVE, {"id": customer}, key="profile")
    assert body["data"]["customer"]["live"]["cart"][0]["product"]["name"] == "Oak Desk"
    # event ids are personal identifiers (source keys may embed personal data): tokens
    masked = live.post(EVENTS, {"id": customer, "first": 1, "after": None}, key="profile")
    node = masked["data"]["customer"]["events"]["edges"][0]["node"]
    assert node["eventType"] == "add_to_cart" and "live-3" not in node["eventId"]
    # a key without profile:read does not see the live profile
    refused = live.post(LIVE, {"id": customer}, key="segments")
    assert refused.get("errors"), refused


def test_live_data_under_a_merged_id_belongs_to_the_surviving_customer(live: Live) -> None:
    """A provisional id the batch run merged into customer 1 (the snapshot lists it as an
    alias): what the live path recorded under it shows on customer 1."""
    merged = ALIAS[0]
    viewed = LoggedEvent(
        **{**_event(21, EventKind.PRODUCT_VIEW, "x", ProductLine("P2")).__dict__, "offset": 10**9}
    )
    store = StateStore(live.world.home / "events" / "state.sqlite")
    try:
        with store.transaction() as conn:
            apply_event(conn, merged, True, viewed, LiveProfileSettings())
    finally:
        store.close()
    body = live.post(LIVE, {"id": customer_id(1)})
    profile = body["data"]["customer"]["live"]
    assert profile["recentProducts"][0]["product"] == {"id": "P2", "name": "Oak Desk"}
    assert profile["isProvisional"] is True  # only the provisional id has live data so far


def test_a_customer_the_live_path_never_saw_has_no_live_profile(live: Live) -> None:
    body = live.post(LIVE, {"id": customer_id(20)})
    assert body["data"]["customer"] == {"customerId": customer_id(20), "live": None}


def test_the_api_starts_and_serves_without_any_live_state(
    published: Published, tmp_path: Path
) -> None:
    world = copy_world(published, tmp_path / "home")
    publish_snapshot(world.world.warehouse, world.world.serving_dir)
    server = start_server(world.home, tmp_path)
    try:
        with httpx.Client(timeout=10) as client:
            response = client.post(
                server.url + "/graphql",
                json={"query": LIVE, "variables": {"id": customer_id(3)}},
                headers={"Authorization": f"Bearer {world.keys['pii']}"},
            )
        assert response.json() == {
            "data": {"customer": {"customerId": customer_id(3), "live": None}}
        }
    finally:
        stop_server(server)
    assert not (world.home / "events" / "state.sqlite").exists()
