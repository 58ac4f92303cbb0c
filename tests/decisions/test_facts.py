"""decisions.facts against a real published snapshot.

The warehouse is the API tests' constructed world (every mart created from its dbt contract),
with rows added to the marts decisions read; it is published by the real publisher, so the
SQLite file, its keys and its value encodings are exactly what the API and the batch read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from dagster_project.lib.publish import publish_snapshot
from decisions import facts as facts_module
from decisions.facts import (
    SnapshotFactsError,
    iter_all_facts,
    load_facts,
    load_sales,
    resolve_customer_id,
)
from snapshots import DATABASE_FILE, read_current, snapshot_folder
from tests.support.api_world import ALIAS, NOW, build_world, customer_id

PERSONS = 30
TODAY_START = datetime(2025, 6, 30, 14, tzinfo=UTC)  # the day's sales start at 14:00 UTC
DAY = timedelta(days=1)

#: sale_id -> (brand, category, theme, starts_at, ends_at)
SALES = {
    "S_RUNNING": ("acme", "shoes", "summer-sale", TODAY_START - DAY, TODAY_START + 2 * DAY),
    "S_MULTI": (None, "books", "under-25", TODAY_START, TODAY_START + 3 * DAY),
    "S_TOMORROW": ("zeta", "garden", "flash-deal", TODAY_START + DAY, TODAY_START + 2 * DAY),
    "S_ENDED": ("acme", "shoes", "clearance", TODAY_START - 3 * DAY, TODAY_START),
}


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(rows, dtype=object)
    con.register("_rows", frame)
    con.execute(f"insert into {table} by name select * from _rows")
    con.unregister("_rows")


def _decision_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Rows of the decision marts: customer i likes one category, some bought durables."""
    sales, items = [], []
    for sale_id, (brand, category, theme, starts, ends) in SALES.items():
        sales.append(
            {
                "sale_id": sale_id,
                "title": f"{theme}: {brand or 'several brands'}",
                "theme": theme,
                "category": category,
                "brand": brand,
                "discount_percent": 20.0,
                "starts_at": starts,
                "ends_at": ends,
                "item_count": 2,
            }
        )
        for k in range(2):
            items.append(
                {
                    "sale_id": sale_id,
                    "product_id": f"{sale_id}_P{k}",
                    "product_name": f"Product {k}",
                    "category": category,
                    "brand": brand or f"brand{k}",
                    "regular_price": 50.0,
                    "sale_price": 40.0,
                }
            )
    _insert(con, "sales", sales)
    _insert(con, "sale_items", items)
    activity, brands, assignment, recommendations = [], [], [], []
    for i in range(PERSONS):
        cid = customer_id(i)
        favourite = ["shoes", "books", "garden"][i % 3]
        activity.append(
            {
                "customer_id": cid,
                "category": favourite,
                "interaction_score": 6,
                "interaction_share": 0.75,
                "category_rank": 1,
                "view_count": 6,
                "add_to_cart_count": 0,
                "last_viewed_at": NOW - timedelta(days=2),
                "last_interacted_at": NOW - timedelta(days=2),
            }
        )
        activity.append(
            {
                "customer_id": cid,
                "category": "electronics",
                "interaction_score": 2,
                "interaction_share": 0.25,
                "category_rank": 2,
                "view_count": 0,
                "add_to_cart_count": 0,
                "last_purchased_at": NOW - timedelta(days=10) if i % 4 == 0 else None,
                "last_interacted_at": NOW - timedelta(days=10),
            }
        )
        if i % 2 == 0:
            brands.append(
                {
                    "customer_id": cid,
                    "brand": f"brand{i % 5}",
                    "last_bought_at": NOW - timedelta(days=10),
                    "order_count": 1,
                    "kept_order_count": 1,
                }
            )
        assignment.append(
            {
                "customer_id": cid,
                # customer 1 absorbed two older ids; the oldest is its assignment id
                "assignment_id": ALIAS[1] if i == 1 else cid,
                "alias_count": 2 if i == 1 else 0,
            }
        )
        for rank, product in enumerate(("P9", "P3", "P5"), start=1):
            recommendations.append(
                {
                    "customer_id": cid,
                    "rank": rank,
                    "product_id": product,
                    "score": 1.0 / rank,
                    "strategy": "hybrid",
                }
            )
    _insert(con, "customer_category_activity", activity)
    _insert(con, "customer_brands_bought", brands)
    _insert(con, "customer_assignment", assignment)
    _insert(con, "customer_recommendations", recommendations)
    con.execute(
        "update customer_traits set last_viewed_product_id = 'P' || customer_id, "
        "last_viewed_category = favourite_category, "
        "last_viewed_at = timestamptz '2025-06-29 10:00:00+00' "
        "where customer_id <> 'cus_0002'"
    )
    # customer 2 has no e-mail address and a blank phone; customer 4 a recorded push consent
    con.execute("update customers set email = null, phone = '  ' where customer_id = 'cus_0002'")
    con.execute(
        "update customers set has_push_consent = true, has_push_consent_source = 'app' "
        "where customer_id = 'cus_0004'"
    )


@pytest.fixture(scope="module")
def snapshot_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The constructed world plus decision rows, published once for the module."""
    world = build_world(tmp_path_factory.mktemp("facts_world"), persons=PERSONS)
    with duckdb.connect(str(world.warehouse)) as con:
        con.execute("set TimeZone = 'UTC'")
        _decision_rows(con)
    publish_snapshot(world.warehouse, world.serving_dir)
    current = read_current(world.serving_dir)
    assert current is not None
    return snapshot_folder(world.serving_dir, current) / DATABASE_FILE


@pytest.fixture
def conn(snapshot_path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection, as the API opens a snapshot."""
    connection = sqlite3.connect(snapshot_path.as_uri() + "?mode=ro&immutable=1", uri=True)
    yield connection
    connection.close()


def test_facts_carry_every_field_from_the_snapshot(conn: sqlite3.Connection) -> None:
    found = load_facts(conn, [customer_id(0), customer_id(1), customer_id(2), "cus_nobody"])
    assert set(found) == {customer_id(0), customer_id(1), customer_id(2)}
    zero, one, two = found[customer_id(0)], found[customer_id(1)], found[customer_id(2)]

    assert zero.first_name == "First0" and zero.last_name == "Last0"
    # customer 0 said no to email (a statement from crm), yes to sms, nothing on push; the
    # golden record's false without a source is "never recorded"
    assert zero.consents == {"email": False, "sms": True, "push": None}
    assert one.consents == {"email": True, "sms": None, "push": None}
    assert zero.segments == {"frequent_buyers", "high_value", "browsers"}
    assert one.segments == frozenset()

    assert zero.category_affinity == {"shoes": 0.75, "electronics": 0.25}
    assert zero.category_last_purchased_at == {"electronics": NOW - timedelta(days=10)}
    assert zero.category_last_purchased_at["electronics"].tzinfo is not None
    assert one.category_last_purchased_at == {}
    assert zero.brands_bought == {"brand0"} and one.brands_bought == frozenset()
    assert list(zero.recommended_products) == ["P9", "P3", "P5"]
    assert zero.recommended_products["P9"] == 1.0

    assert zero.traits["favourite_category"] == "shoes"
    assert zero.traits["predicted_clv"] is None or isinstance(zero.traits["predicted_clv"], float)
    assert "customer_id" not in zero.traits
    assert zero.last_viewed_category == "shoes" and zero.last_viewed_product_id == "Pcus_0000"
    assert two.last_viewed_category is None and two.last_viewed_product_id is None

    # merged ids: the survivor knows them, and its assignment id is the oldest
    assert one.alias_ids == set(ALIAS)
    assert one.assignment_id == ALIAS[1]
    assert zero.assignment_id == customer_id(0) and zero.alias_ids == frozenset()


def test_facts_say_which_channels_reach_the_customer(conn: sqlite3.Connection) -> None:
    found = load_facts(conn, [customer_id(0), customer_id(2), customer_id(4)])
    display = {"web", "app", "call_center"}
    # an address for email and a phone for sms, whatever the consent says (consent is checked
    # separately); push has no device data yet, so a recorded push consent stands in for one
    assert found[customer_id(0)].reachable == {"email", "sms", *display}
    assert found[customer_id(2)].reachable == display  # no address, a blank phone
    assert found[customer_id(4)].reachable == {"email", "sms", "push", *display}
    assert found[customer_id(4)].consents["push"] is True


def test_reads_are_one_statement_per_table_per_chunk(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    ids = [customer_id(i) for i in range(PERSONS)]
    whole = load_facts(conn, ids + ids[:5])  # duplicates are read once

    def reads() -> list[str]:  # the schema probe for the consents mart is once per load
        return [s for s in statements if "sqlite_master" not in s]

    per_chunk = len(reads())
    assert per_chunk == 9  # one per table (consents included), whatever the number of customers
    monkeypatch.setattr(facts_module, "MAX_IDS_PER_QUERY", 7)
    statements.clear()
    chunked = load_facts(conn, ids)
    assert len(reads()) == per_chunk * 5  # 30 ids in chunks of 7
    assert chunked == whole
    assert len(whole) == PERSONS


def test_iter_all_facts_yields_every_customer_once_in_order(conn: sqlite3.Connection) -> None:
    every = list(iter_all_facts(conn, chunk=7))
    ids = [facts.customer_id for facts in every]
    assert ids == sorted(customer_id(i) for i in range(PERSONS))
    assert {facts.customer_id: facts for facts in every} == load_facts(conn, ids)
    with pytest.raises(ValueError, match="chunk"):
        next(iter_all_facts(conn, chunk=0))


def test_resolve_follows_merges_to_the_survivor(conn: sqlite3.Connection) -> None:
    assert resolve_customer_id(conn, customer_id(3)) == customer_id(3)
    assert resolve_customer_id(conn, ALIAS[0]) == customer_id(1)
    assert resolve_customer_id(conn, ALIAS[1]) == customer_id(1)  # a chain: older -> old -> 1
    assert resolve_customer_id(conn, "cus_unknown") is None


def test_sales_are_those_running_at_now_with_their_items(conn: sqlite3.Connection) -> None:
    running = load_sales(conn, NOW)
    assert [sale.sale_id for sale in running] == ["S_RUNNING", "S_MULTI"]
    multi = running[1]
    assert multi.brand is None and multi.theme == "under-25" and multi.category == "books"
    assert multi.starts_at == TODAY_START and multi.ends_at == TODAY_START + 3 * DAY
    assert [item.brand for item in multi.items] == ["brand0", "brand1"]
    assert multi.items[0].sale_price == 40.0 and multi.items[0].regular_price == 50.0
    # tomorrow's email: the sale starting at 14:00 is live, the one ending then is not (exclusive)
    tomorrow = [sale.sale_id for sale in load_sales(conn, TODAY_START + DAY)]
    assert tomorrow == ["S_RUNNING", "S_MULTI", "S_TOMORROW"]
    assert [s.sale_id for s in load_sales(conn, TODAY_START + 2 * DAY)] == ["S_MULTI"]
    assert "S_ENDED" in [s.sale_id for s in load_sales(conn, TODAY_START - timedelta(seconds=1))]
    with pytest.raises(ValueError, match="time zone"):
        load_sales(conn, datetime(2025, 6, 30, 23))


def test_a_snapshot_without_the_decision_tables_says_what_to_do() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "create table customers (customer_id text primary key, first_name text, last_name text, "
        "has_email_consent integer, has_sms_consent integer, has_push_consent integer, "
        "has_email_consent_source text, has_sms_consent_source text, "
        "has_push_consent_source text)"
    )
    conn.execute("insert into customers (customer_id) values ('cus_1')")
    with pytest.raises(SnapshotFactsError, match="cdp run"):
        load_facts(conn, ["cus_1"])
    with pytest.raises(SnapshotFactsError, match="customer_assignment"):
        load_sales(conn, NOW)
