"""The outbox's delivery bookkeeping: claim, outcomes, listing, replay, counts."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events import outbox
from events.outbox import OutboxMessage
from events.state import connect

T0 = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(tmp_path / "events" / "state.sqlite")
    with outbox.transaction(connection):
        outbox.ensure_schema(connection)
    yield connection
    connection.close()


def message(n: int, channel: str = "email", at: datetime = T0) -> OutboxMessage:
    return OutboxMessage(
        key=f"d{n}:{channel}",
        channel=channel,
        trigger="price_drop",
        customer_id=f"c{n}",
        decision_id=f"d{n}",
        payload={"customer_id": f"c{n}", "product": {"id": f"p{n}"}},
        created_at=at + timedelta(seconds=n),
    )


def add(conn: sqlite3.Connection, *messages: OutboxMessage) -> int:
    with outbox.transaction(conn):
        return outbox.enqueue(conn, messages)


def test_claim_records_the_attempt_and_keeps_the_message_pending(conn) -> None:
    add(conn, message(1), message(2), message(3))
    with outbox.transaction(conn):
        claimed = outbox.claim_due(conn, T0 + timedelta(seconds=2), 10)
    # message 3 is not due yet (created, hence due, at T0 + 3 s)
    assert [r.key for r in claimed] == ["d1:email", "d2:email"]
    assert all(r.attempts == 1 and r.status == outbox.PENDING for r in claimed)
    assert claimed[0].last_attempt_at == T0 + timedelta(seconds=2)
    assert claimed[0].payload == {"customer_id": "c1", "product": {"id": "p1"}}
    assert claimed[0].created_at.tzinfo is UTC
    # a crash now leaves them due: claimed again (second attempt) unless excluded
    with outbox.transaction(conn):
        again = outbox.claim_due(
            conn, T0 + timedelta(seconds=5), 10, exclude={claimed[0].message_id}
        )
    assert [(r.key, r.attempts) for r in again] == [("d2:email", 2), ("d3:email", 1)]


def test_outcomes_move_messages_and_only_pending_ones(conn) -> None:
    add(conn, message(1), message(2), message(3))
    ids = {r.key: r.message_id for r in outbox.list_messages(conn)}
    at = T0 + timedelta(minutes=1)
    with outbox.transaction(conn):
        assert outbox.mark_delivered(conn, ids["d1:email"], at)
        assert outbox.mark_retry(conn, ids["d2:email"], "HTTP 503", at + timedelta(seconds=30))
        assert outbox.mark_dead(conn, ids["d3:email"], "gave up", at)
        # a delivered or dead message is final
        assert not outbox.mark_dead(conn, ids["d1:email"], "late", at)
        assert not outbox.mark_delivered(conn, ids["d3:email"], at)
    one = outbox.get_message(conn, "d1:email")
    assert one is not None and one.status == "delivered" and one.delivered_at == at
    two = outbox.get_message(conn, "d2:email")
    assert two is not None and two.last_error == "HTTP 503"
    assert two.next_attempt_at == at + timedelta(seconds=30)
    with outbox.transaction(conn):
        assert outbox.claim_due(conn, at, 10) == []  # not due before its retry time
    assert outbox.next_due_at(conn) == at + timedelta(seconds=30)
    three = outbox.get_message(conn, "d3:email")
    assert three is not None and (three.status, three.last_error) == ("dead", "gave up")
    assert outbox.get_message(conn, "nope") is None


def test_list_filters_by_status_and_channel_newest_first(conn) -> None:
    add(conn, message(1), message(2, "sms"), message(3), message(4))
    with outbox.transaction(conn):
        outbox.mark_dead(conn, outbox.get_message(conn, "d3:email").message_id, "x", T0)
    assert [r.key for r in outbox.list_messages(conn)] == [
        "d4:email",
        "d3:email",
        "d2:sms",
        "d1:email",
    ]
    assert [r.key for r in outbox.list_messages(conn, "dead")] == ["d3:email"]
    assert [r.key for r in outbox.list_messages(conn, "pending", channel="email")] == [
        "d4:email",
        "d1:email",
    ]
    assert len(outbox.list_messages(conn, limit=2)) == 2
    with pytest.raises(ValueError, match="unknown status"):
        outbox.list_messages(conn, "lost")


def test_replay_resets_dead_messages_with_a_fresh_window(conn) -> None:
    add(conn, message(1), message(2), message(3))
    with outbox.transaction(conn):
        for key in ("d1:email", "d2:email"):
            record = outbox.claim_due(conn, T0 + timedelta(hours=5), 1)[0]
            outbox.mark_dead(conn, record.message_id, "gave up", T0 + timedelta(hours=5))
            assert record.key == key
    now = T0 + timedelta(hours=6)
    with outbox.transaction(conn):
        result = outbox.replay(conn, ["d1:email", "d3:email", "nope", "d1:email"], now=now)
    assert result.replayed == ("d1:email",)
    assert result.skipped == {"d3:email": "not dead (status pending)", "nope": "no such message"}
    replayed = outbox.get_message(conn, "d1:email")
    assert replayed is not None
    assert (replayed.status, replayed.attempts, replayed.next_attempt_at) == ("pending", 0, now)
    assert replayed.replayed_at == now and replayed.dead_at is None
    assert replayed.retry_deadline(timedelta(hours=4)) == now + timedelta(hours=4)
    with outbox.transaction(conn):
        assert outbox.replay(conn, all_dead=True, now=now).replayed == ("d2:email",)
        assert outbox.replay(conn, all_dead=True, now=now).replayed == ()
    with pytest.raises(ValueError, match="not both"):
        outbox.replay(conn, ["d1:email"], all_dead=True, now=now)
    with pytest.raises(ValueError):
        outbox.replay(conn, now=now)


def test_a_message_dead_lettered_by_erasure_is_never_replayed(conn) -> None:
    add(conn, message(1), message(2))
    with outbox.transaction(conn):
        for record in outbox.claim_due(conn, T0 + timedelta(hours=5), 2):
            reason = outbox.ERASED_ERROR if record.key == "d1:email" else "gave up"
            outbox.mark_dead(conn, record.message_id, reason, T0 + timedelta(hours=5))
    now = T0 + timedelta(hours=6)
    with outbox.transaction(conn):
        named = outbox.replay(conn, ["d1:email"], now=now)
        everything = outbox.replay(conn, all_dead=True, now=now)
    assert named.replayed == () and "erased" in named.skipped["d1:email"]
    assert everything.replayed == ("d2:email",)
    assert outbox.get_message(conn, "d1:email").status == "dead"  # type: ignore[union-attr]


def test_counts_depth_oldest_and_failed_attempts(conn) -> None:
    assert outbox.counts(conn).depth == 0
    assert outbox.counts(conn).oldest_pending_age_seconds(T0) == 0.0
    add(conn, message(1), message(2), message(3, "sms"), message(4))
    at = T0 + timedelta(minutes=1)
    with outbox.transaction(conn):
        claimed = {r.key: r for r in outbox.claim_due(conn, at, 10)}
        outbox.mark_delivered(conn, claimed["d1:email"].message_id, at)  # 1 attempt, 0 failed
        outbox.mark_retry(conn, claimed["d2:email"].message_id, "HTTP 500", at)
        outbox.mark_dead(conn, claimed["d3:sms"].message_id, "no webhook", at)
    with outbox.transaction(conn):
        claimed = {r.key: r for r in outbox.claim_due(conn, at, 10)}
        outbox.mark_delivered(conn, claimed["d2:email"].message_id, at)  # 2 attempts, 1 failed
    counts = outbox.counts(conn)
    assert counts.by_status == {"pending": 1, "delivered": 2, "dead": 1}
    assert counts.by_channel == {
        ("email", "delivered"): 2,
        ("email", "pending"): 1,
        ("sms", "dead"): 1,
    }
    assert counts.depth == 1
    assert counts.oldest_pending_at == T0 + timedelta(seconds=4)
    assert counts.oldest_pending_age_seconds(T0 + timedelta(seconds=14)) == 10.0
    # d2's first try, d3's try, and d4's first claim (abandoned, as by a crash; its
    # second claim is in flight, not failed)
    assert counts.failed_attempts == 3


def test_ensure_schema_adds_replayed_at_to_an_older_table(tmp_path: Path) -> None:
    connection = connect(tmp_path / "old.sqlite")
    old = outbox.OUTBOX_SCHEMA[0].replace(",\n        replayed_at integer", "")
    assert "replayed_at" not in old
    connection.execute(old)
    outbox.enqueue(connection, [message(1)])
    outbox.ensure_schema(connection)
    outbox.ensure_schema(connection)  # idempotent
    record = outbox.get_message(connection, "d1:email")
    assert record is not None and record.replayed_at is None
    connection.close()


def test_cdp_outbox_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dagster_project.cli import outbox as outbox_cli
    from dagster_project.cli.main import app
    from events.signing import file_secret

    for console in (outbox_cli.out, outbox_cli.console):  # wide tables: no wrapped cells
        monkeypatch.setattr(console, "width", 240)

    home = tmp_path / "cdp"
    runner = CliRunner()

    def cdp(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, [*args, "--home", str(home)], terminal_width=200)
        return result.exit_code, result.output

    code, output = cdp("outbox", "status")
    assert code == 1 and "no outbox yet" in output

    connection = connect(home / "events" / "state.sqlite")
    with outbox.transaction(connection):
        outbox.ensure_schema(connection)
    add(connection, message(1), message(2), message(3, "sms"))
    with outbox.transaction(connection):
        claimed = {r.key: r for r in outbox.claim_due(connection, T0 + timedelta(minutes=1), 10)}
        outbox.mark_delivered(connection, claimed["d1:email"].message_id, T0)
        outbox.mark_dead(connection, claimed["d3:sms"].message_id, "no webhook for sms", T0)
        outbox.mark_retry(
            connection, claimed["d2:email"].message_id, "HTTP 503", T0 + timedelta(minutes=2)
        )

    code, output = cdp("outbox", "status")
    assert code == 0, output
    assert "depth (pending): 1" in output
    assert "email" in output and "sms" in output
    assert "oldest pending:" in output and "none" not in output
    assert "failed attempts (retries and give-ups): 2" in output
    assert "cdp outbox replay --all-dead" in output

    code, output = cdp("outbox", "list", "--status", "dead")
    assert code == 0 and "d3:sms" in output and "no webhook for sms" in output
    assert "d1:email" not in output
    code, output = cdp("outbox", "list", "--status", "lost")
    assert code == 2 and "not one of" in output
    code, output = cdp("outbox", "list", "--limit", "1")
    assert code == 0 and "d3:sms" in output and "d2:email" not in output

    code, output = cdp("outbox", "show", "d2:email")
    assert code == 0 and "HTTP 503" in output and '"product"' in output and "pending" in output
    code, output = cdp("outbox", "show", "nope")
    assert code == 1 and "no outbox message" in output

    code, output = cdp("outbox", "replay")
    assert code == 2 and "--all-dead" in output
    code, output = cdp("outbox", "replay", "d1:email")
    assert code == 1 and "not dead (status delivered)" in output
    code, output = cdp("outbox", "replay", "--all-dead")
    assert code == 0 and "replayed 1 message(s)" in output
    record = outbox.get_message(connection, "d3:sms")
    assert record is not None and (record.status, record.attempts) == ("pending", 0)
    connection.close()

    code, output = cdp("outbox", "secret", "email")
    assert code == 0 and output.strip() == file_secret(home, "email")
    code, output = cdp("outbox", "secret", "../x")
    assert code == 2 and "not a channel name" in output
