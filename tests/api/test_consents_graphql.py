"""``customer { consents { ... history } }`` from the consent marts, and decisions reading the
same resolved state: latest statement wins, any channel, missing means no."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest

from dagster_project.lib.publish import publish_snapshot
from decisions.facts import load_facts
from decisions.service import refusal
from snapshots import DATABASE_FILE, read_current, snapshot_folder
from tests.support.api_harness import Api, Published
from tests.support.api_world import customer_id

GRANTED_AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WITHDRAWN_AT = datetime(2025, 6, 20, 9, 30, tzinfo=UTC)
WITHDRAWING = 1  # api_world: email consent from crm (1 % 4 != 0)
UNSTATED = 2  # no row in the consent marts: served from the golden record's columns
QUERY = """query($id: ID!, $last: Int!) { customer(id: $id) {
  consents { channel isGranted source changedAt
             history(last: $last) { isGranted source changedAt } } } }"""

#: (customer, channel, is_granted, source, changed_at), oldest first per channel
STATEMENTS = [
    (WITHDRAWING, "email", True, "crm", GRANTED_AT),
    (WITHDRAWING, "email", False, "event:site:m-1", WITHDRAWN_AT),
    (WITHDRAWING, "whatsapp", True, "consents", GRANTED_AT),
]


def _add_consents(warehouse: Any) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute("set TimeZone = 'UTC'")
        numbers: dict[tuple[int, str], int] = {}
        for i, channel, granted, source, at in STATEMENTS:
            number = numbers[(i, channel)] = numbers.get((i, channel), 0) + 1
            con.execute(
                "insert into customer_consent_history (consent_statement_id, customer_id, "
                "channel, is_granted, source, changed_at, trust_rank, statement_number) "
                "values (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    f"s{i}{channel}{number}",
                    customer_id(i),
                    channel,
                    granted,
                    source,
                    at,
                    100,
                    number,
                ],
            )
        latest: dict[tuple[int, str], tuple[bool, str, datetime]] = {}
        for i, channel, granted, source, at in STATEMENTS:
            latest[(i, channel)] = (granted, source, at)
        for (i, channel), (granted, source, at) in latest.items():
            con.execute(
                "insert into customer_consents (customer_id, channel, is_granted, source, "
                "changed_at, statement_count) values (?, ?, ?, ?, ?, ?)",
                [customer_id(i), channel, granted, source, at, numbers[(i, channel)]],
            )


@pytest.fixture
def world(fresh_world: Published) -> Published:
    _add_consents(fresh_world.world.warehouse)
    publish_snapshot(fresh_world.world.warehouse, fresh_world.world.serving_dir)
    return fresh_world


@pytest.fixture
def consent_api(make_api: Callable[..., Api], world: Published) -> Api:
    return make_api(world)


def _consents(api: Api, i: int, last: int = 20) -> dict[str, dict[str, Any]]:
    body = api.gql(QUERY, {"id": customer_id(i), "last": last})
    assert "errors" not in body, body
    return {c["channel"]: c for c in body["data"]["customer"]["consents"]}


def test_the_latest_statement_is_served_with_its_history_newest_first(consent_api: Api) -> None:
    consents = _consents(consent_api, WITHDRAWING)
    assert list(consents) == ["email", "sms", "push", "whatsapp"]
    email = consents["email"]
    assert (email["isGranted"], email["source"]) == (False, "event:site:m-1")
    assert email["changedAt"] == "2025-06-20T09:30:00.000000Z"
    assert email["history"] == [
        {
            "isGranted": False,
            "source": "event:site:m-1",
            "changedAt": "2025-06-20T09:30:00.000000Z",
        },
        {"isGranted": True, "source": "crm", "changedAt": "2025-03-01T12:00:00.000000Z"},
    ]
    # a channel never stated is no consent, with no source, time or history
    assert consents["sms"] == {
        "channel": "sms",
        "isGranted": False,
        "source": None,
        "changedAt": None,
        "history": [],
    }
    assert consents["whatsapp"]["isGranted"] is True
    assert [h["source"] for h in _consents(consent_api, WITHDRAWING, 1)["email"]["history"]] == [
        "event:site:m-1"
    ]


def test_a_customer_without_statements_in_the_marts_reads_the_golden_record(
    consent_api: Api,
) -> None:
    consents = _consents(consent_api, UNSTATED)
    assert [(c, v["isGranted"], v["source"]) for c, v in consents.items()] == [
        ("email", True, "crm"),  # api_world: email consent unless i % 4 == 0
        ("sms", False, None),
        ("push", False, None),
    ]
    assert all(v["history"] == [] for v in consents.values())


def test_history_bounds_are_client_errors(consent_api: Api) -> None:
    body = consent_api.gql(QUERY, {"id": customer_id(WITHDRAWING), "last": 0})
    assert body["errors"][0]["message"] == "`last` must be between 1 and 100"


def test_decisions_read_the_same_resolved_state(world: Published) -> None:
    serving = world.world.serving_dir
    conn = sqlite3.connect(
        f"file:{snapshot_folder(serving, read_current(serving)) / DATABASE_FILE}?mode=ro", uri=True
    )
    try:
        facts = load_facts(conn, [customer_id(WITHDRAWING), customer_id(UNSTATED)])
    finally:
        conn.close()
    withdrawn = facts[customer_id(WITHDRAWING)]
    assert withdrawn.consents == {"email": False, "sms": None, "push": None, "whatsapp": True}
    assert refusal(withdrawn, "email") == "consent:denied:email"
    assert refusal(withdrawn, "sms") == "consent:missing:sms"
    unstated = facts[customer_id(UNSTATED)]
    assert unstated.consents["email"] is True and refusal(unstated, "email") is None
