"""`dbt build` on the constructed tiny world: hand-computed traits, segments, as-of, history.

The world (tests/dbt/dbt_tiny_world.py) is real Parquet in the exact lake schema plus identity
outputs; dbt runs as a subprocess with the vars and environment the Dagster asset would pass.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.support.dbt_tiny_world import TinyWorld, build_tiny_world, run_dbt

pytestmark = pytest.mark.slow

AS_OF_END = datetime(2025, 6, 30, 23, 59, 59, 999999, tzinfo=UTC)
EXTRA_VARS = {"affinity_min_pair_count": 1}


def _build(world: TinyWorld, as_of: date | None = None) -> None:
    result = run_dbt(world, ["build"], as_of=as_of, extra_vars=EXTRA_VARS)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # The only expected warning: an email address (ghost@example.com) no identity record knows.
    warnings = [line for line in result.stdout.splitlines() if " WARN " in line]
    assert len(warnings) == 1 and "not_null_int_email_events_resolved_customer_id" in warnings[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> TinyWorld:
    built = build_tiny_world(tmp_path_factory.mktemp("tiny_world"))
    _build(built)
    return built


@pytest.fixture
def warehouse(world: TinyWorld) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(world.workspace.warehouse), read_only=True)
    connection.execute("set TimeZone = 'UTC'")
    yield connection
    connection.close()


def rows(connection: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = connection.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def by_customer(connection: duckdb.DuckDBPyConnection, table: str) -> dict[str, dict[str, Any]]:
    return {r["customer_id"]: r for r in rows(connection, f"select * from {table}")}


def assert_close(actual: Any, expected: Any, label: str) -> None:
    if isinstance(expected, float) and actual is not None:
        assert math.isclose(actual, expected, abs_tol=1e-9), f"{label}: {actual} != {expected}"
    else:
        assert actual == expected, f"{label}: {actual!r} != {expected!r}"


# Worked out by hand from dbt_tiny_world.py, as of 2025-06-30 (see the comments there).
EXPECTED_TRAITS: dict[str, dict[str, Any]] = {
    # Alice: placed O1 100, O2 50, O3 30 (returned), O5 20, O6 10 (from lines); O4 cancelled,
    # O7 after as-of. Kept revenue 180 over 4 kept orders.
    "cus_a": dict(
        order_count=5,
        return_count=1,
        frequency=4,
        lifetime_revenue=180.0,
        monetary=180.0,
        average_order_value=45.0,
        recency_days=1,
        order_count_30d=5,
        order_count_90d=5,
        r_score=5,
        f_score=5,
        m_score=5,
        days_since_last_visit=1,
        web_active_days_30d=3,
        product_view_count_30d=3,
        favourite_category="Shoes",
        favourite_brand="Acme",
        email_sends_30d=1,
        email_sends_90d=1,
        open_rate_30d=1.0,
        click_rate_30d=1.0,
        open_rate_90d=1.0,
        click_rate_90d=1.0,
        engagement_score=72.0,  # 100 x (0.4 x 3/10 + 0.3 x 1 + 0.3 x 3/3)
    ),
    # Bob: O10 (2024-01-15) 40 by account, O11 (2025-02-01) 60 by email only; last visit is the
    # login on Alice's cookie (account wins over cookie) and his own page view, 2025-03-01.
    "cus_b": dict(
        order_count=2,
        return_count=0,
        frequency=2,
        lifetime_revenue=100.0,
        average_order_value=50.0,
        recency_days=149,
        r_score=2,
        f_score=4,
        m_score=4,
        days_since_last_visit=121,
        favourite_category="Shoes",
        favourite_brand="Bolt",
        email_sends_30d=0,
        open_rate_30d=None,
        engagement_score=0.0,
    ),
    # Carol: M1 (sent 06-10, opened, clicked), M2 (sent 05-01), M3 (sent 06-20), unsubscribed.
    "cus_c": dict(
        order_count=0,
        frequency=0,
        lifetime_revenue=0.0,
        average_order_value=None,
        recency_days=None,
        r_score=None,
        email_sends_30d=2,
        email_sends_90d=3,
        open_rate_30d=0.5,
        click_rate_30d=0.5,
        open_rate_90d=1 / 3,
        click_rate_90d=1 / 3,
        engagement_score=10.0,  # 100 x 0.3 x (0.5 x 1/3 + 0.5 x 1/3)
    ),
    # Anonymous cookie k4: 11 product views on 11 days and a cart on a 12th, no orders.
    "cus_d": dict(
        order_count=0,
        days_since_last_visit=10,
        web_active_days_30d=12,
        product_view_count_30d=11,
        add_to_cart_count_30d=1,
        favourite_category="Shoes",
        engagement_score=40.0,
    ),
    # Eve signed up after the as-of date: a customer of the identity map with no visible data.
    "cus_e": dict(order_count=0, days_since_last_visit=None, engagement_score=0.0),
    "cus_f": dict(recency_days=29, r_score=4, f_score=1, m_score=1, engagement_score=10.0),
    "cus_g": dict(recency_days=90, r_score=3, f_score=2, m_score=2),
    "cus_h": dict(recency_days=181, r_score=1, f_score=3, m_score=3),
}

EXPECTED_SEGMENTS = {
    ("cus_a", "frequent_buyers"),  # 5 placed orders in 30 days
    ("cus_a", "high_value"),  # top 10% (1 of 5 buyers)
    ("cus_b", "at_risk"),
    ("cus_g", "at_risk"),
    ("cus_h", "at_risk"),
    ("cus_b", "infrequent_buyers"),  # 2 orders over 532 days
    ("cus_h", "infrequent_buyers"),  # 1 order over 181 days
    ("cus_d", "browsers"),
    ("cus_d", "cart_abandoners"),  # cart 06-20, no purchase within 24 hours
    ("cus_c", "email_unsubscribed"),
}


def test_traits_match_hand_computed_answers(warehouse: duckdb.DuckDBPyConnection) -> None:
    traits = by_customer(warehouse, "customer_traits")
    assert set(traits) == {f"cus_{c}" for c in "abcdefgh"}
    for customer, expected in EXPECTED_TRAITS.items():
        assert traits[customer]["as_of_date"] == date(2025, 6, 30)
        for column, value in expected.items():
            assert_close(traits[customer][column], value, f"{customer}.{column}")
    alice = traits["cus_a"]
    assert alice["first_order_at"] == datetime(2025, 6, 10, 9, tzinfo=UTC)
    assert alice["last_order_at"] == datetime(2025, 6, 29, 9, tzinfo=UTC)


def test_golden_record_follows_survivorship(warehouse: duckdb.DuckDBPyConnection) -> None:
    customers = by_customer(warehouse, "customers")
    alice = customers["cus_a"]
    # crm (trust 10) beats the newer shop account (trust 20) for names and city...
    assert (alice["first_name"], alice["first_name_source"]) == ("Alice", "crm")
    assert (alice["city"], alice["city_source"]) == ("Boston", "crm")
    # ...the later crm version (last name Jones, changed 2025-08-01) is not visible yet...
    assert alice["last_name"] == "Smith"
    # ...the phone only the shop has survives from there, with the shop's observation time.
    assert (alice["phone"], alice["phone_source"]) == ("+15202137631", "shop_accounts")
    assert alice["phone_updated_at"] == datetime(2025, 5, 1, 10, tzinfo=UTC)
    # Consent: the newest statement (the shop account, 2025-05-01) wins over trust.
    assert (alice["has_email_consent"], alice["has_email_consent_source"]) == (
        False,
        "shop_accounts",
    )
    assert alice["email"] == "alice@example.com" and alice["record_count"] == 4
    assert customers["cus_d"]["is_anonymous"] and customers["cus_d"]["email"] is None
    assert customers["cus_e"]["first_name"] is None  # signed up after the as-of date


def test_golden_record_takes_identity_normalization(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    """The golden record agrees with lookups: identity's E.164 phone and validated email, and a
    junk value never survives (it counts as null, so the next-best record's value wins)."""
    alice = by_customer(warehouse, "customers")["cus_a"]
    # shop A1 wrote "(520) 213-7631": golden in E.164, as the API documents and looks it up
    assert (alice["phone"], alice["phone_source"]) == ("+15202137631", "shop_accounts")
    # crm C1 (trust 10) says test@example.com, a blocklisted placeholder: not golden; the shop
    # account's " ALICE@Example.com " (trust 20) survives, normalized
    assert (alice["email"], alice["email_source"]) == ("alice@example.com", "shop_accounts")
    # the crm record still wins the attributes it holds for real
    assert (alice["first_name"], alice["first_name_source"]) == ("Alice", "crm")
    resolved = rows(
        warehouse,
        "select record_id, email, phone, phone_as_written "
        "from int_people_resolved where customer_id = 'cus_a' order by record_id",
    )
    assert resolved == [
        {
            "record_id": "A1",
            "email": "alice@example.com",
            "phone": "+15202137631",
            "phone_as_written": "(520) 213-7631",
        },
        {
            "record_id": "C1",
            "email": None,
            "phone": None,
            "phone_as_written": None,
        },
    ]
    statuses = dict(
        warehouse.execute(
            "select record_id, email_status from stg_identity__identity_attributes "
            "where record_id in ('C1', 'A1')"
        ).fetchall()
    )
    assert statuses == {"C1": "junk", "A1": "ok"}


def test_segments_hold_the_expected_members(warehouse: duckdb.DuckDBPyConnection) -> None:
    members = {
        (r["customer_id"], r["segment"]) for r in rows(warehouse, "select * from customer_segments")
    }
    assert members == EXPECTED_SEGMENTS
    entered = {r["entered_at"] for r in rows(warehouse, "select entered_at from customer_segments")}
    assert entered == {AS_OF_END}
    catalogue = {r["segment"]: r for r in rows(warehouse, "select * from segments")}
    assert catalogue["high_value"]["description"] == "Top 10% lifetime revenue."
    assert catalogue["high_value"]["owner"] == "finance"
    assert catalogue["at_risk"]["member_count"] == 3
    assert {r["segment_family"] for r in catalogue.values()} == {"rule"}


def test_identifiers_timeline_campaigns_and_affinity(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    identifiers = rows(
        warehouse,
        "select identifier_type, identifier_value from customer_identifiers "
        "where customer_id = 'cus_a' order by all",
    )
    assert {"identifier_type": "alias_customer_id", "identifier_value": "cus_old"} in identifiers
    assert {"identifier_type": "cookie_id", "identifier_value": "k1"} in identifiers

    channels = dict(
        warehouse.execute(
            "select channel, count(*) from customer_events group by channel"
        ).fetchall()
    )
    # 20 web events up to as-of (W9 is later), 11 orders (O7 later), 8 resolved email events
    # (ghost@example.com resolves to nobody, E11 is later).
    assert channels == {"web": 20, "orders": 11, "email": 8}
    shared_login = rows(
        warehouse, "select customer_id from customer_events where event_id = 'web_events:W7'"
    )
    assert shared_login == [{"customer_id": "cus_b"}]

    m1 = rows(warehouse, "select * from campaign_metrics where campaign_id = 'M1'")[0]
    assert (m1["send_count"], m1["recipient_count"], m1["open_count"], m1["click_count"]) == (
        3,
        3,
        2,
        2,
    )
    assert m1["bounce_count"] == 1
    # Alice clicked 06-12 12:00 and ordered O6 (10.0) on 06-15: one conversion in 7 days; her
    # cart of 06-19 10:00 is in the window too. Carol clicked and never ordered.
    assert (m1["clicked_customer_count"], m1["add_to_cart_customer_count"]) == (2, 1)
    assert (m1["conversion_count"], m1["conversion_revenue"], m1["conversion_rate"]) == (
        1,
        10.0,
        0.5,
    )

    pair = rows(
        warehouse,
        "select * from product_affinity where affinity_type = 'co_purchase' "
        "and product_id = 'P1' and related_product_id = 'P2'",
    )[0]
    # 7 placed orders with lines; P1 in O1, O2, O10; P2 in O1, O5, O11; together only in O1.
    assert pair["pair_count"] == 1
    assert_close(pair["support"], 1 / 7, "support")
    assert_close(pair["confidence"], 1 / 3, "confidence")
    assert_close(pair["lift"], (1 / 3) / (3 / 7), "lift")


def test_as_of_equals_running_on_data_truncated_at_that_date(
    world: TinyWorld, tmp_path: Path
) -> None:
    truncated = build_tiny_world(tmp_path / "truncated", truncate=True)
    _build(truncated)
    queries = {
        "customer_traits": "select * from customer_traits order by customer_id",
        "customers": "select * from customers order by customer_id",
        "customer_events": "select * from customer_events order by event_id",
        "customer_segments": "select * from customer_segments order by all",
        "campaign_metrics": "select * from campaign_metrics order by campaign_id",
        "product_affinity": "select * from product_affinity order by all",
    }
    with (
        duckdb.connect(str(world.workspace.warehouse), read_only=True) as full,
        duckdb.connect(str(truncated.workspace.warehouse), read_only=True) as cut,
    ):
        for name, sql in queries.items():
            expected = full.execute(sql).fetchall()
            assert expected, f"{name} is empty"
            assert cut.execute(sql).fetchall() == expected, name


def test_later_build_records_entries_and_exits(world: TinyWorld, tmp_path: Path) -> None:
    home = tmp_path / "later"
    shutil.copytree(world.workspace.home, home, ignore=shutil.ignore_patterns("dbt_target"))
    # same files, identity re-run as of the later date; keeps the copied warehouse and history
    later = build_tiny_world(home, identity_as_of=date(2025, 9, 30))
    _build(later, as_of=date(2025, 9, 30))
    with duckdb.connect(str(later.workspace.warehouse), read_only=True) as connection:
        connection.execute("set TimeZone = 'UTC'")
        events = rows(
            connection,
            "select customer_id, segment, event_type, occurred_at "
            "from segment_membership_history "
            "where occurred_at > timestamptz '2025-07-01 00:00:00+00'",
        )
        changes = {(e["customer_id"], e["segment"], e["event_type"]) for e in events}
        assert changes == {
            ("cus_a", "frequent_buyers", "exited"),
            ("cus_d", "browsers", "exited"),
            ("cus_d", "cart_abandoners", "exited"),
            ("cus_a", "at_risk", "entered"),  # last active 07-05 (O7)
            ("cus_c", "at_risk", "entered"),  # last email click 06-11
            ("cus_d", "at_risk", "entered"),
            ("cus_f", "at_risk", "entered"),
            ("cus_f", "infrequent_buyers", "entered"),  # 1 order over 121 days
            ("cus_g", "infrequent_buyers", "entered"),  # 1 order over 182 days
        }
        assert {e["occurred_at"] for e in events} == {
            datetime(2025, 9, 30, 23, 59, 59, 999999, tzinfo=UTC)
        }
        entered = {
            (r["customer_id"], r["segment"]): r["entered_at"]
            for r in rows(connection, "select * from customer_segments")
        }
        assert entered[("cus_b", "at_risk")] == AS_OF_END  # member since the first build
        assert entered[("cus_a", "at_risk")].date() == date(2025, 9, 30)
        assert ("cus_a", "frequent_buyers") not in entered
        alice = rows(connection, "select * from customers where customer_id = 'cus_a'")[0]
        assert alice["last_name"] == "Jones"  # the crm version changed 2025-08-01
