"""Real-time identity: logins link cookies, identifiers find known customers, strangers get a
provisional id that survives replay and moves onto the known customer when they identify."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from events.live import open_live_reader, read_live
from events.log import SqliteEventLog
from events.processor import StreamProcessor, log_path
from events.resolve import provisional_id
from events.state import state_path
from events.types import EventKind, ProductLine
from tests.support.api_world import customer_id
from tests.support.stream_world import StreamWorld, event, make_world


@pytest.fixture
def world(tmp_path: Path) -> StreamWorld:
    return make_world(tmp_path / "home")


@pytest.fixture
def log(world: StreamWorld) -> Iterator[SqliteEventLog]:
    with SqliteEventLog(log_path(world.home)) as opened:
        yield opened


@pytest.fixture
def processor(world: StreamWorld, log: SqliteEventLog) -> Iterator[StreamProcessor]:
    opened = StreamProcessor.from_home(world.home, log=log)
    yield opened
    opened.close()


def _drain(processor: StreamProcessor) -> None:
    while processor.process_batch():
        pass


def _owner(processor: StreamProcessor, kind: str, value: str) -> tuple[str, int] | None:
    row = processor.state.conn.execute(
        "select customer_id, is_provisional from live_identities "
        "where identifier_type = ? and identifier_value = ?",
        (kind, value),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def _views_of(processor: StreamProcessor) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for cid, pid in processor.state.conn.execute(
        "select customer_id, product_id from live_product_views order by customer_id, product_id"
    ):
        out.setdefault(cid, []).append(pid)
    return out


def test_an_email_finds_the_known_customer_normalized_as_the_batch_does(
    processor: StreamProcessor, log: SqliteEventLog
) -> None:
    log.append(
        [
            event(
                EventKind.PRODUCT_VIEW,
                anonymous_id="ck_new_device",
                identifiers={"email": "  Person7@ShopMail.com "},
                products=[ProductLine("P1")],
            )
        ]
    )
    _drain(processor)
    assert _views_of(processor) == {customer_id(7): ["P1"]}
    # the new device's cookie now belongs to customer 7; the email needed no live row
    assert _owner(processor, "cookie_id", "ck_new_device") == (customer_id(7), 0)
    assert _owner(processor, "email", "person7@shopmail.com") is None


def test_a_known_cookie_and_an_account_id_resolve_through_the_snapshot(
    processor: StreamProcessor, log: SqliteEventLog
) -> None:
    log.append(
        [
            event(EventKind.PRODUCT_VIEW, anonymous_id="ck_3", products=[ProductLine("P1")]),
            event(EventKind.PRODUCT_VIEW, user_id="ACC-4", products=[ProductLine("P2")]),
        ]
    )
    _drain(processor)
    assert _views_of(processor) == {customer_id(3): ["P1"], customer_id(4): ["P2"]}


def test_a_login_links_the_cookie_at_once(processor: StreamProcessor, log: SqliteEventLog) -> None:
    log.append(
        [
            # the cookie of customer 2's laptop, seen signing in as customer 9 (a shared device)
            event(EventKind.LOGIN, anonymous_id="ck_2", user_id="ACC-9"),
            event(EventKind.PRODUCT_VIEW, anonymous_id="ck_2", products=[ProductLine("P4")]),
        ]
    )
    _drain(processor)
    assert _owner(processor, "cookie_id", "ck_2") == (customer_id(9), 0)
    assert _views_of(processor) == {customer_id(9): ["P4"]}


def test_an_unknown_visitor_gets_a_provisional_id_stable_on_replay(
    world: StreamWorld, processor: StreamProcessor, log: SqliteEventLog
) -> None:
    log.append([event(EventKind.PRODUCT_VIEW, anonymous_id="ck_zz", products=[ProductLine("P1")])])
    _drain(processor)
    expected = provisional_id("cookie_id", "ck_zz")
    assert expected.startswith("cus_") and len(expected) == 20
    assert _owner(processor, "cookie_id", "ck_zz") == (expected, 1)
    # a second processor over a fresh state file (a rebuild from the log) gives the same id
    processor.close()
    state_path(world.home).unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{state_path(world.home)}{suffix}").unlink(missing_ok=True)
    again = StreamProcessor.from_home(world.home, log=log)
    try:
        _drain(again)
        assert _owner(again, "cookie_id", "ck_zz") == (expected, 1)
        assert _views_of(again) == {expected: ["P1"]}
    finally:
        again.close()


def test_a_provisional_visitor_who_identifies_moves_onto_the_known_customer(
    world: StreamWorld, processor: StreamProcessor, log: SqliteEventLog
) -> None:
    log.append(
        [
            event(EventKind.PRODUCT_VIEW, anonymous_id="ck_anon", products=[ProductLine("P1")]),
            event(
                EventKind.ADD_TO_CART,
                anonymous_id="ck_anon",
                products=[ProductLine("P2", quantity=2)],
            ),
        ]
    )
    _drain(processor)
    provisional = provisional_id("cookie_id", "ck_anon")
    assert _views_of(processor) == {provisional: ["P1"]}
    log.append(
        [
            event(
                EventKind.IDENTIFY,
                anonymous_id="ck_anon",
                identifiers={"email": "person5@shopmail.com"},
            ),
            event(EventKind.PRODUCT_VIEW, anonymous_id="ck_anon", products=[ProductLine("P3")]),
        ]
    )
    _drain(processor)
    known = customer_id(5)
    assert _views_of(processor) == {known: ["P1", "P3"]}
    assert _owner(processor, "cookie_id", "ck_anon") == (known, 0)
    alias = processor.state.conn.execute(
        "select customer_id from live_aliases where alias_customer_id = ?", (provisional,)
    ).fetchone()
    assert alias == (known,)
    reader = open_live_reader(state_path(world.home))
    try:
        for asked in ([known], [provisional]):
            live = read_live(reader, asked)
            assert live is not None
            assert live.cart == (("P2", 2),)
            assert live.counters == {"add_to_cart": 1, "identify": 1, "product_view": 2}
            assert len(live.recent_events) == 4
        assert read_live(reader, [known]).customer_id == known  # type: ignore[union-attr]
    finally:
        reader.close()


def test_junk_identifiers_are_not_linked_and_events_without_any_are_counted(
    processor: StreamProcessor, log: SqliteEventLog
) -> None:
    log.append(
        [
            # a placeholder email identity refuses; the cookie still resolves the person
            event(
                EventKind.PRODUCT_VIEW,
                anonymous_id="ck_8",
                identifiers={"email": "test@example.com"},
                products=[ProductLine("P1")],
            ),
            event(EventKind.PAGE_VIEW, identifiers={"email": "not an email"}),
        ]
    )
    _drain(processor)
    assert _views_of(processor) == {customer_id(8): ["P1"]}
    assert _owner(processor, "email", "test@example.com") is None
    assert processor.counters.unattributed == 1
    assert processor.counters.dead == 0


def test_a_known_persons_email_is_not_taken_by_someone_else(
    processor: StreamProcessor, log: SqliteEventLog
) -> None:
    # account 3 signs in and types customer 4's email: the event is customer 3's, and the
    # email stays customer 4's (the batch's identity rules decide on such evidence)
    log.append(
        [
            event(
                EventKind.IDENTIFY,
                anonymous_id="ck_fresh",
                user_id="ACC-3",
                identifiers={"email": "person4@shopmail.com"},
            ),
            event(
                EventKind.PRODUCT_VIEW,
                identifiers={"email": "person4@shopmail.com"},
                products=[ProductLine("P2")],
            ),
        ]
    )
    _drain(processor)
    assert _owner(processor, "cookie_id", "ck_fresh") == (customer_id(3), 0)
    assert _owner(processor, "email", "person4@shopmail.com") is None
    assert _views_of(processor) == {customer_id(4): ["P2"]}


def test_provisional_people_tied_by_one_event_become_one(
    processor: StreamProcessor, log: SqliteEventLog
) -> None:
    log.append(
        [
            # a newsletter sign-up on one device, a browse on another: two provisional people
            event(EventKind.IDENTIFY, anonymous_id="ck_a", identifiers={"email": "new@mail.com"}),
            event(EventKind.PRODUCT_VIEW, anonymous_id="ck_b", products=[ProductLine("P1")]),
            # the second device signs up with the same email, then the account is known
            event(EventKind.IDENTIFY, anonymous_id="ck_b", identifiers={"email": "new@mail.com"}),
            event(
                EventKind.IDENTIFY,
                anonymous_id="ck_b",
                user_id="ACC-6",
                identifiers={"email": "new@mail.com"},
            ),
        ]
    )
    _drain(processor)
    first = provisional_id("email", "new@mail.com")  # its first (strongest) identifier
    assert _owner(processor, "email", "new@mail.com") == (customer_id(6), 0)
    assert _owner(processor, "cookie_id", "ck_a") == (customer_id(6), 0)
    assert _owner(processor, "cookie_id", "ck_b") == (customer_id(6), 0)
    assert _views_of(processor) == {customer_id(6): ["P1"]}
    aliases = dict(
        processor.state.conn.execute("select alias_customer_id, customer_id from live_aliases")
    )
    assert aliases == {
        first: customer_id(6),
        provisional_id("cookie_id", "ck_b"): customer_id(6),
    }


def test_a_provisional_id_a_batch_run_merged_follows_the_known_customer(
    world: StreamWorld, processor: StreamProcessor, log: SqliteEventLog
) -> None:
    import duckdb

    from dagster_project.lib.publish import publish_snapshot

    log.append([event(EventKind.PRODUCT_VIEW, anonymous_id="ck_new", products=[ProductLine("P1")])])
    _drain(processor)
    provisional = provisional_id("cookie_id", "ck_new")
    assert _owner(processor, "cookie_id", "ck_new") == (provisional, 1)
    # the next batch run folded the cookie's events and made the provisional id an alias
    con = duckdb.connect(str(world.warehouse))
    try:
        con.execute(
            "insert into customer_aliases (alias_customer_id, customer_id, created_at, cause) "
            "values (?, ?, now(), 'provisional_merged')",
            [provisional, customer_id(1)],
        )
    finally:
        con.close()
    publish_snapshot(world.warehouse, world.serving_dir)
    processor.snapshots.current(force=True)
    log.append([event(EventKind.PRODUCT_VIEW, anonymous_id="ck_new", products=[ProductLine("P2")])])
    _drain(processor)
    views = _views_of(processor)
    assert "P2" in views[customer_id(1)], views
    assert "P2" not in views.get(provisional, [])
    # and it is known now: decisions load the customer's facts, not a provisional stranger's
    assert _owner(processor, "cookie_id", "ck_new") == (customer_id(1), 0)
