"""The live profile: what each event changes, and what serving reads back."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events.config import LiveProfileSettings
from events.live import (
    apply_event,
    move_customer,
    open_live_reader,
    prune_views,
    read_live,
)
from events.state import StateStore, state_path
from events.types import EventKind, LoggedEvent, ProductLine
from tests.support.stream_world import event

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = LiveProfileSettings(recent_products=3, recent_events=4)
_offsets = itertools.count(1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore(state_path(tmp_path))
    yield opened
    opened.close()


def _logged(kind: EventKind, minutes: float, *products: ProductLine) -> LoggedEvent:
    new = event(kind, anonymous_id="ck", products=products, at=T0 + timedelta(minutes=minutes))
    return LoggedEvent(**{**new.__dict__, "offset": next(_offsets)})


def _apply(store: StateStore, customer: str, *events: LoggedEvent) -> None:
    with store.transaction() as conn:
        for logged in events:
            apply_event(conn, customer, False, logged, SETTINGS)


def test_views_cart_counters_and_recent_events(store: StateStore) -> None:
    _apply(
        store,
        "c1",
        _logged(EventKind.PAGE_VIEW, 0),
        _logged(EventKind.PRODUCT_VIEW, 1, ProductLine("P1")),
        _logged(EventKind.PRODUCT_VIEW, 2, ProductLine("P2")),
        _logged(EventKind.PRODUCT_VIEW, 3, ProductLine("P3")),
        _logged(EventKind.PRODUCT_VIEW, 4, ProductLine("P1")),  # viewed again: most recent
        _logged(EventKind.PRODUCT_VIEW, 5, ProductLine("P4")),
        _logged(EventKind.ADD_TO_CART, 6, ProductLine("P1", quantity=2)),
        _logged(EventKind.ADD_TO_CART, 7, ProductLine("P2"), ProductLine("P1")),
        _logged(EventKind.REMOVE_FROM_CART, 8, ProductLine("P2")),
    )
    reader = open_live_reader(store.path)
    try:
        live = read_live(reader, ["c1"], recent_products=SETTINGS.recent_products)
    finally:
        reader.close()
    assert live is not None
    assert live.first_seen_at == T0
    assert live.last_seen_at == T0 + timedelta(minutes=8)
    assert [p for p, _ in live.recent_products] == ["P4", "P1", "P3"]
    assert live.recent_products[1][1] == T0 + timedelta(minutes=4)
    assert live.cart == (("P1", 3),)
    assert live.counters == {
        "add_to_cart": 2,
        "page_view": 1,
        "product_view": 5,
        "remove_from_cart": 1,
    }
    # only the last 4 events are kept, newest first
    assert [e.kind for e in live.recent_events] == [
        "remove_from_cart",
        "add_to_cart",
        "add_to_cart",
        "product_view",
    ]
    assert live.recent_events[0].product_id == "P2"
    kept = store.conn.execute("select count(*) from live_events").fetchone()[0]
    assert kept == SETTINGS.recent_events


def test_a_purchase_clears_the_cart_and_unknown_customers_read_as_none(
    store: StateStore,
) -> None:
    _apply(
        store,
        "c2",
        _logged(EventKind.ADD_TO_CART, 0, ProductLine("P1")),
        _logged(EventKind.PURCHASE, 1, ProductLine("P1")),
    )
    reader = open_live_reader(store.path)
    try:
        live = read_live(reader, ["c2"])
        assert live is not None and live.cart == ()
        assert read_live(reader, ["nobody"]) is None
        assert read_live(reader, []) is None
    finally:
        reader.close()


def test_a_moved_customer_reads_as_one_person_by_either_id(store: StateStore) -> None:
    _apply(
        store,
        "provisional",
        _logged(EventKind.PRODUCT_VIEW, 0, ProductLine("P1")),
        _logged(EventKind.ADD_TO_CART, 1, ProductLine("P1")),
    )
    _apply(
        store,
        "known",
        _logged(EventKind.PRODUCT_VIEW, 10, ProductLine("P1")),
        _logged(EventKind.ADD_TO_CART, 11, ProductLine("P1")),
    )
    with store.transaction() as conn:
        move_customer(conn, "provisional", "known", False, 0, SETTINGS)
    reader = open_live_reader(store.path)
    try:
        by_known = read_live(reader, ["known"])
        by_alias = read_live(reader, ["provisional"])
    finally:
        reader.close()
    assert by_known == by_alias
    assert by_known is not None
    assert by_known.customer_id == "known"
    assert by_known.cart == (("P1", 2),)
    assert by_known.counters == {"add_to_cart": 2, "product_view": 2}
    assert by_known.first_seen_at == T0
    assert by_known.recent_products == (("P1", T0 + timedelta(minutes=10)),)
    left = store.conn.execute(
        "select count(*) from live_profiles where customer_id = 'provisional'"
    ).fetchone()[0]
    assert left == 0


def test_old_views_are_pruned(store: StateStore) -> None:
    _apply(
        store,
        "c3",
        _logged(EventKind.PRODUCT_VIEW, 0, ProductLine("P1")),
        _logged(EventKind.PRODUCT_VIEW, 60 * 24 * 40, ProductLine("P2")),
    )
    with store.transaction() as conn:
        assert prune_views(conn, T0 + timedelta(days=30)) == 1
    rows = store.conn.execute("select product_id from live_product_views").fetchall()
    assert rows == [("P2",)]
