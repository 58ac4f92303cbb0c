"""Segment HTTP tracking API payloads validated into events, or kept as typed failures.

Pure functions (no I/O): the API's ``/v1/*`` routes call them with the raw body, then append
the result to the log. Nothing a client sends makes them raise; whatever cannot be accepted
becomes a :class:`~events.types.FailedEvent` with one of the :data:`REASONS` and a ``detail``
that names the field to fix and never echoes a value (payloads carry PII).

Semantics in brief (Segment's spec where it has one):

- ``track`` with a Segment e-commerce name maps through ``SEGMENT_TRACK_KINDS``; any other name
  is ``custom`` with the name kept in ``event``. ``page`` and ``screen`` are ``page_view``,
  ``identify`` and ``alias`` are ``identify`` (an alias's ``previousId`` stands for the
  anonymous id when none is given), ``group`` is ``custom`` (kept, type ``group``).
- ``userId`` or ``anonymousId`` is required, except for catalog kinds (price change, product
  update). Product kinds need ``properties.product_id`` or ``properties.products[].product_id``.
- Identifiers: ``userId`` and ``anonymousId`` as the configured types (``account_id``,
  ``cookie_id`` by default), ``traits.email``/``phone`` (identify) and ``context.traits``
  (any type) as ``email``/``phone``, raw: the processor normalizes.
- Time: ``timestamp`` (or ``originalTimestamp``) in ISO 8601; missing means the receive time;
  with ``sentAt`` as well the client's clock skew is corrected as Segment does
  (``received - (sentAt - timestamp)``). Further ahead than ``max_future_seconds``: refused.
- Consent: ``track`` named ``Consent Updated`` (``events.types.CONSENT_EVENT_NAME``) needs
  ``properties.channel`` (a channel name: lower-case letters, digits and ``_``, e.g. ``email``,
  ``sms``, ``push``) and ``properties.granted`` (a JSON boolean; ``"false"`` or ``0`` is refused,
  never guessed: a withdrawal read as a grant would send to someone who said no), and a person
  (``userId``, ``anonymousId`` or ``context.traits`` email/phone).
- A missing ``messageId`` is derived from the sha256 of the canonical payload, so a replayed
  payload still deduplicates. ``sentAt`` and ``writeKey`` are not part of the payload hash (a
  retry sends a new ``sentAt``).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from events.config import RealtimeConfig
from events.types import (
    CATALOG_KINDS,
    CONSENT_EVENT_NAME,
    PRODUCT_KINDS,
    SEGMENT_TRACK_KINDS,
    EventKind,
    FailedEvent,
    NewEvent,
    ProductLine,
    SegmentType,
)

#: Why input was not accepted: the fixed vocabulary of ``failed_events.reason``.
REASONS: Final[Mapping[str, str]] = {
    "invalid_json": "the body (or a batch item) is not a JSON object",
    "batch_too_large": "the request body is over max_batch_bytes (refused with 413)",
    "event_too_large": "one event is over max_event_bytes",
    "unknown_type": "type is not track, identify, page, screen, alias or group",
    "missing_field": "a required field is missing (userId/anonymousId, event, product_id)",
    "invalid_field": "a field has the wrong type or format (e.g. a timestamp not in ISO 8601)",
    "future_timestamp": "the timestamp is further ahead than max_future_seconds",
    "message_id_conflict": "the messageId was used before with a different payload",
}

SEGMENT_TYPES: Final[frozenset[str]] = frozenset(
    {"track", "identify", "page", "screen", "alias", "group"}
)
#: Fields the payload hash leaves out: they change when a client retries the same event.
_UNHASHED: Final[frozenset[str]] = frozenset({"sentAt", "writeKey", "receivedAt"})
_MAX_ID_CHARS: Final[int] = 512


class Refused(Exception):
    """One event cannot be accepted: ``reason`` (of :data:`REASONS`) and what to fix."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class BatchParse:
    """A batch request's items in order (each accepted or failed) and its ``writeKey``."""

    items: tuple[NewEvent | FailedEvent, ...]
    write_key: str | None = None


def canonical_sha256(payload: Mapping[str, Any]) -> str:
    """sha256 of the payload's canonical JSON (sorted keys), without the retry-varying fields."""
    hashed = {k: v for k, v in payload.items() if k not in _UNHASHED}
    return hashlib.sha256(
        orjson.dumps(hashed, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    ).hexdigest()


def _failed(
    reason: str, detail: str, source: str | None, received_at: datetime, body: bytes, limit: int
) -> FailedEvent:
    return FailedEvent(
        source=source, reason=reason, detail=detail, received_at=received_at, body=body[:limit]
    )


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _INVALID


_INVALID: Final[object] = object()


def parse_single(
    body: bytes,
    segment_type: str,
    *,
    source: str,
    received_at: datetime,
    config: RealtimeConfig,
) -> NewEvent | FailedEvent:
    """One ``/v1/<type>`` request body: an event, or a failure saying why (never raises)."""
    limits = config.intake
    if len(body) > limits.max_event_bytes:
        return _failed(
            "event_too_large",
            f"the event is {len(body)} bytes, over the limit of {limits.max_event_bytes}; send "
            "fewer properties or traits",
            source,
            received_at,
            body,
            limits.max_event_bytes,
        )
    raw = _loads(body)
    if not isinstance(raw, dict):
        return _failed(
            "invalid_json",
            "the body must be one JSON object (Segment's event format)",
            source,
            received_at,
            body,
            limits.max_event_bytes,
        )
    raw["type"] = segment_type  # the endpoint names the call, as Segment's does
    return parse_event(raw, source=source, received_at=received_at, config=config, size=len(body))


def parse_batch(
    body: bytes, *, source: str | None, received_at: datetime, config: RealtimeConfig
) -> BatchParse | FailedEvent:
    """A ``/v1/batch`` body: each item accepted or failed on its own; the whole request fails
    only when it is not a JSON object with a ``batch`` list."""
    limits = config.intake
    raw = _loads(body)
    if not isinstance(raw, dict) or not isinstance(raw.get("batch"), list):
        return _failed(
            "invalid_json",
            'the body must be a JSON object with a "batch" list of events',
            source,
            received_at,
            body,
            limits.max_event_bytes,
        )
    write_key = raw.get("writeKey") if isinstance(raw.get("writeKey"), str) else None
    context = raw.get("context") if isinstance(raw.get("context"), dict) else None
    sent_at = raw.get("sentAt")
    items: list[NewEvent | FailedEvent] = []
    for index, item in enumerate(raw["batch"]):
        if not isinstance(item, dict):
            items.append(
                _failed(
                    "invalid_json",
                    f"batch[{index}] must be a JSON object",
                    source,
                    received_at,
                    orjson.dumps(item),
                    limits.max_event_bytes,
                )
            )
            continue
        if context is not None:
            merged = dict(context)
            if isinstance(item.get("context"), dict):
                merged.update(item["context"])
            item["context"] = merged
        if sent_at is not None and "sentAt" not in item:
            item["sentAt"] = sent_at
        items.append(parse_event(item, source=source or "", received_at=received_at, config=config))
    return BatchParse(items=tuple(items), write_key=write_key)


def parse_event(
    raw: dict[str, Any],
    *,
    source: str,
    received_at: datetime,
    config: RealtimeConfig,
    size: int | None = None,
) -> NewEvent | FailedEvent:
    """One decoded event object (of a single request or a batch): an event or a failure."""
    limits = config.intake
    encoded = orjson.dumps(raw, option=orjson.OPT_NON_STR_KEYS)
    if (size if size is not None else len(encoded)) > limits.max_event_bytes:
        return _failed(
            "event_too_large",
            f"the event is over the limit of {limits.max_event_bytes} bytes; send fewer "
            "properties or traits",
            source,
            received_at,
            encoded,
            limits.max_event_bytes,
        )
    message_id = raw.get("messageId")
    try:
        event = _validate(raw, source=source, received_at=received_at, config=config)
    except Refused as refused:
        return FailedEvent(
            source=source,
            reason=refused.reason,
            detail=refused.detail,
            received_at=received_at,
            message_id=message_id if isinstance(message_id, str) else None,
            body=encoded[: limits.max_event_bytes],
        )
    return event


def _validate(
    raw: dict[str, Any], *, source: str, received_at: datetime, config: RealtimeConfig
) -> NewEvent:
    segment_type = raw.get("type")
    if not isinstance(segment_type, str) or segment_type not in SEGMENT_TYPES:
        raise Refused(
            "unknown_type",
            "type must be one of track, identify, page, screen, alias, group",
        )
    kind, name = _kind(segment_type, raw)
    user_id = _identifier(raw, "userId")
    anonymous_id = _identifier(raw, "anonymousId")
    if segment_type == "alias" and anonymous_id is None:
        anonymous_id = _identifier(raw, "previousId")
    if user_id is None and anonymous_id is None and kind not in CATALOG_KINDS:
        raise Refused("missing_field", "userId or anonymousId is required")
    products = _products(raw.get("properties"))
    if kind in PRODUCT_KINDS and not products:
        raise Refused(
            "missing_field",
            f"'{name or kind}' needs properties.product_id or properties.products[].product_id",
        )
    if kind == EventKind.CONSENT:
        consent_statement(raw.get("properties"))
    occurred_at = _occurred_at(raw, received_at)
    ahead = (occurred_at - received_at).total_seconds()
    if ahead > config.intake.max_future_seconds:
        raise Refused(
            "future_timestamp",
            f"timestamp is {ahead:.0f}s ahead of the server clock (limit "
            f"{config.intake.max_future_seconds:.0f}s); send the time the event happened, "
            "with sentAt so clock skew is corrected",
        )
    identifiers: dict[str, str] = {}
    if user_id is not None:
        identifiers[config.identifiers.user_id] = user_id
    if anonymous_id is not None:
        identifiers[config.identifiers.anonymous_id] = anonymous_id
    context = raw.get("context")
    if isinstance(context, dict) and isinstance(context.get("traits"), dict):
        _contact(context["traits"], identifiers, "context.traits")
    if segment_type == "identify" and isinstance(raw.get("traits"), dict):
        _contact(raw["traits"], identifiers, "traits")
    payload_sha256 = canonical_sha256(raw)
    message_id = raw.get("messageId")
    if message_id is None or message_id == "":
        message_id = f"sha256:{payload_sha256}"
    elif not isinstance(message_id, str) or len(message_id) > _MAX_ID_CHARS:
        raise Refused("invalid_field", f"messageId must be a string of at most {_MAX_ID_CHARS}")
    body = {k: v for k, v in raw.items() if k != "writeKey"}
    typed: SegmentType = segment_type  # type: ignore[assignment]
    return NewEvent(
        message_id=message_id,
        source=source,
        type=typed,
        kind=kind,
        event=name,
        occurred_at=occurred_at,
        received_at=received_at,
        anonymous_id=anonymous_id,
        user_id=user_id,
        identifiers=identifiers,
        products=products,
        body=body,
        payload_sha256=payload_sha256,
    )


#: A consent event's channel: a lower-case channel name as ``cdp.yml`` and decisions spell it.
_CHANNEL_PATTERN: Final[re.Pattern[str]] = re.compile(r"[a-z][a-z0-9_]{0,39}")


def consent_statement(properties: Any) -> tuple[str, bool]:
    """``(channel, granted)`` of a ``Consent Updated`` event's properties; Refused if invalid.

    The processor reads the stored body with this same function, so what the intake accepted
    is exactly what it applies.
    """
    if not isinstance(properties, dict):
        raise Refused(
            "missing_field", f"'{CONSENT_EVENT_NAME}' needs properties.channel and .granted"
        )
    channel = properties.get("channel")
    if channel is None or channel == "":
        raise Refused("missing_field", f"'{CONSENT_EVENT_NAME}' needs properties.channel")
    if not isinstance(channel, str) or not _CHANNEL_PATTERN.fullmatch(channel):
        raise Refused(
            "invalid_field",
            "properties.channel must be a channel name in lower case (email, sms, push, ...)",
        )
    granted = properties.get("granted")
    if granted is None:
        raise Refused("missing_field", f"'{CONSENT_EVENT_NAME}' needs properties.granted")
    if not isinstance(granted, bool):
        raise Refused("invalid_field", "properties.granted must be true or false (a boolean)")
    return channel, granted


def _kind(segment_type: str, raw: Mapping[str, Any]) -> tuple[EventKind, str | None]:
    if segment_type == "track":
        name = raw.get("event")
        if not isinstance(name, str) or not name.strip():
            raise Refused("missing_field", "a track call needs event (the action's name)")
        if len(name) > _MAX_ID_CHARS:
            raise Refused("invalid_field", f"event must be at most {_MAX_ID_CHARS} characters")
        return SEGMENT_TRACK_KINDS.get(name, EventKind.CUSTOM), name
    if segment_type in ("page", "screen"):
        return EventKind.PAGE_VIEW, None
    if segment_type in ("identify", "alias"):
        return EventKind.IDENTIFY, None
    return EventKind.CUSTOM, None  # group


def _identifier(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Refused("invalid_field", f"{key} must be a string")
    text = str(value).strip()
    if len(text) > _MAX_ID_CHARS:
        raise Refused("invalid_field", f"{key} must be at most {_MAX_ID_CHARS} characters")
    return text or None


def _contact(traits: Mapping[str, Any], identifiers: dict[str, str], where: str) -> None:
    for key in ("email", "phone"):
        value = traits.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise Refused("invalid_field", f"{where}.{key} must be a string")
        identifiers[key] = str(value)


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Refused("invalid_field", f"{where} must be a string")
    return str(value)


def _number(value: Any, where: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Refused("invalid_field", f"{where} must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise Refused("invalid_field", f"{where} must be a number") from None
    if not math.isfinite(number) or number < 0:
        raise Refused("invalid_field", f"{where} must be a finite number >= 0")
    return number


def _line(values: Mapping[str, Any], where: str) -> ProductLine | None:
    product_id = values.get("product_id")
    if product_id is None or product_id == "":
        return None
    if isinstance(product_id, bool) or not isinstance(product_id, str | int):
        raise Refused("invalid_field", f"{where}.product_id must be a string")
    quantity = _number(values.get("quantity"), f"{where}.quantity")
    if quantity is not None and (quantity != int(quantity) or quantity > 1_000_000):
        raise Refused("invalid_field", f"{where}.quantity must be a whole number")
    return ProductLine(
        product_id=str(product_id)[:_MAX_ID_CHARS],
        quantity=int(quantity) if quantity is not None else 1,
        price=_number(values.get("price"), f"{where}.price"),
        name=_text(values.get("name"), f"{where}.name"),
        category=_text(values.get("category"), f"{where}.category"),
        brand=_text(values.get("brand"), f"{where}.brand"),
    )


def _products(properties: Any) -> tuple[ProductLine, ...]:
    if properties is None:
        return ()
    if not isinstance(properties, dict):
        raise Refused("invalid_field", "properties must be an object")
    lines: list[ProductLine] = []
    top = _line(properties, "properties")
    if top is not None:
        lines.append(top)
    listed = properties.get("products")
    if listed is not None:
        if not isinstance(listed, list):
            raise Refused("invalid_field", "properties.products must be a list")
        for index, item in enumerate(listed):
            if not isinstance(item, dict):
                raise Refused("invalid_field", f"properties.products[{index}] must be an object")
            line = _line(item, f"properties.products[{index}]")
            if line is None:
                raise Refused("missing_field", f"properties.products[{index}] needs a product_id")
            lines.append(line)
    return tuple(lines)


def parse_time(value: Any, where: str) -> datetime | None:
    """An ISO 8601 instant as aware UTC (naive: taken as UTC); None when absent."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise Refused("invalid_field", f"{where} must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Refused("invalid_field", f"{where} must be ISO 8601 (2024-05-01T12:00:00Z)") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise Refused("invalid_field", f"{where} is out of range") from None


def _occurred_at(raw: Mapping[str, Any], received_at: datetime) -> datetime:
    timestamp = parse_time(raw.get("timestamp"), "timestamp")
    if timestamp is None:
        timestamp = parse_time(raw.get("originalTimestamp"), "originalTimestamp")
    if timestamp is None:
        return received_at
    sent_at = parse_time(raw.get("sentAt"), "sentAt")
    if sent_at is None:
        return timestamp
    try:
        return received_at - (sent_at - timestamp)
    except OverflowError:
        raise Refused("invalid_field", "timestamp and sentAt are too far apart") from None


def utc_now() -> datetime:
    """The receive time (aware UTC); a function so callers need not import datetime."""
    return datetime.now(UTC)


__all__ = [
    "REASONS",
    "SEGMENT_TYPES",
    "BatchParse",
    "Refused",
    "canonical_sha256",
    "consent_statement",
    "parse_batch",
    "parse_event",
    "parse_single",
    "parse_time",
    "utc_now",
]
