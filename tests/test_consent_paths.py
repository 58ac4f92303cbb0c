"""Issue 15's consent done-when: a withdrawal sent in real time holds on every path that sends.

A real ``cdp serve`` (HTTP intake and GraphQL ``decide``) and a real ``cdp stream`` processor
over a published world with a running sale: the person withdraws email consent through the
Segment intake; then ``decide`` on email refuses (``consent:withdrawn:email``) within a second,
the daily batch export leaves them out, and a price drop on a product they viewed puts no email
in the outbox; the web channel and a customer who did not withdraw are unaffected.
"""

from __future__ import annotations

import copy
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest

from dagster_project.lib.decision_batch import run_batch
from dagster_project.lib.publish import publish_snapshot
from decisions import DecisionService, load_policy
from decisions.store import DecisionStore, default_store_path
from events.state import state_path
from events.types import CONSENT_EVENT_NAME
from events.write_keys import create_write_key
from snapshots import DATABASE_FILE, read_current, snapshot_folder
from tests.support.api_harness import Server, make_keys, start_server, stop_server
from tests.support.api_world import customer_id, email
from tests.support.stream_world import CONFIG, PRODUCTS, make_world

pytestmark = pytest.mark.e2e

WITHDRAWING = 1  # api_world: email consent unless i % 4 == 0; sms consent when i % 5 == 0
BYSTANDER = 5  # consented to email and sms, withdraws nothing
DECIDE = """
mutation Decide($customer: CustomerRef!, $channel: String!, $placement: String!) {
  decide(customer: $customer, channel: $channel, placement: $placement) {
    decisionId customerId channel send reasons
  }
}
"""


@dataclass
class Running:
    home: Path
    server: Server
    stream: subprocess.Popen[bytes]
    keys: dict[str, str]
    write_key: str

    def track(self, payload: dict[str, Any]) -> None:
        response = httpx.post(
            self.server.url + "/v1/track", json=payload, auth=(self.write_key, ""), timeout=10
        )
        assert response.status_code == 200, response.text

    def decide(self, i: int, channel: str) -> dict[str, Any]:
        response = httpx.post(
            self.server.url + "/graphql",
            json={
                "query": DECIDE,
                "variables": {
                    "customer": {"id": customer_id(i)},
                    "channel": channel,
                    "placement": "daily_email",
                },
            },
            headers={"Authorization": f"Bearer {self.keys['channel']}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return body["data"]["decide"]  # type: ignore[no-any-return]


def _add_sale(warehouse: Path, now: datetime) -> None:
    """A sale over every product of the world, running now (so daily_email has items)."""
    con = duckdb.connect(str(warehouse))
    try:
        starts = now - timedelta(hours=2)
        con.execute(
            "insert into sales (sale_id, title, theme, category, brand, discount_percent, "
            "starts_at, ends_at, item_count) values ('S1', 'Everything 20% off', 'clearance', "
            "'Footwear', null, 20, ?, ?, ?)",
            [starts, starts + timedelta(days=2), len(PRODUCTS)],
        )
        for product_id, (name, category, brand, price) in PRODUCTS.items():
            con.execute(
                "insert into sale_items values ('S1', ?, ?, ?, ?, ?, ?)",
                [product_id, name, category, brand, price, round(price * 0.8, 2)],
            )
    finally:
        con.close()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    config = copy.deepcopy(CONFIG)
    # the bystander gets the daily email and then the price drop on the same day
    config["decisions"]["frequency"] = {"enabled": False}
    world = make_world(tmp_path / "home", config)
    _add_sale(world.warehouse, datetime.now(UTC))
    publish_snapshot(world.warehouse, world.serving_dir)
    keys = make_keys(world.home)
    write_key = create_write_key(world.home / "write_keys.yml", "site")
    server = start_server(world.home, tmp_path)
    log = tmp_path / "stream.log"
    with open(log, "wb") as handle:
        stream = subprocess.Popen(
            [sys.executable, "-c", "from dagster_project.cli.main import app; app()", "stream"],
            env={**os.environ, "CDP_HOME": str(world.home)},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Running(world.home, server, stream, keys, write_key)
    finally:
        os.killpg(stream.pid, signal.SIGTERM)
        stream.wait(timeout=30)
        stop_server(server)


def _outbox(home: Path) -> list[tuple[str, str, str]]:
    """(customer_id, channel, trigger_name) of every outbox message."""
    path = state_path(home)
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("select customer_id, channel, trigger_name from outbox").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _views(home: Path) -> list[tuple[str, str]]:
    """(customer_id, product_id) of the live profile's product views."""
    path = state_path(home)
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("select customer_id, product_id from live_product_views").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _firings(home: Path) -> list[tuple[str, str, int, str]]:
    """(trigger, customer, sent, reasons) of every firing, for failure messages."""
    conn = sqlite3.connect(f"file:{state_path(home)}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(
            "select trigger_name, customer_id, sent, reasons from trigger_firings"
        ).fetchall()
    finally:
        conn.close()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_a_real_time_withdrawal_holds_on_decide_the_batch_and_triggers(
    running: Running,
) -> None:
    target, other = customer_id(WITHDRAWING), customer_id(BYSTANDER)
    # both view P1 (a price drop on it will fire for both); the processor is up when it has
    for i in (WITHDRAWING, BYSTANDER):
        running.track(
            {
                "type": "track",
                "event": "Product Viewed",
                "userId": f"ACC-{i}",
                "properties": {"product_id": "P1"},
            }
        )
    _wait(
        lambda: len(_views(running.home)) == 2,
        60,  # the processor imports the identity library on start: allow a busy machine
        "the stream processor never applied the product views",
    )
    # the web decision before the withdrawal (also warms the API's decision engine up)
    before = running.decide(WITHDRAWING, "web")
    assert before["send"]
    with DecisionStore.open(default_store_path(running.home)) as store:
        sent_at = time.perf_counter()
        running.track(
            {
                "type": "track",
                "event": CONSENT_EVENT_NAME,
                "userId": f"ACC-{WITHDRAWING}",
                "context": {"traits": {"email": email(WITHDRAWING)}},
                "properties": {"channel": "email", "granted": False},
            }
        )
        _wait(
            lambda: "email" in store.withdrawn_channels([target]),
            10,
            "the stream processor never applied the withdrawal",
        )
    applied = time.perf_counter() - sent_at
    refused = running.decide(WITHDRAWING, "email")
    elapsed = time.perf_counter() - sent_at
    print(
        f"consent event posted -> in the decision log: {applied * 1000:.0f} ms, "
        f"-> decide over HTTP refuses: {elapsed * 1000:.0f} ms"
    )
    assert not refused["send"]
    assert "consent:withdrawn:email" in refused["reasons"]
    assert elapsed < 1.0
    # other channels and other people are unaffected
    after = running.decide(WITHDRAWING, "web")
    assert after["send"] and after["decisionId"] == before["decisionId"]
    assert running.decide(BYSTANDER, "email")["send"]

    # the batch export (the daily_email_decisions asset's library call) leaves them out
    policy = load_policy(running.home / "cdp.yml")
    serving = running.home / "serving"
    db = snapshot_folder(serving, read_current(serving)) / DATABASE_FILE
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        with DecisionStore.open(default_store_path(running.home)) as store:
            service = DecisionService(policy, store, store.assignment_key())
            result = run_batch(service, conn, running.home, "daily_email", datetime.now(UTC))
    finally:
        conn.close()
    exported = set(pq.read_table(result.parquet_path).column("customer_id").to_pylist())
    assert target not in exported
    assert other in exported
    assert result.by_outcome.get("consent:withdrawn:email", 0) >= 1, result.by_outcome

    # a price drop on the product both viewed: an email to the bystander, none to the target
    running.track(
        {
            "type": "track",
            "event": "Product Price Changed",
            "anonymousId": "catalog",
            "properties": {"product_id": "P1", "price": 40.0},
        }
    )
    _wait(
        lambda: (other, "email", "price_drop") in _outbox(running.home),
        10,
        f"the price drop never reached the bystander: {_firings(running.home)}",
    )
    time.sleep(0.5)  # the same batch handled both viewers; nothing for the target follows
    assert [m for m in _outbox(running.home) if m[0] == target] == []
    refusals = [f for f in _firings(running.home) if f[1] == target]
    assert len(refusals) == 1 and refusals[0][2] == 0
    assert "consent:withdrawn:email" in refusals[0][3]
