"""Publishing: copy + verify + atomic switch + retention, and refusals that leave CURRENT alone."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from dagster_project.lib.publish import MART_NAMES, PublishError, publish_snapshot
from identity.settings import IdentitySettings
from snapshots import (
    CURRENT_FILE,
    DATABASE_FILE,
    LEASES_DIR,
    TABLE_NAMES,
    list_snapshots,
    read_current,
    read_manifest,
    snapshot_folder,
    write_lease,
)
from tests.support.api_harness import Published


def publish(world: Published, **kwargs: object):
    w = world.world
    return publish_snapshot(w.warehouse, w.serving_dir, **kwargs)


def test_publish_copies_every_mart_with_the_warehouse_row_counts(fresh_world: Published) -> None:
    result = publish(
        fresh_world,
        identity_settings=IdentitySettings(phone_default_region="GB"),
        as_of=date(2025, 6, 30),
    )
    world = fresh_world.world
    assert read_current(world.serving_dir) == result.snapshot_id
    manifest = read_manifest(result.folder)
    assert set(MART_NAMES) == set(TABLE_NAMES) == set(manifest.tables)
    con = duckdb.connect(str(world.warehouse), read_only=True)
    try:
        for mart in MART_NAMES:
            expected = con.execute(f"select count(*) from {mart}").fetchone()[0]
            assert manifest.tables[mart] == expected, mart
    finally:
        con.close()
    assert manifest.tables["identity_records"] == 3 * 299 + 1 + 1  # + anonymous, + email record
    assert manifest.tables["customer_aliases"] == 2
    assert manifest.tables["identity_evidence"] == 2 * (2 * 299 + 1 + 1)  # both directions
    assert manifest.as_of == date(2025, 6, 30)
    assert manifest.identity_settings["phone_default_region"] == "GB"
    assert manifest.size_bytes == (result.folder / DATABASE_FILE).stat().st_size
    sqlite = sqlite3.connect(result.folder / DATABASE_FILE)
    try:
        for table, rows in manifest.tables.items():
            assert sqlite.execute(f'select count(*) from "{table}"').fetchone()[0] == rows
        occurred, is_anonymous = sqlite.execute(
            "select c.signed_up_at, c.is_anonymous from customers c where customer_id = 'cus_0001'"
        ).fetchone()
        assert occurred == "2024-05-25T23:00:00.000000Z"
        assert is_anonymous == 0
    finally:
        sqlite.close()
    for path in result.folder.iterdir():
        assert not os.access(path, os.W_OK) or os.geteuid() == 0
        assert path.stat().st_mode & 0o222 == 0


def test_every_lookup_uses_an_index(fresh_world: Published) -> None:
    result = publish(fresh_world)
    con = sqlite3.connect(result.folder / DATABASE_FILE)
    plans = {
        "identifier": "select * from identifier_lookup where identifier_type = ? and "
        "identifier_value = ?",
        "customer": "select * from customers where customer_id = ?",
        "traits": "select * from customer_traits where customer_id = ?",
        "segments": "select * from customer_segments where customer_id = ?",
        "members": "select * from customer_segments where segment = ? and customer_id > ? "
        "order by customer_id",
        "events": "select * from customer_events where customer_id = ? "
        "order by occurred_at desc, event_id desc limit 5",
        "identifiers": "select * from customer_identifiers where customer_id = ?",
        "records": "select * from identity_records where customer_id = ?",
        "evidence": "select * from identity_evidence where customer_id = ?",
        "aliases": "select * from customer_aliases where alias_customer_id = ?",
        "history": "select * from customer_id_history where customer_id = ? order by occurred_at",
        "history_related": "select * from customer_id_history where related_customer_id = ? "
        "order by occurred_at",
    }
    try:
        for name, sql in plans.items():
            params = ["x"] * sql.count("?")
            plan = " ".join(row[-1] for row in con.execute(f"explain query plan {sql}", params))
            assert "USING" in plan and "SCAN" not in plan.replace("USING INDEX", ""), (name, plan)
            assert "TEMP B-TREE" not in plan, (name, plan)
    finally:
        con.close()


def test_retention_keeps_the_newest_and_leased_snapshots(fresh_world: Published) -> None:
    world = fresh_world.world
    first = publish(fresh_world, keep=2)
    write_lease(world.serving_dir, [first.snapshot_id])  # a live API (this process) holds it
    ids = [publish(fresh_world, keep=2).snapshot_id for _ in range(3)]
    assert list_snapshots(world.serving_dir) == sorted([first.snapshot_id, *ids[-2:]])
    assert read_current(world.serving_dir) == ids[-1]
    # the holder lets go; the next publish deletes it
    write_lease(world.serving_dir, [])
    latest = publish(fresh_world, keep=2)
    assert list_snapshots(world.serving_dir) == [ids[-1], latest.snapshot_id]
    assert first.snapshot_id in latest.deleted


def test_leases_of_dead_processes_are_ignored(fresh_world: Published) -> None:
    world = fresh_world.world
    first = publish(fresh_world, keep=1)
    leases = world.serving_dir / LEASES_DIR
    leases.mkdir(exist_ok=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    lease = leases / "dead.json"
    lease.write_text(
        json.dumps(
            {"host": os.uname().nodename, "pid": int(dead.stdout), "snapshots": [first.snapshot_id]}
        )
    )
    second = publish(fresh_world, keep=1)
    assert list_snapshots(world.serving_dir) == [second.snapshot_id]
    assert not lease.exists()


def test_duplicate_key_fails_and_leaves_current_untouched(fresh_world: Published) -> None:
    world = fresh_world.world
    good = publish(fresh_world)
    con = duckdb.connect(str(world.warehouse))
    con.execute(
        "insert into customers by name select * from customers where customer_id = 'cus_0003'"
    )
    con.close()
    with pytest.raises(
        PublishError, match=r"customers: UNIQUE constraint failed.*must be unique and not null"
    ):
        publish(fresh_world)
    assert read_current(world.serving_dir) == good.snapshot_id
    assert list_snapshots(world.serving_dir) == [good.snapshot_id]
    assert not list(world.serving_dir.glob(".build-*"))


def test_missing_inputs_are_named(tmp_path: Path, fresh_world: Published) -> None:
    world = fresh_world.world
    with pytest.raises(PublishError, match="no warehouse; run the dbt assets first"):
        publish_snapshot(tmp_path / "nope.duckdb", world.serving_dir)
    con = duckdb.connect(str(world.warehouse))
    con.execute("drop table campaign_metrics")
    con.execute("drop table identifier_lookup")
    con.close()
    # every missing table in one message, before anything is copied
    with pytest.raises(
        PublishError,
        match=r"the warehouse has no table 'campaign_metrics'; the warehouse has no table "
        r"'identifier_lookup'; run the dbt marts",
    ):
        publish(fresh_world)
    assert read_current(world.serving_dir) is None
    assert not (world.serving_dir / CURRENT_FILE).exists()
    assert not list(world.serving_dir.glob(".build-*"))


def test_publish_reads_only_the_warehouse(fresh_world: Published) -> None:
    """Identity explanations are marts now: the lake's identity Parquet is not read."""
    world = fresh_world.world
    for path in world.identity_dir.iterdir():
        path.unlink()
    result = publish(fresh_world)
    assert result.manifest.tables["identity_records"] == world.tables["identity_records"]
    assert result.manifest.tables["customer_id_history"] == 2


def test_a_missing_column_the_api_reads_is_refused(fresh_world: Published) -> None:
    world = fresh_world.world
    con = duckdb.connect(str(world.warehouse))
    con.execute("alter table customer_segments drop column entered_at")
    con.execute("alter table identity_evidence drop column other_customer_id")
    con.execute("alter table customer_id_history drop column event_number")
    con.close()
    with pytest.raises(PublishError) as refused:
        publish(fresh_world)
    message = str(refused.value)
    assert re.search(r"customer_segments: .*lacks columns \['entered_at'\]", message)
    assert re.search(r"identity_evidence: .*lacks columns \['other_customer_id'\]", message)
    # a key column is declared too: the snapshot's primary key
    assert re.search(r"customer_id_history: .*lacks columns \['event_number'\]", message)
    assert read_current(world.serving_dir) is None


def test_a_locked_warehouse_is_waited_for_then_reported(fresh_world: Published) -> None:
    world = fresh_world.world
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(world.warehouse)!r}); "
            "print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(PublishError, match=r"still locked after 1s.*is a dbt build running"):
            publish(fresh_world, warehouse_wait_seconds=1.0)
    finally:
        holder.kill()
        holder.wait()
    assert read_current(world.serving_dir) is None


def test_snapshot_ids_sort_by_publish_time(fresh_world: Published) -> None:
    earlier = publish(fresh_world, now=datetime(2025, 1, 1, tzinfo=UTC))
    later = publish(fresh_world, now=datetime(2025, 1, 2, tzinfo=UTC))
    assert earlier.snapshot_id < later.snapshot_id
    assert snapshot_folder(fresh_world.world.serving_dir, later.snapshot_id) == later.folder
    assert read_manifest(later.folder).created_at == datetime(2025, 1, 2, tzinfo=UTC)
