"""The event log folds into landing files exactly once, and the ordinary ingest takes them.

Real SQLite log (``events.log.SqliteEventLog``), real state file, real ingest into Parquet.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import yaml

from dagster_project.lib.config import load_config
from dagster_project.lib.generate.config_writer import sample_config
from dagster_project.lib.ingest import ingest_source, read_lake
from dagster_project.lib.workspace import Workspace
from events.config import FoldSettings, IdentifierTypes
from events.fold import (
    MANIFEST_NAME,
    PROVISIONAL_NAME,
    FoldError,
    coverage_problems,
    file_name,
    fold,
    folded_ranges,
    read_manifest,
    realtime_dir,
)
from events.log import SqliteEventLog
from events.state import StateStore
from events.types import EventKind, FailedEvent, NewEvent, ProductLine

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SETTINGS = FoldSettings()
IDS = IdentifierTypes()


def event(n: int, kind: EventKind, **extra: Any) -> NewEvent:
    """A valid logged-to-be event; ``n`` makes the message id."""
    values: dict[str, Any] = {
        "message_id": f"m-{n:04d}",
        "source": "web",
        "type": "track",
        "kind": kind,
        "event": None,
        "occurred_at": AT + timedelta(seconds=n),
        "received_at": AT + timedelta(seconds=n, milliseconds=5),
        "anonymous_id": "anon-1",
        "user_id": None,
        "payload_sha256": f"sha-{n}",
    }
    values.update(extra)
    return NewEvent(**values)


def sample_events(start: int) -> list[NewEvent]:
    """One of each shape: a view, a multi-product purchase, a custom event, a price change,
    an identify with an email, and a product update (not folded: no source takes it)."""
    return [
        event(
            start,
            EventKind.PRODUCT_VIEW,
            event="Product Viewed",
            products=(ProductLine("P1"),),
            body={
                "context": {
                    "page": {"url": "https://shop.example/p/1"},
                    "campaign": {"source": "news", "medium": "email", "name": "nov"},
                }
            },
        ),
        event(
            start + 1,
            EventKind.PURCHASE,
            event="Order Completed",
            user_id="A100",
            products=(ProductLine("P1", 2, 9.5), ProductLine("P2", 1, 20.0)),
            body={"properties": {"order_id": "O-9"}},
        ),
        event(start + 2, EventKind.CUSTOM, event="Wishlist Shared"),
        event(
            start + 3,
            EventKind.PRICE_CHANGE,
            event="Product Price Changed",
            anonymous_id=None,
            products=(ProductLine("P1", price=8.0),),
        ),
        event(
            start + 4,
            EventKind.IDENTIFY,
            type="identify",
            user_id="A100",
            identifiers={"email": "ann@example.com", "account_id": "A100"},
        ),
        event(
            start + 5,
            EventKind.PRODUCT_UPDATE,
            event="Product Updated",
            anonymous_id=None,
            products=(ProductLine("P2", name="Lamp"),),
        ),
    ]


def make_home(tmp_path: Path) -> tuple[Path, Path]:
    """A CDP_HOME whose cdp.yml declares only the two folded sources (as the sample does)."""
    home = tmp_path / "home"
    home.mkdir()
    sample = sample_config()
    sources = [s for s in sample["sources"] if s["name"].startswith("realtime_")]
    config = {"version": 1, "landing": "landing", "sources": sources}
    (home / "cdp.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return home, home / "landing"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def ingest_all(home: Path) -> dict[str, Any]:
    """Ingest both folded sources; returns the lake rows per source."""
    loaded = load_config(home / "cdp.yml")
    workspace = Workspace(home).ensure()
    out: dict[str, Any] = {}
    for source in loaded.config.sources:
        report = ingest_source(loaded, source, workspace, ingested_at=datetime.now(UTC))
        assert report.is_balanced(), report.summary()
        out[source.name] = read_lake(workspace, source.name)
    return out


def test_fold_writes_canonical_rows_and_a_watermark(tmp_path: Path) -> None:
    home, landing = make_home(tmp_path)
    with SqliteEventLog(home / "events" / "log.sqlite") as log:
        log.append(sample_events(1))
    report = fold(home, landing, SETTINGS, IDS, now=AT + timedelta(minutes=1))

    assert (report.offset_before, report.offset_after, report.head) == (0, 6, 6)
    assert report.events_folded == 6
    assert report.catalog_events_not_folded == 1
    assert report.lag_seconds > 0
    rows = read_jsonl(landing / "realtime" / file_name("events", 1, 6))
    by_id = {row["event_id"]: row for row in rows}
    # one row per product line for the multi-product purchase, named <message_id>#<n>
    assert sorted(by_id) == ["m-0001", "m-0002#1", "m-0002#2", "m-0003", "m-0005"]
    view = by_id["m-0001"]
    assert view["event_type"] == "product_view" and view["product_id"] == "P1"
    assert view["cookie_id"] == "anon-1" and view["account_id"] is None
    assert view["page_url"] == "https://shop.example/p/1"
    assert (view["utm_source"], view["utm_medium"], view["utm_campaign"]) == (
        "news",
        "email",
        "nov",
    )
    assert view["occurred_at"] == "2026-11-02T09:00:01.000000Z"
    assert by_id["m-0002#2"]["order_id"] == "O-9" and by_id["m-0002#2"]["account_id"] == "A100"
    assert by_id["m-0003"]["event_type"] == "custom"
    assert by_id["m-0003"]["event_name"] == "Wishlist Shared"
    assert by_id["m-0005"]["email"] == "ann@example.com"
    prices = read_jsonl(landing / "realtime" / file_name("price_changes", 1, 6))
    assert prices == [
        {
            "event_id": "m-0004",
            "product_id": "P1",
            "price": 8.0,
            "changed_at": "2026-11-02T09:00:04.000000Z",
            "log_offset": 4,
        }
    ]
    assert read_manifest(home / "lake").events_offset == 6

    again = fold(home, landing, SETTINGS, IDS)
    assert again.events_folded == 0 and again.files == []


def test_a_crash_between_file_and_manifest_rewrites_the_same_file_and_ingests_once(
    tmp_path: Path,
) -> None:
    home, landing = make_home(tmp_path)
    manifest = realtime_dir(home / "lake") / MANIFEST_NAME
    with SqliteEventLog(home / "events" / "log.sqlite") as log:
        log.append(sample_events(1))
        fold(home, landing, SETTINGS, IDS)  # creates the manifest (watermark 6)
        first_lake = ingest_all(home)
        log.append(sample_events(101))
        before_crash = manifest.read_bytes()
        fold(home, landing, SETTINGS, IDS)
        written = landing / "realtime" / file_name("events", 7, 12)
        content = written.read_bytes()
        ingest_all(home)  # the ingest may even have taken the file before the "crash"
        # the crash: the manifest update never happened
        manifest.write_bytes(before_crash)
        log.append(sample_events(201))  # more events arrive before the restart
        report = fold(home, landing, SETTINGS, IDS)

    # the same range, the same name, the same bytes; then the new events in their own file
    assert report.offset_before == 6 and report.offset_after == 18
    assert written.read_bytes() == content
    assert (landing / "realtime" / file_name("events", 13, 18)).is_file()
    assert sorted(p.name for p in (landing / "realtime").glob("events-*")) == [
        file_name("events", 0, 0),
        file_name("events", 1, 6),
        file_name("events", 7, 12),
        file_name("events", 13, 18),
    ]
    lake = ingest_all(home)
    events = lake["realtime_events"]
    ids = events.column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) == 15  # 5 rows per batch of 6 events, each once
    assert first_lake["realtime_events"].num_rows == 5
    assert lake["realtime_price_changes"].num_rows == 3


def test_failed_events_and_provisional_customers_are_queryable(tmp_path: Path) -> None:
    home, landing = make_home(tmp_path)
    with SqliteEventLog(home / "events" / "log.sqlite") as log:
        log.append(
            sample_events(1),
            [
                FailedEvent("web", "invalid_json", "body is not JSON", AT, None, b"{oops"),
                FailedEvent(None, "unauthorized", "no write key", AT, "m-x", b""),
            ],
        )
    store = StateStore(home / "events" / "state.sqlite")
    with store.transaction() as conn:
        conn.executemany(
            "insert into live_identities (identifier_type, identifier_value, customer_id, "
            "is_provisional, linked_at) values (?, ?, ?, ?, ?)",
            [
                ("cookie_id", "anon-9", "cus_00000000000000aa", 1, 1_700_000_000_000_000),
                ("email", "zoe@example.com", "cus_00000000000000aa", 1, 1_700_000_000_000_001),
                ("account_id", "A100", "cus_known", 0, 1_700_000_000_000_002),
            ],
        )
    store.close()

    report = fold(home, landing, SETTINGS, IDS)
    assert report.failed_events == 2 and report.provisional_customers == 1
    lake = home / "lake" / "_realtime"
    reasons = duckdb.sql(
        f"select reason, source from read_parquet('{lake}/failed_events/*.parquet') "
        "order by failed_id"
    ).fetchall()
    assert reasons == [("invalid_json", "web"), ("unauthorized", None)]
    provisional = duckdb.sql(
        "select identifier_type, customer_id, linked_at "
        f"from read_parquet('{lake / PROVISIONAL_NAME}') order by identifier_type"
    ).fetchall()
    assert [(t, c) for t, c, _ in provisional] == [
        ("cookie_id", "cus_00000000000000aa"),
        ("email", "cus_00000000000000aa"),
    ]
    assert provisional[0][2] == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)

    # the next fold exports only newer failures
    with SqliteEventLog(home / "events" / "log.sqlite") as log:
        log.append([], [FailedEvent("web", "event_too_large", "over 32 KB", AT, None, b"x")])
    assert fold(home, landing, SETTINGS, IDS).failed_events == 1
    count = duckdb.sql(f"select count(*) from read_parquet('{lake}/failed_events/*.parquet')")
    assert count.fetchall() == [(3,)]


def test_no_log_yet_seeds_empty_sources_the_ingest_takes(tmp_path: Path) -> None:
    home, landing = make_home(tmp_path)
    report = fold(home, landing, SETTINGS, IDS)
    assert report.events_folded == 0 and report.head == 0
    assert not (home / "events" / "log.sqlite").exists()  # the fold never creates the log
    seeds = sorted(p.name for p in (landing / "realtime").iterdir())
    assert seeds == [file_name("events", 0, 0), file_name("price_changes", 0, 0)]
    lake = ingest_all(home)
    assert lake["realtime_events"].num_rows == 0
    assert "cookie_id" in lake["realtime_events"].column_names
    provisional = duckdb.sql(
        f"select count(*) from read_parquet('{home / 'lake' / '_realtime' / PROVISIONAL_NAME}')"
    )
    assert provisional.fetchall() == [(0,)]


def test_a_log_behind_the_watermark_stops_the_fold_with_what_to_do(tmp_path: Path) -> None:
    home, landing = make_home(tmp_path)
    log_file = home / "events" / "log.sqlite"
    with SqliteEventLog(log_file) as log:
        log.append(sample_events(1))
    fold(home, landing, SETTINGS, IDS)
    for path in log_file.parent.glob("log.sqlite*"):  # the log is lost and started again
        path.unlink()
    with SqliteEventLog(log_file) as log:
        log.append(sample_events(1)[:2])
    with pytest.raises(FoldError, match=r"head offset \(2\) is behind the fold watermark \(6\)"):
        fold(home, landing, SETTINGS, IDS)
    assert read_manifest(home / "lake").events_offset == 6  # nothing moved


def test_only_price_changes_still_give_an_events_file_so_files_tile_the_offsets(
    tmp_path: Path,
) -> None:
    home, landing = make_home(tmp_path)
    with SqliteEventLog(home / "events" / "log.sqlite") as log:
        log.append(sample_events(1))
        fold(home, landing, SETTINGS, IDS)
        log.append([sample_events(7)[3]])  # offset 7: a price change only
        fold(home, landing, SETTINGS, IDS)
    assert (landing / "realtime" / file_name("events", 7, 7)).read_bytes() == b""
    assert folded_ranges(landing, SETTINGS) == [(1, 6), (7, 7)]
    assert coverage_problems(folded_ranges(landing, SETTINGS), 7) == []


def test_coverage_problems_name_gaps_overlaps_and_files_past_the_watermark() -> None:
    assert coverage_problems([], 0) == []
    assert coverage_problems([(1, 5), (6, 9)], 9) == []
    assert coverage_problems([(1, 5), (8, 9)], 9) == ["offsets 6-7 are in no events file"]
    assert coverage_problems([(1, 5)], 9) == ["offsets 6-9 are in no events file"]
    assert coverage_problems([(1, 5), (1, 7)], 7) == ["offsets 1-5 are in two events files"]
    [past] = coverage_problems([(1, 5), (6, 8)], 5)
    assert past.startswith("offsets 6-8 are in a file past the watermark 5")
