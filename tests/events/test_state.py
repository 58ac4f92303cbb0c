"""The processor's state file: schema, WAL, versioning, one transaction with the offset."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from events.live import open_live_reader
from events.state import SCHEMA_VERSION, StateError, StateStore, set_offset, state_path


def test_a_new_state_file_has_every_table_in_wal_mode(tmp_path: Path) -> None:
    path = state_path(tmp_path)
    store = StateStore(path)
    try:
        conn = store.conn
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert conn.execute("pragma synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("pragma user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        assert {
            "consumer_offsets",
            "live_identities",
            "live_aliases",
            "live_profiles",
            "live_product_views",
            "live_cart",
            "live_events",
            "product_prices",
            "timers",
            "trigger_firings",
            "segment_watch",
            "dead_events",
            "outbox",
        } <= tables
        # other helpers read these columns by name
        columns = [r[1] for r in conn.execute("pragma table_info(live_identities)")]
        assert columns == [
            "identifier_type",
            "identifier_value",
            "customer_id",
            "is_provisional",
            "linked_at",
        ]
        keys = [r[1] for r in conn.execute("pragma table_info(live_identities)") if r[5]]
        assert keys == ["identifier_type", "identifier_value"]
        indexes = {r[1] for r in conn.execute("pragma index_list(live_product_views)")}
        assert "live_product_views_product" in indexes
    finally:
        store.close()


def test_the_offset_commits_with_the_work_or_not_at_all(tmp_path: Path) -> None:
    store = StateStore(state_path(tmp_path))
    try:
        at = datetime(2026, 1, 1, tzinfo=UTC)
        with store.transaction() as conn:
            conn.execute(
                "insert into live_cart values ('c1', 'P1', 1, null, 0)",
            )
            set_offset(conn, "proc", 10, at)
        assert store.offset("proc") == 10
        with pytest.raises(RuntimeError), store.transaction() as conn:
            conn.execute("insert into live_cart values ('c1', 'P2', 1, null, 0)")
            set_offset(conn, "proc", 20, at)
            raise RuntimeError("crash before the commit")
        assert store.offset("proc") == 10
        rows = store.conn.execute("select product_id from live_cart").fetchall()
        assert rows == [("P1",)]
        assert store.offset("someone_else") == 0
    finally:
        store.close()


def test_reopening_keeps_the_data_and_a_reader_never_waits_for_the_writer(
    tmp_path: Path,
) -> None:
    path = state_path(tmp_path)
    first = StateStore(path)
    with first.transaction() as conn:
        set_offset(conn, "proc", 5, datetime.now(UTC))
    first.close()
    store = StateStore(path)
    reader = open_live_reader(path)
    try:
        assert store.offset("proc") == 5
        with store.transaction() as conn:
            set_offset(conn, "proc", 6, datetime.now(UTC))
            # the write transaction is open: a reader sees the last commit, at once
            row = reader.execute("select offset from consumer_offsets").fetchone()
            assert row == (5,)
        assert reader.execute("select offset from consumer_offsets").fetchone() == (6,)
        with pytest.raises(sqlite3.OperationalError):
            reader.execute("delete from consumer_offsets")  # read-only
    finally:
        reader.close()
        store.close()


def test_a_newer_schema_or_a_foreign_file_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = state_path(tmp_path)
    StateStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"pragma user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StateError, match="newer than this platform"):
        StateStore(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="not a usable state database"):
        StateStore(junk)


def test_the_live_reader_says_when_there_is_no_state_yet(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cdp stream"):
        open_live_reader(tmp_path / "missing.sqlite")
