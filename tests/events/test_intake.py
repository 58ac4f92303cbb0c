"""Segment payload parsing: kinds, identifiers, products, time, limits; never a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.config import IdentifierTypes, IntakeLimits, RealtimeConfig
from events.intake import REASONS, BatchParse, parse_batch, parse_event, parse_single
from events.types import EventKind, FailedEvent, NewEvent, ProductLine

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CONFIG = RealtimeConfig()


def parse(payload: dict[str, Any], config: RealtimeConfig = CONFIG) -> NewEvent | FailedEvent:
    return parse_event(dict(payload), source="web", received_at=NOW, config=config)


def accepted(payload: dict[str, Any]) -> NewEvent:
    result = parse(payload)
    assert isinstance(result, NewEvent), result
    return result


def refused(payload: dict[str, Any], reason: str) -> FailedEvent:
    result = parse(payload)
    assert isinstance(result, FailedEvent), result
    assert result.reason == reason, result
    assert result.reason in REASONS
    return result


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Product Viewed", EventKind.PRODUCT_VIEW),
        ("Product Added", EventKind.ADD_TO_CART),
        ("Product Removed", EventKind.REMOVE_FROM_CART),
        ("Cart Viewed", EventKind.CART_VIEW),
        ("Checkout Started", EventKind.CHECKOUT_START),
        ("Order Completed", EventKind.PURCHASE),
        ("Newsletter Opened", EventKind.CUSTOM),
    ],
)
def test_track_names_map_to_kinds(name: str, kind: EventKind) -> None:
    event = accepted(
        {"type": "track", "event": name, "anonymousId": "ck_1", "properties": {"product_id": 7}}
    )
    assert event.kind is kind and event.event == name
    assert event.products[0].product_id == "7"


def test_types_page_identify_screen_alias_group() -> None:
    assert accepted({"type": "page", "userId": "u1"}).kind is EventKind.PAGE_VIEW
    assert accepted({"type": "screen", "userId": "u1"}).kind is EventKind.PAGE_VIEW
    identify = accepted(
        {"type": "identify", "anonymousId": "ck_9", "userId": "ACC-9", "traits": {"email": "A@x"}}
    )
    assert identify.kind is EventKind.IDENTIFY and identify.event is None
    assert identify.identifiers == {"account_id": "ACC-9", "cookie_id": "ck_9", "email": "A@x"}
    alias = accepted({"type": "alias", "previousId": "ck_3", "userId": "ACC-3"})
    assert alias.kind is EventKind.IDENTIFY and alias.anonymous_id == "ck_3"
    group = accepted({"type": "group", "userId": "u1", "groupId": "g"})
    assert group.kind is EventKind.CUSTOM and group.type == "group"


def test_identifier_types_come_from_config_and_context_traits() -> None:
    config = RealtimeConfig(identifiers=IdentifierTypes(user_id="loyalty_id", anonymous_id="dev"))
    event = parse(
        {
            "type": "track",
            "event": "Signed In",
            "userId": "L1",
            "anonymousId": "d1",
            "context": {"traits": {"email": "e@x.com", "phone": "+1 415"}},
            # traits outside identify are not identifiers
            "traits": {"email": "ignored@x.com"},
        },
        config,
    )
    assert isinstance(event, NewEvent) and event.kind is EventKind.LOGIN
    assert event.identifiers == {
        "loyalty_id": "L1",
        "dev": "d1",
        "email": "e@x.com",
        "phone": "+1 415",
    }


def test_products_list_is_read() -> None:
    event = accepted(
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u",
            "properties": {
                "products": [
                    {"product_id": "a", "quantity": 2, "price": "19.5", "brand": "B"},
                    {"product_id": "b", "name": "Tea", "category": "food"},
                ]
            },
        }
    )
    assert event.products == (
        ProductLine(product_id="a", quantity=2, price=19.5, brand="B"),
        ProductLine(product_id="b", name="Tea", category="food"),
    )


def test_missing_and_invalid_fields() -> None:
    refused({"type": "track", "event": "X"}, "missing_field")  # no user or anonymous id
    refused({"type": "track", "anonymousId": "a"}, "missing_field")  # no event name
    refused({"type": "track", "event": "Product Viewed", "userId": "u"}, "missing_field")
    refused(
        {
            "type": "track",
            "event": "Product Added",
            "userId": "u",
            "properties": {"products": [{}]},
        },
        "missing_field",
    )
    refused(
        {
            "type": "track",
            "event": "X",
            "userId": "u",
            "properties": {"product_id": "p", "price": "cheap"},
        },
        "invalid_field",
    )
    refused({"type": "page", "userId": {"id": 1}}, "invalid_field")
    refused({"type": "page", "userId": "u", "timestamp": "yesterday"}, "invalid_field")
    refused({"type": "page", "userId": "u", "messageId": 5}, "invalid_field")
    refused({"type": "purchase", "userId": "u"}, "unknown_type")
    refused({"userId": "u"}, "unknown_type")
    # catalog kinds need no person
    price = accepted(
        {
            "type": "track",
            "event": "Product Price Changed",
            "properties": {"product_id": "p", "price": 8},
        }
    )
    assert price.kind is EventKind.PRICE_CHANGE and price.user_id is None


def test_details_never_echo_values() -> None:
    secret = "jane.doe@example.com"
    for payload in (
        {"type": secret, "userId": secret},
        {"type": "page", "userId": secret, "timestamp": secret},
        {
            "type": "track",
            "event": "X",
            "userId": secret,
            "properties": {"price": secret, "product_id": "p"},
        },
    ):
        result = parse(payload)
        assert isinstance(result, FailedEvent)
        assert secret not in result.detail


def test_timestamps_skew_and_future() -> None:
    assert accepted({"type": "page", "userId": "u"}).occurred_at == NOW
    at = accepted({"type": "page", "userId": "u", "timestamp": "2026-11-02T11:00:00Z"})
    assert at.occurred_at == NOW - timedelta(hours=1)
    naive = accepted({"type": "page", "userId": "u", "timestamp": "2026-11-02T11:00:00"})
    assert naive.occurred_at == NOW - timedelta(hours=1) and naive.occurred_at.tzinfo
    # a client clock 2 days fast: the event happened 10 s before it was sent
    skewed = accepted(
        {
            "type": "page",
            "userId": "u",
            "timestamp": "2026-11-04T11:59:50Z",
            "sentAt": "2026-11-04T12:00:00Z",
        }
    )
    assert skewed.occurred_at == NOW - timedelta(seconds=10)
    far = refused(
        {"type": "page", "userId": "u", "timestamp": "2027-01-01T00:00:00Z"}, "future_timestamp"
    )
    assert "ahead" in far.detail
    # within max_future_seconds is fine
    accepted({"type": "page", "userId": "u", "timestamp": "2026-11-02T12:30:00Z"})


def test_message_id_derived_from_payload_and_sent_at_not_hashed() -> None:
    payload = {"type": "page", "userId": "u", "timestamp": "2026-11-02T11:00:00Z"}
    first = accepted({**payload, "sentAt": "2026-11-02T11:00:01Z"})
    retry = accepted({**payload, "sentAt": "2026-11-02T11:05:00Z"})
    other = accepted({**payload, "properties": {"x": 1}})
    assert first.message_id.startswith("sha256:")
    assert first.message_id == retry.message_id
    assert first.payload_sha256 == retry.payload_sha256
    assert other.message_id != first.message_id
    given_id = accepted({**payload, "messageId": "m-1"})
    assert given_id.message_id == "m-1"


def test_single_limits_and_invalid_json() -> None:
    small = RealtimeConfig(intake=IntakeLimits(max_event_bytes=1024))
    big = orjson.dumps({"type": "page", "userId": "u", "properties": {"x": "y" * 2000}})
    result = parse_single(big, "page", source="web", received_at=NOW, config=small)
    assert isinstance(result, FailedEvent) and result.reason == "event_too_large"
    assert len(result.body) == 1024  # kept, truncated to the limit
    for body in (b"{not json", b"[1, 2]", b'"text"', b""):
        result = parse_single(body, "track", source="web", received_at=NOW, config=CONFIG)
        assert isinstance(result, FailedEvent) and result.reason == "invalid_json"
    ok = parse_single(b'{"userId": "u"}', "page", source="web", received_at=NOW, config=CONFIG)
    assert isinstance(ok, NewEvent) and ok.type == "page"


def test_batch_items_fail_on_their_own() -> None:
    small = RealtimeConfig(intake=IntakeLimits(max_event_bytes=1024))
    body = orjson.dumps(
        {
            "writeKey": "wk_x",
            "sentAt": "2026-11-02T12:00:00Z",
            "context": {"library": {"name": "analytics-python"}, "traits": {"email": "b@x"}},
            "batch": [
                {"type": "page", "anonymousId": "a", "timestamp": "2026-11-02T11:59:00Z"},
                {"type": "bogus", "userId": "u"},
                "not an object",
                {"type": "track", "event": "X", "userId": "u", "properties": {"p": "z" * 2000}},
                {"type": "identify", "userId": "u", "context": {"ip": "1.2.3.4"}},
            ],
        }
    )
    parsed = parse_batch(body, source="web", received_at=NOW, config=small)
    assert isinstance(parsed, BatchParse) and parsed.write_key == "wk_x"
    kinds = [i.kind if isinstance(i, NewEvent) else i.reason for i in parsed.items]
    assert kinds == [
        EventKind.PAGE_VIEW,
        "unknown_type",
        "invalid_json",
        "event_too_large",
        EventKind.IDENTIFY,
    ]
    page, identify = parsed.items[0], parsed.items[4]
    assert isinstance(page, NewEvent) and isinstance(identify, NewEvent)
    assert page.occurred_at == NOW - timedelta(minutes=1)
    assert page.identifiers["email"] == "b@x"  # batch context applies to every item
    assert identify.body["context"] == {
        "library": {"name": "analytics-python"},
        "traits": {"email": "b@x"},
        "ip": "1.2.3.4",
    }
    assert "writeKey" not in page.body
    for body in (b"[]", b'{"batch": 3}', b"\xff"):
        whole = parse_batch(body, source="web", received_at=NOW, config=CONFIG)
        assert isinstance(whole, FailedEvent) and whole.reason == "invalid_json"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "event",
                    "userId",
                    "anonymousId",
                    "properties",
                    "products",
                    "product_id",
                    "price",
                    "quantity",
                    "timestamp",
                    "sentAt",
                    "messageId",
                    "traits",
                    "context",
                    "email",
                    "batch",
                    "previousId",
                    "name",
                ]
            )
            | st.text(max_size=8),
            inner,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=JSON,
    segment_type=st.sampled_from(["track", "identify", "page", "screen", "alias", "group"]),
)
def test_arbitrary_json_never_crashes(value: Any, segment_type: str) -> None:
    # stdlib json writes what orjson refuses (NaN, huge integers): more hostile input
    body = json.dumps(value).encode()
    single = parse_single(body, segment_type, source="web", received_at=NOW, config=CONFIG)
    assert isinstance(single, NewEvent | FailedEvent)
    if isinstance(single, FailedEvent):
        assert single.reason in REASONS
    batch = parse_batch(
        json.dumps({"batch": [value, value]}).encode(),
        source="web",
        received_at=NOW,
        config=CONFIG,
    )
    assert isinstance(batch, BatchParse | FailedEvent)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(body: bytes) -> None:
    for segment_type in ("track", "batch"):
        if segment_type == "batch":
            result = parse_batch(body, source="web", received_at=NOW, config=CONFIG)
        else:
            result = parse_single(body, segment_type, source="web", received_at=NOW, config=CONFIG)
        assert result is not None
