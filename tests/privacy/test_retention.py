"""Retention with real stores: the event log, the live state and outbox, the folded lake files
(ingested by the real ingest), the decision log and its export.

Old rows go, young rows and events a reader has not consumed stay, a second run changes nothing,
and ingesting the landing folder again brings nothing back.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from dagster_project.lib.config import load_config
from dagster_project.lib.generate.config_writer import sample_config
from dagster_project.lib.ingest import ingest_source, read_lake
from dagster_project.lib.ingest.report import FileStatus
from dagster_project.lib.workspace import Workspace
from decisions.policy import parse_policy
from decisions.store import DecisionStore, StoreError, default_store_path, read_export
from decisions.types import Decision, DecisionItem
from events.config import FoldSettings, IdentifierTypes, LiveProfileSettings, RealtimeConfig
from events.fold import file_name, fold
from events.live import apply_event
from events.log import SqliteEventLog
from events.outbox import OutboxMessage, enqueue, mark_delivered
from events.processor import CONSUMER
from events.state import StateStore, set_offset
from events.types import EventKind, FailedEvent, NewEvent, ProductLine
from privacy.config import PrivacyConfig, RetentionSettings
from privacy.retention import (
    RetentionError,
    RetentionPaths,
    RetentionReport,
    StoreReport,
    apply_retention,
    minimum_decisions_days,
    retention_problems,
)
from tests.support.stream_world import event

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=60)  # older than the 30-day event retention
YOUNG = NOW - timedelta(days=1)
OLD_DECISION = NOW - timedelta(days=200)  # older than the 90-day decision retention
YOUNG_DECISION = NOW - timedelta(days=10)
FOLDED = ("realtime_events", "realtime_price_changes")
PRIVACY = PrivacyConfig(retention=RetentionSettings(events_days=30, decisions_days=90))


def _event(n: int, at: datetime) -> NewEvent:
    return event(
        EventKind.PRODUCT_VIEW,
        anonymous_id=f"ck_{n}",
        identifiers={"email": f"person{n}@shopmail.com"},
        products=[ProductLine(f"P{n}")],
        at=at,
        message_id=f"m-{n}",
        name="Product Viewed",
        body={"properties": {"note": "x" * 4000}},  # pages enough for the file to shrink
    )


def _failed(n: int, at: datetime) -> FailedEvent:
    return FailedEvent("web", "invalid_json", "not JSON", at, f"f-{n}", b"{oops")


def _decision(customer: str, at: datetime) -> Decision:
    start = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return Decision(
        decision_id=f"d-{customer}-{start:%Y%m%d}",
        customer_id=customer,
        channel="email",
        placement="daily_email",
        policy_version="abc123def456",
        decided_at=at,
        expires_at=start + timedelta(days=1),
        send=True,
        reasons=(),
        theme=None,
        items=(
            DecisionItem(
                product_id="P1", sale_id=None, score=1.0, propensity=0.5, is_wildcard=False
            ),
        ),
        subject="Hi Ada",
        blocks={"intro": "Dear Ada"},
        subject_masked="Hi there",
        blocks_masked={"intro": "Dear customer"},
        experiment=None,
        is_holdout=False,
    )


class World:
    """A CDP_HOME whose every store holds old and young data."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True)
        sources = [s for s in sample_config()["sources"] if s["name"] in FOLDED]
        self.config_path = home / "cdp.yml"
        self.config_path.write_text(
            yaml.safe_dump({"version": 1, "landing": "landing", "sources": sources})
        )
        self.loaded = load_config(self.config_path)
        self.workspace = Workspace(home).ensure()
        self.landing = self.loaded.landing_dir(home)
        self.log_path = home / "events" / "log.sqlite"
        self.paths = RetentionPaths(
            home=home,
            landing_dir=self.landing,
            lake_dir=self.workspace.lake,
            quarantine_dir=self.workspace.quarantine,
            decision_export_dir=self.workspace.lake / "_decisions",
        )

    # building

    def append(self, events: list[NewEvent], failures: list[FailedEvent] = ()) -> None:  # type: ignore[assignment]
        with SqliteEventLog(self.log_path) as log:
            log.append(events, failures)

    def fold_and_ingest(self) -> None:
        fold(self.home, self.landing, FoldSettings(), IdentifierTypes(), now=NOW)
        self.ingest()

    def ingest(self) -> list[FileStatus]:
        source = self.loaded.config.source("realtime_events")
        report = ingest_source(self.loaded, source, self.workspace, ingested_at=NOW)
        return [f.status for f in report.files]

    def build(self) -> None:
        self.append([_event(n, OLD + timedelta(seconds=n)) for n in range(1, 5)])
        self.fold_and_ingest()  # events-1-4: every line old
        self.append(
            [_event(n, OLD + timedelta(seconds=n)) for n in range(5, 7)]
            + [_event(n, YOUNG + timedelta(seconds=n)) for n in range(7, 11)],
            [_failed(1, OLD), _failed(2, OLD), _failed(3, YOUNG)],
        )
        self.fold_and_ingest()  # events-5-10: straddles the cutoff
        with SqliteEventLog(self.log_path) as log:
            logged = log.read(0, 100)
        state = StateStore(self.home / "events" / "state.sqlite")
        try:
            with state.transaction() as conn:
                for event in logged:
                    apply_event(conn, "c1", False, event, LiveProfileSettings())
                set_offset(conn, CONSUMER, 5, NOW)  # the processor is behind: 6 is unconsumed
                messages = [
                    OutboxMessage(f"k{i}", "email", "price_drop", "c1", f"d{i}", {"i": i}, at)
                    for i, at in enumerate((OLD, OLD, YOUNG, YOUNG))
                ]
                enqueue(conn, messages)
                mark_delivered(conn, 1, OLD)  # old and delivered: goes
                mark_delivered(conn, 3, YOUNG)  # young: stays; 2 old but pending: stays
        finally:
            state.close()
        with DecisionStore.open(default_store_path(self.home)) as store:
            for at in (OLD_DECISION, YOUNG_DECISION):
                store.deliver_many([(_decision(c, at), [], {c}, False) for c in ("c1", "c2")], at)
            store.record_outcome(
                _decision("c1", OLD_DECISION).decision_id, "email", "open", OLD_DECISION
            )
            store.record_outcome(
                _decision("c1", YOUNG_DECISION).decision_id, "email", "open", YOUNG_DECISION
            )
            store.record_consent("c2", "email", True, OLD_DECISION, "signup")
            store.export(self.paths.decision_export_dir)

    # reading

    def offsets(self) -> list[int]:
        with SqliteEventLog(self.log_path) as log:
            return [e.offset for e in log.read(0, 100)]

    def state_rows(self, sql: str) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(self.home / "events" / "state.sqlite")
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def lake_ids(self) -> list[str]:
        return sorted(read_lake(self.workspace, "realtime_events")["record_id"].to_pylist())

    def files_digest(self) -> dict[str, str]:
        """Every file but the SQLite databases (whose WAL a reader may touch)."""
        return {
            str(p.relative_to(self.home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.home.rglob("*"))
            if p.is_file() and ".sqlite" not in p.name and "writer-lock" not in p.name
        }

    def retain(self, privacy: PrivacyConfig = PRIVACY) -> RetentionReport:
        return apply_retention(
            self.paths,
            privacy,
            RealtimeConfig(),
            parse_policy(None),
            events_key_columns=["event_id"],
            now=NOW,
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    built = World(tmp_path / "home")
    built.build()
    return built


def test_old_rows_leave_every_store_young_and_unconsumed_ones_stay(world: World) -> None:
    log_bytes = world.log_path.stat().st_size
    report = world.retain()
    stores = {s.store: s for s in report.stores}
    # the event log: 1-5 consumed and old; 6 old but the processor has not read it
    assert world.offsets() == [6, 7, 8, 9, 10]
    assert stores["event_log"].rows_removed == {"events": 5, "failed_events": 2}
    assert stores["event_log"].kept["events_not_consumed"] == 1
    assert stores["event_log"].bytes_freed > 0
    with SqliteEventLog(world.log_path) as log:
        assert [f.message_id for f in log.failed(limit=10)] == ["f-3"]
    assert world.log_path.stat().st_size <= log_bytes
    # the live state and the outbox
    assert [r[0] for r in world.state_rows("select offset from live_events order by 1")] == [
        7,
        8,
        9,
        10,
    ]
    views = world.state_rows("select product_id from live_product_views order by 1")
    assert [v[0] for v in views] == ["P10", "P7", "P8", "P9"]
    outbox = world.state_rows("select message_key, status from outbox order by 1")
    assert outbox == [("k1", "pending"), ("k2", "delivered"), ("k3", "pending")]
    # the lake: the all-old file is empty, the straddling one keeps its young lines
    folder = world.landing / "realtime"
    assert (folder / file_name("events", 1, 4)).read_bytes() == b""
    kept = (folder / file_name("events", 5, 10)).read_bytes()
    assert [line.split(b'"event_id":"')[1][:4] for line in kept.splitlines()] == [
        b'm-7"',
        b'm-8"',
        b'm-9"',
        b"m-10",
    ]
    assert world.lake_ids() == ["m-10", "m-7", "m-8", "m-9"]
    lake = read_lake(world.workspace, "realtime_events")
    sha = hashlib.sha256(kept).hexdigest()
    by_id = dict(zip(lake["record_id"].to_pylist(), lake["_source_line"].to_pylist(), strict=True))
    assert by_id == {"m-7": 1, "m-8": 2, "m-9": 3, "m-10": 4}  # lines renumbered
    assert set(lake["_file_sha256"].to_pylist()) == {sha}
    assert stores["realtime_lake"].rows_removed["lake_rows"] == 6
    failed = pq.read_table(next((world.workspace.lake / "_realtime" / "failed_events").glob("*")))
    assert failed["message_id"].to_pylist() == ["f-3"]
    # the decision log and its export: the old period's decisions and outcome, not consent
    assert stores["decision_log"].rows_removed == {"choices": 2, "deliveries": 2, "outcomes": 1}
    with DecisionStore.open(default_store_path(world.home)) as store:
        counts = store.counts()
        assert (counts["choices"], counts["deliveries"], counts["outcomes"]) == (2, 2, 1)
        assert counts["consent_events"] == 1
        exported = read_export(world.paths.decision_export_dir, "deliveries")
        assert sorted(exported["decided_at"].to_pylist()) == [YOUNG_DECISION] * 2
        assert sorted(
            p.stem for p in (world.paths.decision_export_dir / "decisions").iterdir()
        ) == [f"{YOUNG_DECISION:%Y-%m-%d}"]
        # the next incremental export trusts the purged manifest and brings nothing back
        again = store.export(world.paths.decision_export_dir)
        assert not again.full and again.written["deliveries"] == 0
        full = store.export(world.home / "full", full=True)
        for table in full.totals:
            assert read_export(world.paths.decision_export_dir, table).equals(
                read_export(world.home / "full", table)
            ), table


def test_a_second_run_changes_nothing_and_a_new_ingest_brings_nothing_back(world: World) -> None:
    world.retain()
    before = world.files_digest()
    second = world.retain()
    assert second.rows_removed == 0
    assert all(s.files_rewritten == 0 and s.files_removed == 0 for s in second.stores)
    assert world.files_digest() == before
    # the rewritten landing files are known by their new checksums: nothing is ingested again
    statuses = world.ingest()
    assert FileStatus.INGESTED not in statuses
    assert world.lake_ids() == ["m-10", "m-7", "m-8", "m-9"]
    # the processor catches up; the next run removes event 6, new events keep their offsets
    state = StateStore(world.home / "events" / "state.sqlite")
    with state.transaction() as conn:
        set_offset(conn, CONSUMER, 10, NOW)
    state.close()
    third = world.retain()
    assert {s.store: s.rows_removed for s in third.stores}["event_log"]["events"] == 1
    world.append([_event(11, NOW)])
    assert world.offsets() == [7, 8, 9, 10, 11]


def test_the_newest_event_stays_so_offsets_never_restart(tmp_path: Path) -> None:
    world = World(tmp_path / "home")
    world.append([_event(n, OLD + timedelta(seconds=n)) for n in range(1, 4)])
    world.fold_and_ingest()
    state = StateStore(world.home / "events" / "state.sqlite")
    with state.transaction() as conn:
        set_offset(conn, CONSUMER, 3, NOW)
    state.close()
    report = world.retain()
    assert world.offsets() == [3]  # all old and consumed, but 3 is the head
    assert report.stores[0].kept["newest_event"] == 1
    world.append([_event(4, NOW)])
    assert world.offsets() == [3, 4]


def test_the_decision_log_stays_append_only_and_keeps_a_running_period(tmp_path: Path) -> None:
    path = default_store_path(tmp_path)
    with DecisionStore.open(path) as store:
        long_period = _decision("c9", OLD_DECISION)
        running = Decision(
            **{**long_period.__dict__, "decision_id": "d-long", "expires_at": NOW + timedelta(1)}
        )
        store.deliver_many([(running, [], {"c9"}, False)], OLD_DECISION)
        store.deliver_many([(_decision("c1", OLD_DECISION), [], {"c1"}, False)], OLD_DECISION)
        store.deliver_many([(_decision("c2", YOUNG_DECISION), [], {"c2"}, False)], YOUNG_DECISION)
        removed = store.purge_before(NOW - timedelta(days=90))
        assert removed == {"choices": 1, "deliveries": 1, "outcomes": 0}
        assert store.find_choice("c9", "daily_email", NOW) is not None  # its period still runs
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.conn.execute("delete from choices")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.conn.execute("update deliveries set is_sent = 0")
    with pytest.raises(StoreError, match="closed"):
        _ = store.conn


def test_a_retention_shorter_than_caps_or_the_live_profile_is_refused(world: World) -> None:
    policy = parse_policy(
        {"caps": [{"name": "quarterly", "channels": ["email"], "max": 5, "window": "120d"}]}
    )
    assert minimum_decisions_days(policy) == (120.0, "cap 'quarterly' (window 120d)")
    short = PrivacyConfig(retention=RetentionSettings(events_days=7, decisions_days=100))
    problems = retention_problems(short, RealtimeConfig(), policy)
    assert problems[0].startswith("privacy.retention.decisions_days: 100 days is shorter")
    assert "cap 'quarterly'" in problems[0] and "120 days" in problems[0]
    assert problems[1].startswith("privacy.retention.events_days: 7 days is shorter")
    assert "view_retention_days" in problems[1]
    before = world.files_digest()
    with pytest.raises(RetentionError, match="decisions_days: 30 days"):
        world.retain(PrivacyConfig(retention=RetentionSettings(decisions_days=30)))
    assert world.files_digest() == before  # refused before anything was touched
    assert world.offsets() == list(range(1, 11))


def test_no_retention_configured_removes_nothing(world: World) -> None:
    report = world.retain(PrivacyConfig())
    assert report.stores == [] and report.events_cutoff is None
    assert world.offsets() == list(range(1, 11))


def test_later_runs_free_pages_without_rewriting_the_whole_log(tmp_path: Path) -> None:
    world = World(tmp_path / "home")
    state = StateStore(world.home / "events" / "state.sqlite")

    def age_out(first: int, count: int) -> StoreReport:
        world.append([_event(n, OLD + timedelta(seconds=n)) for n in range(first, first + count)])
        world.append([_event(first + count, NOW)])  # the head stays young
        world.fold_and_ingest()
        with state.transaction() as conn:
            set_offset(conn, CONSUMER, first + count, NOW)
        return world.retain().stores[0]

    try:
        first = age_out(1, 40)  # converts the file to incremental auto-vacuum (one VACUUM)
        assert first.rows_removed["events"] == 40 and first.bytes_freed > 0
        conn = sqlite3.connect(world.log_path)
        assert conn.execute("pragma auto_vacuum").fetchone()[0] == 2  # incremental
        conn.close()
        later = age_out(42, 40)  # frees the pages with incremental_vacuum
        assert later.rows_removed["events"] == 40
        assert later.bytes_freed > 40 * 4000
        conn = sqlite3.connect(world.log_path)
        assert conn.execute("pragma freelist_count").fetchone()[0] == 0
        conn.close()
    finally:
        state.close()


def test_a_run_stopped_before_the_landing_file_leaves_nothing_to_ingest_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import privacy.retention as retention

    def crash(path: Path, data: bytes) -> None:
        raise OSError("disk gone")  # after the part and the manifest, before the landing file

    monkeypatch.setattr(retention, "write_atomic", crash)
    with pytest.raises(OSError, match="disk gone"):
        world.retain()
    monkeypatch.undo()
    # the first file's part lost its records; the crash came before the second file
    assert world.lake_ids() == ["m-10", "m-5", "m-6", "m-7", "m-8", "m-9"]
    assert FileStatus.INGESTED not in world.ingest()  # the old file is still known by its part
    world.retain()  # the next run finishes the files
    assert FileStatus.INGESTED not in world.ingest()
    assert world.lake_ids() == ["m-10", "m-7", "m-8", "m-9"]
    assert (world.landing / "realtime" / file_name("events", 1, 4)).read_bytes() == b""
