"""Triggers: a viewed product's price drop, an abandoned cart's timer, segment changes; each
asks the decision service and writes the outbox once."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from events.log import SqliteEventLog
from events.processor import StreamProcessor, log_path
from events.resolve import provisional_id
from events.types import EventKind, ProductLine
from tests.support.api_world import customer_id
from tests.support.stream_world import CONFIG, StreamWorld, event, make_world


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


def _outbox(processor: StreamProcessor) -> list[dict[str, Any]]:
    rows = processor.state.conn.execute(
        "select message_key, trigger_name, customer_id, payload from outbox order by message_id"
    ).fetchall()
    return [{"key": k, "trigger": t, "customer_id": c, **orjson.loads(p)} for k, t, c, p in rows]


def _firings(processor: StreamProcessor) -> list[tuple[str, str, int, list[str]]]:
    rows = processor.state.conn.execute(
        "select trigger_name, customer_id, sent, reasons from trigger_firings "
        "order by trigger_name, customer_id"
    ).fetchall()
    return [(t, c, s, orjson.loads(r)["email"]) for t, c, s, r in rows]


def _price(product: str, price: float, at: datetime | None = None) -> Any:
    return event(
        EventKind.PRICE_CHANGE,
        products=[ProductLine(product, price=price)],
        at=at,
        name="Product Price Changed",
    )


def _view(cookie: str, product: str, at: datetime | None = None) -> Any:
    return event(
        EventKind.PRODUCT_VIEW, anonymous_id=cookie, products=[ProductLine(product)], at=at
    )


# --- price drop ----------------------------------------------------------------------------


def test_a_price_drop_on_a_viewed_product_sends_one_message_naming_it(
    processor: StreamProcessor, log: SqliteEventLog
) -> None:
    log.append([_view("ck_1", "P1"), _view("ck_2", "P2")])
    _drain(processor)
    change = _price("P1", 60.0)  # the catalog says 80.0: a 25 % drop
    log.append([change])
    _drain(processor)
    messages = _outbox(processor)
    assert len(messages) == 1
    message = messages[0]
    assert message["customer_id"] == customer_id(1)
    assert message["trigger"] == "price_drop" and message["channel"] == "email"
    assert message["key"] == f"{message['decision_id']}:email" == message["message_key"]
    assert message["items"] == [
        {
            "product_id": "P1",
            "name": "Trail shoe",
            "category": "Footwear",
            "brand": "Acme",
            "price": 60.0,
            "previous_price": 80.0,
            "quantity": 1,
        }
    ]
    assert message["subject"] == "Trail shoe is now $60.00"
    assert _firings(processor) == [("price_drop", customer_id(1), 1, ["trigger:price_drop"])]
    # the live price is remembered: a further drop is measured from 60, not from the catalog
    row = processor.state.conn.execute(
        "select price, previous_price from product_prices where product_id = 'P1'"
    ).fetchone()
    assert row == (60.0, 80.0)


def test_a_price_rise_or_a_small_drop_fires_nothing(
    processor: StreamProcessor, log: SqliteEventLog
) -> None:
    log.append([_view("ck_1", "P1"), _view("ck_1", "P2")])
    log.append([_price("P1", 95.0), _price("P2", 115.0)])  # +19 %, -4 %
    _drain(processor)
    assert _outbox(processor) == []
    assert _firings(processor) == []
    # from the live price of 95, a drop to 85 is 10.5 %: that one fires
    log.append([_price("P1", 85.0)])
    _drain(processor)
    assert [m["items"][0]["previous_price"] for m in _outbox(processor)] == [95.0]


def test_a_view_older_than_the_window_does_not_fire(
    processor: StreamProcessor, log: SqliteEventLog
) -> None:
    now = datetime.now(UTC)
    log.append(
        [
            _view("ck_1", "P1", at=now - timedelta(days=20)),
            _view("ck_2", "P1", at=now - timedelta(days=13)),
        ]
    )
    log.append([_price("P1", 50.0, at=now)])
    _drain(processor)
    assert [m["customer_id"] for m in _outbox(processor)] == [customer_id(2)]


def test_consent_and_addresses_still_apply(processor: StreamProcessor, log: SqliteEventLog) -> None:
    # customer 4 has no email consent; a stranger has no address at all
    log.append([_view("ck_4", "P3"), _view("ck_stranger", "P3")])
    log.append([_price("P3", 100.0)])
    _drain(processor)
    assert _outbox(processor) == []
    firings = {c: (sent, reasons[0]) for _, c, sent, reasons in _firings(processor)}
    assert firings == {
        customer_id(4): (0, "consent:denied:email"),
        provisional_id("cookie_id", "ck_stranger"): (0, "no_address:email"),
    }


# --- cart abandoned ------------------------------------------------------------------------


def test_an_abandoned_cart_fires_when_its_timer_is_due(
    processor: StreamProcessor, log: SqliteEventLog
) -> None:
    added = datetime.now(UTC) - timedelta(minutes=31)
    log.append(
        [
            event(
                EventKind.ADD_TO_CART,
                anonymous_id="ck_5",
                products=[ProductLine("P2", quantity=2, price=120.0)],
                at=added,
            ),
            event(
                EventKind.ADD_TO_CART,
                anonymous_id="ck_5",
                products=[ProductLine("P4")],
                at=added,
            ),
        ]
    )
    _drain(processor)
    assert processor.fire_timers(added + timedelta(minutes=29)) == 0
    assert processor.fire_timers() == 1
    (message,) = _outbox(processor)
    assert message["customer_id"] == customer_id(5)
    assert [(i["name"], i["quantity"]) for i in message["items"]] == [
        ("Rain jacket", 2),
        ("Yoga mat", 1),
    ]
    assert message["subject"] == "3 items wait in your cart"
    assert processor.fire_timers() == 0  # fired once; only a new add-to-cart re-arms it


def test_a_purchase_or_an_emptied_cart_cancels_the_timer(
    processor: StreamProcessor, log: SqliteEventLog
) -> None:
    added = datetime.now(UTC) - timedelta(hours=2)
    log.append(
        [
            event(
                EventKind.ADD_TO_CART, anonymous_id="ck_5", products=[ProductLine("P2")], at=added
            ),
            event(EventKind.PURCHASE, anonymous_id="ck_5", products=[ProductLine("P2")], at=added),
            event(
                EventKind.ADD_TO_CART, anonymous_id="ck_6", products=[ProductLine("P1")], at=added
            ),
            event(
                EventKind.REMOVE_FROM_CART,
                anonymous_id="ck_6",
                products=[ProductLine("P1")],
                at=added,
            ),
        ]
    )
    _drain(processor)
    assert processor.fire_timers() == 0
    assert _outbox(processor) == []
    assert processor.state.count("timers") == 0


def test_the_timer_fires_on_time_with_no_further_event(
    world: StreamWorld, log: SqliteEventLog
) -> None:
    config = copy.deepcopy(CONFIG)
    config["realtime"]["triggers"][1]["after_minutes"] = 0.02  # 1.2 s
    world.write_config(config)
    processor = StreamProcessor.from_home(world.home, log=log)
    stop = threading.Event()
    loop = threading.Thread(target=processor.run, args=(stop,))
    loop.start()
    try:
        added = datetime.now(UTC)
        log.append(
            [
                event(
                    EventKind.ADD_TO_CART,
                    anonymous_id="ck_9",
                    products=[ProductLine("P1")],
                    at=added,
                )
            ]
        )
        due = added + timedelta(seconds=1.2)
        deadline = time.monotonic() + 10
        fired_at = None
        while time.monotonic() < deadline and fired_at is None:
            row = processor.state.conn.execute("select created_at from outbox").fetchone()
            if row is not None:
                fired_at = datetime.now(UTC)
            time.sleep(0.02)
    finally:
        stop.set()
        loop.join()
        processor.close()
    assert fired_at is not None, "the timer never fired"
    late = (fired_at - due).total_seconds()
    print(f"cart timer fired {late * 1000:.0f} ms after its due time")
    assert 0 <= late <= 2.0, f"fired {late:.2f}s after due"


# --- segments ------------------------------------------------------------------------------


def test_the_first_snapshot_only_sets_the_watermark_then_each_change_fires_once(
    world: StreamWorld, processor: StreamProcessor
) -> None:
    assert processor.check_segments() == 0  # members 0, 10, 20: baseline, no flood
    assert _firings(processor) == []
    world.republish([10, 20, 3])  # 3 enters, 0 exits
    processor.snapshots.current(force=True)
    # a crash in the middle of the diff: nothing of it is kept
    with pytest.raises(RuntimeError), processor.state.transaction() as conn:
        assert processor.triggers.check_segments(conn, processor.snapshots.current()) == 2
        raise RuntimeError("killed before the commit")
    assert _firings(processor) == []
    assert processor.check_segments() == 2
    assert processor.check_segments() == 0  # the same snapshot again: nothing
    firings = [(t, c) for t, c, _, _ in _firings(processor)]
    assert firings == [("vip_entered", customer_id(3)), ("vip_exited", customer_id(0))]
    (message,) = _outbox(processor)  # customer 0 has no email consent
    assert message["customer_id"] == customer_id(3)
    assert message["subject"] == "Welcome to the club"
    assert [i["product_id"] for i in message["items"]] == ["P3", "P4"]
