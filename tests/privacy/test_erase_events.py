"""``privacy.erase_events.EventsEraser`` over a real event log, processor state, outbox and
delivery worker: the person's events, live rows, links, timers and firings go, their outbox
messages are pseudonymized and never sent, another person's data all stays."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from events.config import load_realtime
from events.delivery import DeliveryWorker
from events.fold import FAILED_DIR, PROVISIONAL_NAME, export_provisional, fold_failed_events
from events.log import SqliteEventLog
from events.processor import StreamProcessor, log_path
from events.state import state_path
from events.types import EventKind, FailedEvent, ProductLine
from identity import IdentitySettings, Normalizer
from privacy.erase_events import (
    EventsEraser,
    suppression_filter,
)
from privacy.keys import Keyring, load_keyring
from privacy.suppression import (
    CUSTOMER_ID_TYPE,
    PSEUDONYM_PREFIX,
    PrivacyStore,
    Suppression,
    SuppressionCache,
)
from tests.conftest import TEST_PRIVACY_KEY
from tests.support.api_world import customer_id, email
from tests.support.stream_world import CONFIG, StreamWorld, event, make_world
from tests.support.webhooks import FakeWebhook

PERSON = 3  # api_world: person3@shopmail.com, ACC-3, ck_3; email consent (3 % 4 != 0)
OTHER = 7
NEW_COOKIE = "ck_new_device_3"  # a cookie only the live path links to the person


def normalize(kind: str, raw: Any) -> Any:
    return _NORMALIZER.identifier(kind, raw)


_NORMALIZER = Normalizer(IdentitySettings())


@dataclass
class World:
    stream: StreamWorld
    keyring: Keyring
    hook: FakeWebhook

    @property
    def home(self) -> Path:
        return self.stream.home

    def person(self, *identifiers: tuple[str, str]) -> Suppression:
        """The person as erasure lists them: email, account, cookie and customer id."""
        return Suppression.of_identifiers(
            self.keyring,
            identifiers
            or (
                ("email", email(PERSON)),
                ("account_id", f"ACC-{PERSON}"),
                ("cookie_id", f"ck_{PERSON}"),
                (CUSTOMER_ID_TYPE, customer_id(PERSON)),
            ),
        )

    def eraser(self) -> EventsEraser:
        return EventsEraser(self.home, normalize)

    def state(self) -> sqlite3.Connection:
        return sqlite3.connect(state_path(self.home))

    def deliver(self, at: datetime | None = None) -> int:
        """Run the delivery worker once (as of ``at``: the cart reminders are due later)."""
        config, _ = load_realtime(self.stream.config_path)
        clock = (lambda: at) if at is not None else None
        with DeliveryWorker(self.home, config, clock=clock) as worker:
            return worker.run_once().delivered


def _rows(conn: sqlite3.Connection, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


def _process(home: Path, *, timers_at: datetime | None = None) -> None:
    processor = StreamProcessor.from_home(home)
    try:
        while processor.process_batch():
            pass
        if timers_at is not None:
            processor.fire_timers(timers_at)
    finally:
        processor.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    hook = FakeWebhook()
    with hook:
        # two email sends a person (price drop, then cart reminder): no adaptive cap
        config = {
            "decisions": {**CONFIG["decisions"], "frequency": {"enabled": False}},
            "realtime": {**CONFIG["realtime"], "channels": {"email": {"url": hook.url}}},
        }
        stream = make_world(tmp_path / "home", config)
        home = stream.home
        now = datetime.now(UTC)
        with SqliteEventLog(log_path(home)) as log:
            log.append(
                [
                    event(EventKind.LOGIN, anonymous_id=f"ck_{PERSON}", user_id=f"ACC-{PERSON}"),
                    event(
                        EventKind.PRODUCT_VIEW,
                        anonymous_id=f"ck_{PERSON}",
                        products=[ProductLine("P1")],
                    ),
                    event(
                        EventKind.ADD_TO_CART,
                        anonymous_id=f"ck_{PERSON}",
                        products=[ProductLine("P2", price=120.0)],
                    ),
                    # a new device signs in by email written differently: the live path links it
                    event(
                        EventKind.IDENTIFY,
                        anonymous_id=NEW_COOKIE,
                        identifiers={"email": f"  Person{PERSON}@ShopMail.COM "},
                        body={"traits": {"email": email(PERSON), "first_name": "Ann"}},
                    ),
                    event(EventKind.PAGE_VIEW, anonymous_id=NEW_COOKIE),
                    event(EventKind.LOGIN, anonymous_id=f"ck_{OTHER}", user_id=f"ACC-{OTHER}"),
                    event(
                        EventKind.IDENTIFY,
                        anonymous_id="ck_new_device_7",
                        identifiers={"email": email(OTHER)},
                    ),
                    event(
                        EventKind.PRODUCT_VIEW,
                        anonymous_id=f"ck_{OTHER}",
                        products=[ProductLine("P1")],
                    ),
                    event(
                        EventKind.ADD_TO_CART,
                        anonymous_id=f"ck_{OTHER}",
                        products=[ProductLine("P4", price=30.0)],
                    ),
                    event(EventKind.PRICE_CHANGE, products=[ProductLine("P1", price=50.0)]),
                ],
                [
                    FailedEvent(
                        source="site",
                        reason="invalid_json",
                        detail="bad json",
                        received_at=now,
                        body=f'{{"traits": {{"email": "{email(PERSON)}"'.encode(),
                    ),
                    FailedEvent(
                        source="site",
                        reason="invalid_json",
                        detail="bad json",
                        received_at=now,
                        body=f'{{"traits": {{"email": "{email(OTHER)}"'.encode(),
                    ),
                    # the newest failed event is the person's: emptied, not deleted
                    FailedEvent(
                        source="site",
                        reason="invalid_field",
                        detail="timestamp",
                        received_at=now,
                        body=f'{{"userId": "ACC-{PERSON}", "timestamp": "soon"}}'.encode(),
                    ),
                ],
            )
        _process(home)
        world = World(stream, load_keyring(home, TEST_PRIVACY_KEY), hook)
        assert world.deliver() == 2  # both price-drop messages (the person's and the other's)
        _process(home, timers_at=now + timedelta(minutes=31))  # cart reminders: pending
        with SqliteEventLog(log_path(home)) as log:
            # the newest event is the person's: emptied, not deleted (offsets stay monotone)
            log.append([event(EventKind.PAGE_VIEW, anonymous_id=f"ck_{PERSON}")])
        _process(home)
        lake = home / "lake"
        fold_failed_events(log_path(home), lake)
        export_provisional(state_path(home), lake)
        yield world


def _count(world: World, sql: str, *params: Any) -> int:
    conn = world.state()
    try:
        return int(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.close()


def _ids(world: World) -> tuple[str, str]:
    return customer_id(PERSON), customer_id(OTHER)


def test_erase_removes_the_person_everywhere_and_keeps_the_other(world: World) -> None:
    mine, other = _ids(world)
    eraser = world.eraser()
    person = world.person()
    before = eraser.scan(person)
    assert before.remaining > 0
    with world.state() as conn:
        outbox_before = _rows(conn, "select customer_id, status from outbox order by message_id")
        other_rows = {
            table: _rows(conn, f"select * from {table} where customer_id = ?", other)
            for table in ("live_profiles", "live_events", "live_cart", "timers", "trigger_firings")
        }
        live_ids = {r[0] for r in _rows(conn, "select customer_id from live_identities")}
    assert {m[0] for m in outbox_before} == {mine, other}
    assert (mine, "pending") in outbox_before and (mine, "delivered") in outbox_before
    assert all(other_rows.values()), other_rows
    assert mine in live_ids

    outcome = eraser.erase(person)
    assert outcome.total > 0 and not outcome.absent
    assert outcome.removed["log.events"] == 6  # 5 of theirs + the newest, emptied
    assert outcome.removed["log.failed_events"] == 2
    assert outcome.removed["state.outbox_pseudonymized"] == 2
    assert eraser.scan(person).remaining == 0

    # the log: none of their events; the other's and the catalog event stay
    with SqliteEventLog(log_path(world.home)) as log:
        events = log.read(0, 1000)
        failed = log.failed(limit=100, after_id=0)
    cookies = {e.anonymous_id for e in events}
    assert f"ck_{PERSON}" not in cookies and NEW_COOKIE not in cookies
    assert f"ck_{OTHER}" in cookies
    assert sum(1 for e in events if e.anonymous_id == f"ck_{OTHER}") == 3
    assert any(e.kind == EventKind.PRICE_CHANGE for e in events)
    newest = events[-1]
    assert (newest.anonymous_id, newest.user_id, dict(newest.body)) == (None, None, {})
    assert email(OTHER).encode() in bytes(failed[0].body)
    assert failed[-1].body == b""  # the newest failed event: kept, emptied
    assert len(failed) == 2

    # the state: nothing keyed by their id, no link of their identifiers; the other's intact
    with world.state() as conn:
        for table in (
            "live_profiles",
            "live_counters",
            "live_product_views",
            "live_cart",
            "live_events",
            "timers",
            "trigger_firings",
            "live_identities",
        ):
            assert _rows(conn, f"select 1 from {table} where customer_id = ?", mine) == [], table
        values = {r[0] for r in _rows(conn, "select identifier_value from live_identities")}
        assert not values & {email(PERSON), f"ck_{PERSON}", NEW_COOKIE, f"ACC-{PERSON}"}
        assert "ck_new_device_7" in values
        for table, rows in other_rows.items():
            assert _rows(conn, f"select * from {table} where customer_id = ?", other) == rows
        outbox_after = _rows(
            conn, "select customer_id, status, payload, last_error from outbox order by message_id"
        )
    assert len(outbox_after) == len(outbox_before)  # delivery counts survive
    alias = person.pseudonym(mine) or ""
    theirs = [m for m in outbox_after if m[0] == alias]
    assert alias.startswith(PSEUDONYM_PREFIX) and len(theirs) == 2
    assert {m[1] for m in theirs} == {"delivered", "dead"}  # the pending one: dead-lettered
    assert all(m[2] == "{}" for m in theirs)
    assert [m[3] for m in theirs if m[1] == "dead"] == ["erased"]
    assert {m[1] for m in outbox_after if m[0] == other} == {"delivered", "pending"}

    # the lake's real-time exports: their failed events and provisional links are gone
    for path in (world.home / "lake" / "_realtime" / FAILED_DIR).glob("*.parquet"):
        bodies = b"".join(pq.read_table(path)["body"].to_pylist())
        assert email(PERSON).encode() not in bodies and f"ACC-{PERSON}".encode() not in bodies
        assert email(OTHER).encode() in bodies
    provisional = pq.read_table(world.home / "lake" / "_realtime" / PROVISIONAL_NAME)
    assert NEW_COOKIE not in provisional["identifier_value"].to_pylist()

    # the pending message of theirs is never sent; the other's is
    seen = len(world.hook.requests)
    assert world.deliver(datetime.now(UTC) + timedelta(hours=1)) == 1
    sent = [orjson.loads(r.body) for r in world.hook.requests[seen:]]
    assert len(sent) == 1 and mine not in orjson.dumps(sent).decode()


def test_erase_twice_removes_nothing_the_second_time(world: World) -> None:
    eraser = world.eraser()
    assert eraser.erase(world.person()).total > 0
    second = eraser.erase(world.person())
    assert second.total == 0 and second.removed == {}
    assert eraser.scan(world.person()).remaining == 0


def test_related_names_the_live_links_and_the_list_then_covers_them(world: World) -> None:
    # as erasure lists a known person: their identifiers and customer id
    person = world.person(("email", email(PERSON)), (CUSTOMER_ID_TYPE, customer_id(PERSON)))
    related = world.eraser().related(person)
    assert related == {world.keyring.hash("cookie_id", NEW_COOKIE): "cookie_id"}
    outcome = world.eraser().erase(person)
    assert outcome.removed["log.events"] == 6  # the cookies' events too, by the live links
    full = Suppression.of(world.keyring, {**related, **dict(person.entries)})
    assert world.eraser().scan(full).remaining == 0


def test_a_person_only_the_live_path_knows_is_found_by_email(world: World) -> None:
    with SqliteEventLog(log_path(world.home)) as log:
        log.append(
            [
                event(
                    EventKind.IDENTIFY,
                    anonymous_id="ck_newbie",
                    identifiers={"email": "newbie@example.org"},
                ),
                event(EventKind.PAGE_VIEW, anonymous_id="ck_newbie"),
                event(EventKind.PAGE_VIEW, anonymous_id=f"ck_{OTHER}"),
            ]
        )
    _process(world.home)
    person = world.person(("email", "newbie@example.org"))
    related = world.eraser().related(person)
    assert sorted(related.values()) == ["cookie_id", "customer_id"]  # the provisional id
    outcome = world.eraser().erase(person)
    assert outcome.removed["log.events"] == 2
    assert outcome.removed["state.live_identities"] == 2
    assert outcome.removed["state.live_profiles"] == 1
    assert (
        world.eraser().scan(Suppression.of(world.keyring, {**related, **person.entries})).remaining
        == 0
    )


def test_the_files_no_longer_hold_the_email_bytes(world: World) -> None:
    files = [log_path(world.home), state_path(world.home)]

    def raw() -> bytes:
        data = b""
        for path in files:
            for suffix in ("", "-wal"):
                target = Path(f"{path}{suffix}")
                if target.is_file():
                    data += target.read_bytes()
        return data

    needle = email(PERSON).encode()
    assert needle in raw()
    world.eraser().erase(world.person())
    data = raw()
    assert needle not in data
    assert f"ck_{PERSON}".encode() not in data
    assert email(OTHER).encode() in data  # the check could fail: the other's bytes are there
    for path in files:  # erasure switched the files to incremental vacuum (retention's way)
        with sqlite3.connect(path) as conn:
            assert conn.execute("pragma auto_vacuum").fetchone()[0] == 2


def test_a_later_erasure_without_full_vacuum_leaves_no_bytes_either(world: World) -> None:
    """After the first erasure the files shrink by incremental vacuum only: secure_delete and
    the WAL truncation alone must keep the next person's bytes out."""
    world.eraser().erase(world.person(("email", "nobody@nowhere.org")))
    first = world.eraser().erase(
        world.person(("email", email(OTHER)), (CUSTOMER_ID_TYPE, customer_id(OTHER)))
    )
    assert first.total > 0
    with sqlite3.connect(log_path(world.home)) as conn:
        assert conn.execute("pragma auto_vacuum").fetchone()[0] == 2
    world.eraser().erase(world.person())
    for path in (log_path(world.home), state_path(world.home)):
        for suffix in ("", "-wal"):
            target = Path(f"{path}{suffix}")
            if target.is_file():
                data = target.read_bytes()
                assert email(PERSON).encode() not in data, target.name
                assert f"ck_{PERSON}".encode() not in data, target.name
                assert email(OTHER).encode() not in data, target.name


def test_unknown_person_and_empty_home(world: World, tmp_path: Path) -> None:
    stranger = world.person(("email", "nobody@nowhere.org"))
    assert world.eraser().erase(stranger).total == 0
    assert world.eraser().scan(stranger).remaining == 0
    empty = EventsEraser(tmp_path / "empty", normalize)
    assert empty.erase(world.person()).absent
    assert empty.scan(world.person()).remaining == 0


def test_processor_skips_events_of_a_person_erased_after_they_were_logged(
    world: World,
) -> None:
    home = world.home
    PrivacyStore.at(home).add("er_test", dict(world.person().entries))
    cache = SuppressionCache(home, world.keyring)
    with SqliteEventLog(log_path(home)) as log:
        log.append(
            [
                event(
                    EventKind.PRODUCT_VIEW,
                    anonymous_id=f"ck_{PERSON}",
                    products=[ProductLine("P3")],
                ),
                event(
                    EventKind.PRODUCT_VIEW, anonymous_id=f"ck_{OTHER}", products=[ProductLine("P3")]
                ),
            ]
        )
        config, _ = load_realtime(world.stream.config_path)
        processor = StreamProcessor.from_home(home, log=log)
        processor.suppressed = suppression_filter(
            cache.get, lambda: processor.snapshots.normalizer, config.identifiers
        )
        try:
            # listed, and the erasure has not reached the log yet: the event is skipped
            while processor.process_batch():
                pass
            assert processor.counters.suppressed == 1
            assert processor.counters.processed == 2
        finally:
            processor.close()
    assert (
        _count(
            world,
            "select count(*) from live_product_views where customer_id = ? and product_id = 'P3'",
            customer_id(PERSON),
        )
        == 0
    )
    world.eraser().erase(world.person())
    assert (
        _count(
            world, "select count(*) from live_profiles where customer_id = ?", customer_id(PERSON)
        )
        == 0
    )
    assert (
        _count(
            world,
            "select count(*) from live_product_views where customer_id = ? and product_id = 'P3'",
            customer_id(OTHER),
        )
        == 1
    )


def test_failed_events_file_emptied_is_removed(world: World) -> None:
    folder = world.home / "lake" / "_realtime" / FAILED_DIR
    only = folder / "failed-999999999990-999999999990.parquet"
    table = pq.read_table(next(folder.glob("*.parquet")))
    mine = table.filter(pa.array([email(PERSON).encode() in b for b in table["body"].to_pylist()]))
    pq.write_table(mine, only)
    outcome = world.eraser().erase(world.person())
    assert not only.exists()
    assert any("failed-999999999990" in note for note in outcome.notes)


def test_the_suppression_cache_reloads_only_when_the_list_changed(tmp_path: Path) -> None:
    keyring = load_keyring(tmp_path, TEST_PRIVACY_KEY)
    watched = SuppressionCache(tmp_path, keyring)
    assert not watched.get()  # no file yet: empty, nothing created
    assert not (tmp_path / "privacy").exists()
    store = PrivacyStore.at(tmp_path)
    store.add("er_1", {keyring.hash("email", "a@x.org"): "email"})
    assert watched.get().matches("email", "a@x.org")
    first = watched.get()
    assert watched.get() is first  # unchanged file: the same matcher, nothing reloaded
    store.add("er_2", {keyring.hash("cookie_id", "ck_b"): "cookie_id"})
    assert watched.get().matches("cookie_id", "ck_b") and len(watched.get()) == 2
    watched.close()
