"""The consent marts on the constructed tiny world, plus decision-log statements: one resolved
state per customer and channel, latest statement wins, every statement in the history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from decisions.store import DecisionStore, default_store_path
from tests.support.dbt_tiny_world import TinyWorld, build_tiny_world, run_dbt

pytestmark = pytest.mark.slow

MODELS = "+customer_consents"
WITHDRAWN_AT = datetime(2025, 6, 20, 9, 0, tzinfo=UTC)


def _decision_log_export(home: Path, customer_id: str) -> None:
    """A real-time withdrawal in the decision log, applied twice (a replay after a crash
    appends an identical twin), exported as the ``decision_log`` asset exports it."""
    with DecisionStore.open(default_store_path(home)) as store:
        for _ in range(2):
            store.record_consent(customer_id, "email", False, WITHDRAWN_AT, "event:site:m-1")
        store.export(home / "lake" / "_decisions")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    world: TinyWorld = build_tiny_world(tmp_path_factory.mktemp("consent_world"))
    con = duckdb.connect(str(world.workspace.warehouse))
    con.close()
    probe = run_dbt(world, ["run", "--select", "+customers"])
    assert probe.returncode == 0, probe.stdout[-4000:]
    con = duckdb.connect(str(world.workspace.warehouse), read_only=True)
    consented = con.execute(
        "select customer_id from customers where not is_anonymous "
        "and has_email_consent_source is null order by 1 limit 1"
    ).fetchone()[0]
    con.close()
    _decision_log_export(world.workspace.home, consented)
    result = run_dbt(world, ["build", "--select", MODELS, "--indirect-selection", "cautious"])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    con = duckdb.connect(str(world.workspace.warehouse), read_only=True)
    con.execute("set TimeZone = 'UTC'")
    con.execute("create temp table target as select ? as customer_id", [consented])
    return con


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def test_people_statements_agree_with_the_golden_record(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    """Where only people records speak (no unsubscribe, no decision log), the resolved email
    consent is the golden record's, and a row exists exactly when the golden record has a
    source (no statement: no row, never a made-up false)."""
    compared = rows(
        warehouse,
        """
        select c.customer_id, c.has_email_consent, c.has_email_consent_source,
               k.is_granted, k.source
        from customers c
        left join customer_consents k on k.customer_id = c.customer_id and k.channel = 'email'
        where c.customer_id not in (select customer_id from target)
          and c.customer_id not in (
              select customer_id from int_email_events_resolved
              where event_type = 'unsubscribe' and customer_id is not null)
        """,
    )
    stated = [r for r in compared if r["has_email_consent_source"] is not None]
    assert stated and len(stated) < len(compared)  # both kinds of customer are compared
    for row in compared:
        if row["has_email_consent_source"] is None:
            assert row["source"] is None, row
        else:
            assert (row["is_granted"], row["source"]) == (
                row["has_email_consent"],
                row["has_email_consent_source"],
            ), row


def test_a_real_time_withdrawal_is_the_latest_statement_and_kept_once(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    [state] = rows(
        warehouse,
        "select * from customer_consents where channel = 'email' "
        "and customer_id = (select customer_id from target)",
    )
    assert state["is_granted"] is False
    assert state["source"] == "event:site:m-1"
    assert state["changed_at"] == WITHDRAWN_AT
    history = rows(
        warehouse,
        "select * from customer_consent_history where channel = 'email' "
        "and customer_id = (select customer_id from target) order by statement_number",
    )
    assert [h["source"] for h in history].count("event:site:m-1") == 1  # the twin collapsed
    assert history[-1]["is_granted"] is False
    assert all(h["changed_at"] <= WITHDRAWN_AT for h in history)
    assert state["statement_count"] == len(history)


def test_email_unsubscribes_withdraw_email(warehouse: duckdb.DuckDBPyConnection) -> None:
    unsubscribed = rows(
        warehouse,
        """
        select e.customer_id, max(e.occurred_at) as at
        from int_email_events_resolved e
        where e.event_type = 'unsubscribe' and e.customer_id is not null
        group by 1
        """,
    )
    assert unsubscribed  # the tiny world has one (carol, 2025-06-21)
    for row in unsubscribed:
        history = rows(
            warehouse,
            f"select * from customer_consent_history where customer_id = '{row['customer_id']}' "
            f"and channel = 'email' and changed_at = '{row['at'].isoformat()}' "
            "and is_granted = false",
        )
        assert history, row


def test_the_history_holds_every_statement_in_time_order(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    """A customer granted by one people record and withdrawn by a later one: both statements,
    oldest first, and the later one is the state (here the golden record agrees)."""
    stated = rows(
        warehouse,
        "select customer_id, has_email_consent_source from customers "
        "where has_email_consent_source is not null",
    )
    assert stated
    for customer in stated:
        history = rows(
            warehouse,
            "select * from customer_consent_history where channel = 'email' "
            f"and customer_id = '{customer['customer_id']}' order by statement_number",
        )
        times = [h["changed_at"] for h in history]
        assert times == sorted(times)
        assert [h["statement_number"] for h in history] == list(range(1, len(history) + 1))
    multi = [
        r
        for r in rows(
            warehouse,
            "select customer_id, list(is_granted order by statement_number) as values "
            "from customer_consent_history where channel = 'email' group by 1 "
            "having count(*) > 1",
        )
    ]
    assert any(r["values"][:2] == [True, False] for r in multi)  # granted, then withdrawn
