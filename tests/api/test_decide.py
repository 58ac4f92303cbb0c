"""The decision service over HTTP: `decide`, `recordDecisionOutcome`, `customer { decisions }`.

A real `cdp serve` with two workers over the constructed API world plus a few sales, a policy
in cdp.yml and ``CDP_API_NOW`` inside the sales' day (the world's as-of is in the past). Both
workers write one decision log, so the concurrency test is the one that matters for caps: many
simultaneous requests for one customer on several channels and placements, and the sends the
log holds never exceed a cap.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.security import create_key
from dagster_project.lib.publish import publish_snapshot
from decisions.policy import PolicyError
from decisions.store import DecisionStore, default_store_path
from tests.support.api_harness import (
    Published,
    Server,
    api_settings,
    copy_world,
    start_server,
    stop_server,
)
from tests.support.api_world import NOW, customer_id

pytestmark = pytest.mark.e2e

#: Decisions are asked at this instant: inside the sales' day (periods start at 14:00 UTC).
DECIDE_AT = NOW.replace(hour=20)
DAY_START = NOW.replace(hour=14)

#: Keys beside the harness's (its "channel" key is a masked channel team's): one with pii:read
#: and a reader of decisions (a call center showing what the email said).
CHANNEL_KEYS = {
    "channel-pii": ["profile:read", "pii:read", "decisions:write", "decisions:read"],
    "reader": ["profile:read", "decisions:read"],
}

POLICY = """
decisions:
  period_start_hour: 14
  placements:
    daily_email:
      channels: [email, sms, push, web, app, call_center]
      kind: message
      items: 3
      wildcard_slots: 1
      period: 1d
      subject: daily_subject
      blocks: {intro: daily_intro}
    flash:
      channels: [email, sms, push]
      kind: message
      items: 2
      wildcard_slots: 0
      period: 1d
      subject: daily_subject
    reminder:
      channels: [email, sms, push]
      kind: message
      items: 2
      wildcard_slots: 0
      period: 1d
    home_hero:
      channels: [web, app]
      kind: display
      items: 2
      wildcard_slots: 0
      period: 1d
  offers:
    - {name: garden_for_high_value, sales: {categories: [garden]}, segments: [high_value]}
  caps:
    - {name: email_daily, channels: [email], max: 1, window: 24h}
    - {name: messages_daily, channels: [email, sms, push], max: 2, window: 24h}
  exploration: {share: 0.1}
  holdout: {share: 0.0}
  templates:
    daily_subject:
      text: "Hi {{ first_name }}, new in {{ theme }}"
      fallbacks: {first_name: there, theme: "today's sales"}
    daily_intro:
      text: "<p>Hello {{ first_name }}</p>"
      fallbacks: {first_name: friend}
"""

#: (sale id, theme, category, brand, discount, products)
SALES = [
    ("s_shoes", "summer-sale", "shoes", "brand1", 30.0, ["SH1", "SH2", "SH3", "SH4"]),
    ("s_books", "flash-deal", "books", "brand2", 20.0, ["BK1", "BK2", "BK3"]),
    ("s_garden", "brand-spotlight", "garden", "brand3", 40.0, ["GD1", "GD2", "GD3"]),
    ("s_toys", "flash-deal", "toys", None, 25.0, ["TY1", "TY2", "TY3"]),
]
#: Customers with every message consent granted (the caps test and the unsubscribe test).
CONSENTING = (41, 42, 43, 45, 46, 47, 49)
#: A customer with no consent statement at all.
NEVER_ASKED = 44

DECIDE = """
mutation Decide($customer: CustomerRef!, $channel: String!, $placement: String!, $context: JSON) {
  decide(customer: $customer, channel: $channel, placement: $placement, context: $context) {
    decisionId customerId channel placement policyVersion decidedAt expiresAt send reasons
    theme subject blocks isHoldout experiment { experiment arm isHoldout }
    items { product { id name category brand } sale { id title theme discountPercent }
            score propensity isWildcard reasons }
  }
}
"""
OUTCOME = """
mutation Outcome($id: ID!, $channel: String!, $kind: String!, $revenue: Float) {
  recordDecisionOutcome(decisionId: $id, channel: $channel, kind: $kind, revenue: $revenue)
}
"""
RECENT = """
query Recent($id: ID!, $last: Int!) {
  customer(id: $id) { decisions(last: $last) { decisionId channel placement send decidedAt } }
}
"""


def _add_sales_and_consents(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute("set TimeZone = 'UTC'")
        for sale_id, theme, category, brand, discount, products in SALES:
            con.execute(
                "insert into sales (sale_id, title, theme, category, brand, discount_percent, "
                "starts_at, ends_at, item_count) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    sale_id,
                    f"{category.title()} {theme}",
                    theme,
                    category,
                    brand,
                    discount,
                    DAY_START,
                    DAY_START + timedelta(days=1),
                    len(products),
                ],
            )
            for n, product in enumerate(products):
                price = 20.0 + 10 * n
                con.execute(
                    "insert into sale_items (sale_id, product_id, product_name, category, brand, "
                    "regular_price, sale_price) values (?, ?, ?, ?, ?, ?, ?)",
                    [
                        sale_id,
                        product,
                        f"{category} item {n}",
                        category,
                        brand or f"brand{n}",
                        price,
                        price * (1 - discount / 100),
                    ],
                )
        ids = [customer_id(i) for i in CONSENTING]
        marks = ", ".join("?" * len(ids))
        con.execute(
            "update customers set has_email_consent = true, has_sms_consent = true, "
            "has_push_consent = true, has_email_consent_source = 'crm', "
            "has_sms_consent_source = 'crm', has_push_consent_source = 'crm' "
            f"where customer_id in ({marks})",
            ids,
        )
        con.execute(
            "update customers set has_email_consent = false, has_email_consent_source = null, "
            "has_sms_consent = false, has_sms_consent_source = null where customer_id = ?",
            [customer_id(NEVER_ASKED)],
        )


@dataclass
class DecisionWorld:
    home: Path
    keys: dict[str, str]
    audit_dir: Path


@pytest.fixture(scope="module")
def decision_world(published: Published, tmp_path_factory: pytest.TempPathFactory) -> DecisionWorld:
    """The API world with sales, granted consents, a policy and channel keys, published."""
    base = tmp_path_factory.mktemp("decide")
    world = copy_world(published, base / "home")
    _add_sales_and_consents(world.world.warehouse)
    publish_snapshot(world.world.warehouse, world.world.serving_dir)
    (world.home / "cdp.yml").write_text(POLICY, encoding="utf-8")
    keys = dict(published.keys)
    for name, scopes in CHANNEL_KEYS.items():
        keys[name] = create_key(world.home / "api_keys.yml", name, scopes)
    return DecisionWorld(home=world.home, keys=keys, audit_dir=base / "audit")


@pytest.fixture(scope="module")
def server(
    decision_world: DecisionWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """`cdp serve` with two workers deciding at DECIDE_AT."""
    scratch = tmp_path_factory.mktemp("decide_server")
    running = start_server(
        decision_world.home,
        scratch,
        workers=2,
        env={
            "CDP_API_NOW": DECIDE_AT.isoformat(),
            "CDP_API_AUDIT_DIR": str(decision_world.audit_dir),
        },
    )
    try:
        yield running
    finally:
        stop_server(running)


class Client:
    """Posts operations to the server as one of the keys."""

    def __init__(self, server: Server, keys: dict[str, str]) -> None:
        self.url = server.url + "/graphql"
        self.keys = keys
        self.http = httpx.Client(timeout=30)

    def post(self, query: str, variables: dict[str, Any], key: str = "channel") -> dict[str, Any]:
        response = self.http.post(
            self.url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.keys[key]}"},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def decide(
        self,
        customer: int | dict[str, Any],
        channel: str,
        placement: str = "daily_email",
        key: str = "channel",
        context: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        ref = {"id": customer_id(customer)} if isinstance(customer, int) else customer
        body = self.post(
            DECIDE,
            {"customer": ref, "channel": channel, "placement": placement, "context": context},
            key,
        )
        assert "errors" not in body, body
        return body["data"]["decide"]  # type: ignore[no-any-return]


@pytest.fixture
def client(server: Server, decision_world: DecisionWorld) -> Iterator[Client]:
    made = Client(server, decision_world.keys)
    yield made
    made.http.close()


def _products(decision: dict[str, Any]) -> list[str]:
    return [item["product"]["id"] for item in decision["items"]]


# -------------------------------------------------------------------------------------------


def test_decide_returns_themed_items_and_logs_the_decision(client: Client) -> None:
    decision = client.decide(41, "web", context={"page": "/home"})
    assert decision["items"], decision
    assert decision["theme"]
    assert decision["send"] is True
    assert decision["customerId"] == customer_id(41)
    assert decision["placement"] == "daily_email" and decision["channel"] == "web"
    assert decision["expiresAt"].startswith("2025-07-01T14:00:00")
    assert len(decision["policyVersion"]) == 12
    assert sum(item["isWildcard"] for item in decision["items"]) <= 1
    for item in decision["items"]:
        assert 0 < item["propensity"] <= 1
        assert item["sale"]["id"] in {s[0] for s in SALES}
        assert item["product"]["name"]
    logged = client.post(RECENT, {"id": customer_id(41), "last": 5}, key="reader")
    assert decision["decisionId"] in {
        d["decisionId"] for d in logged["data"]["customer"]["decisions"]
    }


def test_email_and_web_get_the_same_decision(client: Client) -> None:
    email = client.decide(42, "email")
    web = client.decide(42, "web")
    call_center = client.decide(
        {"lookup": {"type": "email", "value": "person42@shopmail.com"}}, "call_center"
    )
    assert email["decisionId"] == web["decisionId"] == call_center["decisionId"]
    assert _products(email) == _products(web) == _products(call_center)
    assert email["theme"] == web["theme"]
    assert email["subject"] == web["subject"]
    assert email["channel"] == "email" and web["channel"] == "web"
    # asking again on a channel returns the logged delivery, not a second send
    again = client.decide(42, "email")
    assert (again["decisionId"], again["send"], again["reasons"]) == (
        email["decisionId"],
        email["send"],
        email["reasons"],
    )


def test_no_consent_recorded_means_no_message(client: Client) -> None:
    decision = client.decide(NEVER_ASKED, "email")
    assert decision["send"] is False
    assert "consent:missing:email" in decision["reasons"]
    # the display channels still show the same items (no consent needed to show)
    web = client.decide(NEVER_ASKED, "web")
    assert web["decisionId"] == decision["decisionId"]
    assert "consent:missing:email" not in web["reasons"]


@pytest.mark.parametrize(
    ("variables", "code", "says"),
    [
        (
            {"customer": {"id": customer_id(3)}, "channel": "email", "placement": "nope"},
            "BAD_USER_INPUT",
            ["unknown placement 'nope'", "daily_email", "home_hero"],
        ),
        (
            {"customer": {"id": customer_id(3)}, "channel": "email", "placement": "home_hero"},
            "BAD_USER_INPUT",
            ["channel 'email' cannot ask for placement 'home_hero'", "web"],
        ),
        (
            {"customer": {"id": "cus_nobody"}, "channel": "web", "placement": "home_hero"},
            "NOT_FOUND",
            ["no customer matches"],
        ),
        (
            {"customer": {}, "channel": "web", "placement": "home_hero"},
            "BAD_USER_INPUT",
            ["exactly one of `id` or `lookup`"],
        ),
        (
            {
                "customer": {"lookup": {"type": "email", "value": "not-an-email"}},
                "channel": "web",
                "placement": "home_hero",
            },
            "BAD_USER_INPUT",
            ["not a valid email"],
        ),
        (
            {
                "customer": {"id": customer_id(3)},
                "channel": "web",
                "placement": "home_hero",
                "context": ["a", "list"],
            },
            "BAD_USER_INPUT",
            ["`context` must be a JSON object"],
        ),
    ],
)
def test_errors_a_channel_can_cause_name_the_problem(
    client: Client, variables: dict[str, Any], code: str, says: list[str]
) -> None:
    body = client.post(DECIDE, {"context": None, **variables})
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == code, error
    for text in says:
        assert text in error["message"], error["message"]


def test_scopes_guard_deciding_and_reading_decisions(client: Client) -> None:
    refused = client.post(
        DECIDE,
        {"customer": {"id": customer_id(3)}, "channel": "web", "placement": "home_hero"},
        key="web",  # profile:read, segments:read
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "decisions:write" in refused["errors"][0]["message"]
    hidden = client.post(RECENT, {"id": customer_id(3), "last": 5}, key="web")
    assert hidden["errors"][0]["extensions"]["requiredScope"] == "decisions:read"
    # admin implies both
    assert client.decide(3, "web", "home_hero", key="admin")["items"]


def _audit(world: DecisionWorld) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(world.audit_dir.glob("pii-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_the_subject_is_masked_without_pii_read_and_audited_with_it(
    client: Client, decision_world: DecisionWorld
) -> None:
    masked = client.decide(45, "web", key="channel")
    assert masked["subject"].startswith("Hi there, new in ")
    assert "First45" not in json.dumps(masked)
    assert masked["blocks"] == {"intro": "<p>Hello friend</p>"}
    assert not [line for line in _audit(decision_world) if line["customer_id"] == customer_id(45)]
    revealed = client.decide(45, "app", key="channel-pii")
    assert revealed["decisionId"] == masked["decisionId"]
    assert revealed["subject"].startswith("Hi First45, new in ")
    assert revealed["blocks"] == {"intro": "<p>Hello First45</p>"}
    lines = [line for line in _audit(decision_world) if line["customer_id"] == customer_id(45)]
    assert lines and lines[-1]["key"] == "channel-pii"
    assert {"Decision.subject", "Decision.blocks"} <= set(lines[-1]["fields"])
    # the log read back through customer { decisions } is masked the same way
    logged = client.post(
        "query($id: ID!) { customer(id: $id) { decisions(last: 5) { subject } } }",
        {"id": customer_id(45)},
        key="reader",
    )
    subjects = {d["subject"] for d in logged["data"]["customer"]["decisions"]}
    assert subjects and all("First45" not in s for s in subjects)


def test_concurrent_requests_from_several_channels_never_exceed_the_caps(
    client: Client, decision_world: DecisionWorld, server: Server
) -> None:
    target = 46
    calls = [
        (channel, placement)
        for _ in range(6)
        for channel in ("email", "sms", "push")
        for placement in ("daily_email", "flash", "reminder")
    ]
    barrier = threading.Barrier(len(calls) // 3)
    keys = decision_world.keys

    def call(args: tuple[str, str]) -> dict[str, Any]:
        channel, placement = args
        with httpx.Client(timeout=30) as http:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)
            response = http.post(
                server.url + "/graphql",
                json={
                    "query": DECIDE,
                    "variables": {
                        "customer": {"id": customer_id(target)},
                        "channel": channel,
                        "placement": placement,
                    },
                },
                headers={"Authorization": f"Bearer {keys['channel']}"},
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return body["data"]["decide"]  # type: ignore[no-any-return]

    with ThreadPoolExecutor(max_workers=len(calls) // 3) as pool:
        answers = list(pool.map(call, calls))
    # one answer per (placement, channel), however many times and from whichever worker asked
    by_delivery: dict[tuple[str, str], set[tuple[str, bool]]] = {}
    for (channel, placement), answer in zip(calls, answers, strict=True):
        by_delivery.setdefault((placement, channel), set()).add(
            (answer["decisionId"], answer["send"])
        )
    assert all(len(seen) == 1 for seen in by_delivery.values()), by_delivery
    sent = Counter(channel for (_, channel), seen in by_delivery.items() if next(iter(seen))[1])
    assert 1 <= sum(sent.values()) <= 2, sent  # messages_daily: 2 a day on email, sms, push
    assert sent["email"] <= 1, sent  # email_daily
    blocked = [a for a in answers if not a["send"]]
    assert all(any(r.startswith("cap:") for r in a["reasons"]) for a in blocked), blocked
    # the log agrees (both workers wrote to it)
    with DecisionStore.open(default_store_path(decision_world.home)) as store:
        logged = store.recent([customer_id(target)], 1000)
    sends = Counter(d.channel for d in logged if d.send)
    assert sum(sends.values()) <= 2 and sends["email"] <= 1, sends
    assert len(logged) == len(by_delivery)


def test_an_unsubscribe_stops_the_next_email_at_once(client: Client) -> None:
    first = client.decide(47, "email", "daily_email")
    assert first["send"] is True, first
    recorded = client.post(
        OUTCOME, {"id": first["decisionId"], "channel": "email", "kind": "unsubscribe"}
    )
    assert recorded == {"data": {"recordDecisionOutcome": True}}
    repeat = client.post(
        OUTCOME, {"id": first["decisionId"], "channel": "email", "kind": "unsubscribe"}
    )
    assert repeat == {"data": {"recordDecisionOutcome": False}}
    after = client.decide(47, "email", "flash")
    assert after["send"] is False
    assert "consent:withdrawn:email" in after["reasons"]
    # sms consent is untouched
    assert client.decide(47, "sms", "flash")["send"] is True


def test_outcome_errors_name_the_problem(client: Client) -> None:
    decision = client.decide(49, "web", "home_hero")
    unknown_kind = client.post(
        OUTCOME, {"id": decision["decisionId"], "channel": "web", "kind": "teleport"}
    )
    assert "unknown outcome kind 'teleport'" in unknown_kind["errors"][0]["message"]
    unknown_id = client.post(OUTCOME, {"id": "d_nope", "channel": "web", "kind": "click"})
    assert unknown_id["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    purchase = client.post(
        OUTCOME,
        {"id": decision["decisionId"], "channel": "web", "kind": "purchase", "revenue": 42.5},
    )
    assert purchase == {"data": {"recordDecisionOutcome": True}}


def test_decisions_come_back_newest_first(client: Client) -> None:
    order = [("web", "home_hero"), ("app", "home_hero"), ("email", "daily_email")]
    made = [client.decide(43, channel, placement) for channel, placement in order]
    logged = client.post(RECENT, {"id": customer_id(43), "last": 5}, key="reader")
    decisions = logged["data"]["customer"]["decisions"]
    assert [(d["channel"], d["placement"]) for d in decisions] == list(reversed(order))
    assert decisions[0]["decisionId"] == made[-1]["decisionId"]
    two = client.post(RECENT, {"id": customer_id(43), "last": 2}, key="reader")
    assert len(two["data"]["customer"]["decisions"]) == 2
    too_many = client.post(RECENT, {"id": customer_id(43), "last": 500}, key="reader")
    assert "`last` must be between 1 and 50" in too_many["errors"][0]["message"]


def test_metrics_count_decisions_by_placement_channel_and_reason(
    client: Client, server: Server, decision_world: DecisionWorld
) -> None:
    client.decide(NEVER_ASKED, "email", "reminder")
    text = httpx.get(
        server.url + "/metrics",
        headers={"Authorization": f"Bearer {decision_world.keys['admin']}"},
    ).text
    assert 'cdp_api_decisions_total{channel="email",placement="reminder",sent="false"}' in text
    assert 'cdp_api_decision_reasons_total{reason="consent:missing:email"}' in text


# -- start-up --------------------------------------------------------------------------------


def test_a_policy_naming_an_unknown_segment_stops_the_app_naming_the_key(
    decision_world: DecisionWorld, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(decision_world.home / "serving", home / "serving", symlinks=True)
    shutil.copy(decision_world.home / "api_keys.yml", home / "api_keys.yml")
    config = tmp_path / "cdp.yml"
    config.write_text(POLICY.replace("segments: [high_value]", "segments: [vipz]"))
    app = create_app(api_settings(home, tmp_path, config=config))
    with (
        pytest.raises(
            PolicyError, match=r"decisions\.offers\.0\.segments\.0: unknown segment 'vipz'"
        ),
        TestClient(app),
    ):
        pass


def test_an_invalid_policy_fails_at_create_app(tmp_path: Path) -> None:
    config = tmp_path / "cdp.yml"
    config.write_text(POLICY.replace("max: 1, window: 24h", "max: -1, window: 24h"))
    with pytest.raises(PolicyError, match=r"decisions\.caps\.0\.max"):
        create_app(api_settings(tmp_path / "home", tmp_path, config=config))


def test_without_cdp_yml_the_default_policy_serves(
    decision_world: DecisionWorld, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(decision_world.home / "serving", home / "serving", symlinks=True)
    shutil.copy(decision_world.home / "api_keys.yml", home / "api_keys.yml")
    settings = api_settings(home, tmp_path, api_now=DECIDE_AT)
    with TestClient(create_app(settings)) as test_client:
        response = test_client.post(
            "/graphql",
            json={
                "query": DECIDE,
                "variables": {
                    "customer": {"id": customer_id(41)},
                    "channel": "web",
                    "placement": "daily_email",
                },
            },
            headers={"Authorization": f"Bearer {decision_world.keys['channel']}"},
        )
    body = response.json()
    assert "errors" not in body, body
    assert body["data"]["decide"]["items"]
    assert (home / "decisions" / "decisions.sqlite").is_file()
