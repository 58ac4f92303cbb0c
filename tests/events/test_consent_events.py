"""Real-time consent: ``Consent Updated`` validated at intake, applied by the processor to the
decision log, refusing the next email decision within a second; bad statements kept, never
guessed; a replay changes no state."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from decisions.facts import load_facts, load_sales
from decisions.store import DecisionStore, default_store_path
from decisions.types import TriggerItem
from events.config import RealtimeConfig
from events.consent import SOURCE_PREFIX, apply_consent
from events.intake import REASONS, parse_event
from events.log import SqliteEventLog
from events.processor import StreamProcessor, dead_events, log_path
from events.types import CONSENT_EVENT_NAME, EventKind, FailedEvent, NewEvent
from snapshots import DATABASE_FILE, read_current, snapshot_folder
from tests.support.api_world import customer_id
from tests.support.stream_world import StreamWorld, make_world

DROP = TriggerItem("P1", "Trail shoe", "Footwear", "Acme", price=60.0, previous_price=80.0)
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CONSENTED = 1  # api_world: email consent unless i % 4 == 0, account ACC-<i>


def parse(payload: dict[str, Any], received_at: datetime = NOW) -> NewEvent | FailedEvent:
    return parse_event(
        dict(payload), source="web", received_at=received_at, config=RealtimeConfig()
    )


def consent(
    granted: Any = False, channel: Any = "email", *, user: str | None = "ACC-1", **extra: Any
) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    if channel is not None:
        properties["channel"] = channel
    if granted is not None:
        properties["granted"] = granted
    payload: dict[str, Any] = {
        "type": "track",
        "event": CONSENT_EVENT_NAME,
        "properties": properties,
        **extra,
    }
    if user is not None:
        payload["userId"] = user
    return payload


def test_a_consent_event_is_accepted_with_its_kind_channel_and_value() -> None:
    result = parse(consent(False, "sms", messageId="m-1"))
    assert isinstance(result, NewEvent)
    assert result.kind == EventKind.CONSENT
    assert result.event == CONSENT_EVENT_NAME
    assert result.body["properties"] == {"channel": "sms", "granted": False}


@pytest.mark.parametrize(
    ("payload", "reason", "names"),
    [
        (consent(granted=None), "missing_field", "properties.granted"),
        (consent(channel=None), "missing_field", "properties.channel"),
        (consent("false"), "invalid_field", "properties.granted"),  # never guessed
        (consent(0), "invalid_field", "properties.granted"),
        (consent(False, "Email"), "invalid_field", "properties.channel"),
        (consent(False, ["email"]), "invalid_field", "properties.channel"),
        (consent(False, user=None), "missing_field", "userId or anonymousId"),
        ({"type": "track", "event": CONSENT_EVENT_NAME, "userId": "ACC-1"}, "missing_field", ""),
        (
            {**consent(), "properties": "email=false"},
            "invalid_field",
            "properties must be an object",
        ),
    ],
)
def test_a_bad_statement_is_kept_as_a_failure_naming_the_field(
    payload: dict[str, Any], reason: str, names: str
) -> None:
    result = parse(payload)
    assert isinstance(result, FailedEvent), result
    assert result.reason == reason and reason in REASONS
    assert names in result.detail
    assert "Email" not in result.detail  # the detail names the field, never the value


@pytest.fixture
def world(tmp_path: Path) -> StreamWorld:
    return make_world(tmp_path / "home")


@pytest.fixture
def log(world: StreamWorld) -> Iterator[SqliteEventLog]:
    with SqliteEventLog(log_path(world.home)) as opened:
        yield opened


def _accepted(payload: dict[str, Any], at: datetime) -> NewEvent:
    result = parse(payload, received_at=at)
    assert isinstance(result, NewEvent), result
    return result


def _snapshot_conn(world: StreamWorld) -> sqlite3.Connection:
    folder = snapshot_folder(world.serving_dir, read_current(world.serving_dir))
    return sqlite3.connect(f"file:{folder / DATABASE_FILE}?mode=ro", uri=True)


def test_a_withdrawal_refuses_the_next_email_decision_within_a_second(
    world: StreamWorld, log: SqliteEventLog
) -> None:
    processor = StreamProcessor.from_home(world.home, log=log)
    stop = threading.Event()
    runner = threading.Thread(target=processor.run, args=(stop,), daemon=True)
    runner.start()
    conn = _snapshot_conn(world)
    try:
        target = customer_id(CONSENTED)
        facts = load_facts(conn, [target])[target]
        assert facts.consents["email"] is True
        service = processor.service
        now = datetime.now(UTC)
        sales = load_sales(conn, now)
        with DecisionStore.open(default_store_path(world.home)) as api_store:
            # another process's view of the decision log, as the API has
            assert not api_store.withdrawn_channels([target])
            accepted_at = time.perf_counter()
            log.append([_accepted(consent(False, "email", messageId="w-1"), now)])
            while "email" not in api_store.withdrawn_channels([target]):
                assert time.perf_counter() - accepted_at < 5, "withdrawal never applied"
                time.sleep(0.002)
            decision = service.decide_trigger(
                facts, "email", "price_drop", now, trigger="price_drop", items=[DROP], sales=sales
            )
            elapsed = time.perf_counter() - accepted_at
            print(f"consent event accepted -> decision refused: {elapsed * 1000:.1f} ms")
            assert elapsed < 1.0
            assert not decision.send
            assert "consent:withdrawn:email" in decision.reasons
            # the same message to a consented customer who did not withdraw is sent
            other = load_facts(conn, [customer_id(5)])[customer_id(5)]
            control = service.decide_trigger(
                other, "email", "price_drop", now, trigger="price_drop", items=[DROP], sales=sales
            )
            assert control.send, control.reasons
            assert api_store.withdrawn_channels([target]) == {"email": now}
    finally:
        stop.set()
        runner.join(timeout=10)
        conn.close()
        processor.close()


def test_a_grant_after_a_withdrawal_is_the_latest_statement(
    world: StreamWorld, log: SqliteEventLog
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=5)
    log.append(
        [
            _accepted(consent(False, "sms", messageId="s-1"), start),
            _accepted(consent(True, "sms", messageId="s-2"), start + timedelta(minutes=1)),
            _accepted(consent(False, "push", messageId="p-1"), start + timedelta(minutes=2)),
        ]
    )
    processor = StreamProcessor.from_home(world.home, log=log)
    try:
        while processor.process_batch():
            pass
    finally:
        processor.close()
    with DecisionStore.open(default_store_path(world.home)) as store:
        assert set(store.withdrawn_channels([customer_id(CONSENTED)])) == {"push"}


def test_an_unattributable_or_invalid_statement_is_kept_dead_and_the_stream_goes_on(
    world: StreamWorld, log: SqliteEventLog
) -> None:
    now = datetime.now(UTC)
    # logged before validation existed (or by another producer): the processor re-validates
    raw = _accepted(consent(False, "email", messageId="bad-1"), now)
    invalid = NewEvent(**{**raw.__dict__, "message_id": "bad-1", "body": {"properties": {}}})
    # a user id that normalizes to nothing names no person
    nobody = NewEvent(
        **{**raw.__dict__, "message_id": "nobody-1", "user_id": None, "identifiers": {}}
    )
    fine = _accepted(consent(False, "email", user="ACC-2", messageId="ok-1"), now)
    log.append([invalid, nobody, fine])
    processor = StreamProcessor.from_home(world.home, log=log)
    try:
        while processor.process_batch():
            pass
        kept = {d["message_id"]: d["error"] for d in dead_events(processor.state)}
    finally:
        processor.close()
    assert set(kept) == {"bad-1", "nobody-1"}
    assert "properties.channel" in kept["bad-1"]
    assert "names no person" in kept["nobody-1"]
    with DecisionStore.open(default_store_path(world.home)) as store:
        assert "email" in store.withdrawn_channels([customer_id(2)])
        assert not store.withdrawn_channels([customer_id(CONSENTED)])


class _Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, bool, datetime, str]] = []

    def record_consent(
        self, customer_id: str, channel: str, granted: bool, at: datetime, source: str
    ) -> None:
        self.rows.append((customer_id, channel, granted, at, source))


def test_the_source_names_the_write_key_and_message_and_other_kinds_pass_through() -> None:
    event = _accepted(consent(True, "push", messageId="g-7"), NOW)
    logged = __import__("events.types", fromlist=["LoggedEvent"]).LoggedEvent(
        **event.__dict__, offset=3
    )
    sink = _Recorder()
    assert apply_consent(sink, logged, "cus_0001")
    assert sink.rows == [("cus_0001", "push", True, NOW, f"{SOURCE_PREFIX}:web:g-7")]
    view = _accepted(
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": "ACC-1",
            "properties": {"product_id": "P1"},
        },
        NOW,
    )
    assert not apply_consent(sink, view, "cus_0001")  # type: ignore[arg-type]
    assert len(sink.rows) == 1
