"""What flows through the real-time path: canonical event kinds and the logged event.

The intake speaks Segment's HTTP tracking API (so existing SDKs send unchanged) and maps
Segment's e-commerce spec names onto the platform's canonical event kinds, the same vocabulary
the batch events source uses (``page_view``, ``product_view``, ``add_to_cart``, ...). Any other
``track`` name is kept as a ``custom`` event with its name.

:class:`EventLog` is the small interface between the intake and the processor: append
(durable on return), read after an offset. The embedded default is SQLite (``events.log``); a
broker (Kafka, Redis Streams) can implement the same four methods. Consumers keep their own
committed offset next to their own output, in one transaction, as a Kafka consumer with a
transactional sink would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal, Protocol


class EventKind(StrEnum):
    """Canonical kinds; the batch events source uses the same names."""

    PAGE_VIEW = "page_view"
    PRODUCT_VIEW = "product_view"
    SEARCH = "search"
    ADD_TO_CART = "add_to_cart"
    REMOVE_FROM_CART = "remove_from_cart"
    CART_VIEW = "cart_view"
    CHECKOUT_START = "checkout_start"
    PURCHASE = "purchase"
    LOGIN = "login"
    #: ``identify``: links the anonymous id to the person named by user id, email or phone
    IDENTIFY = "identify"
    #: catalog events a server sends: a new price, a product's name/category/brand
    PRICE_CHANGE = "price_change"
    PRODUCT_UPDATE = "product_update"
    #: ``Consent Updated``: a person grants or withdraws a channel (``properties.channel``,
    #: ``properties.granted``); the processor appends it to the decision log's consent events
    CONSENT = "consent"
    #: any other ``track`` name; ``LoggedEvent.event`` keeps the name
    CUSTOM = "custom"


#: The ``track`` name of a consent statement. Segment's spec has no consent event (its Consent
#: Management sends ``Segment Consent Preference Updated`` with categories, not channels), so the
#: platform names its own in the spec's "Object Action" style.
CONSENT_EVENT_NAME: Final[str] = "Consent Updated"

#: Segment's e-commerce spec names (and two of its B2C names) -> canonical kinds.
SEGMENT_TRACK_KINDS: Mapping[str, EventKind] = {
    "Product Viewed": EventKind.PRODUCT_VIEW,
    "Product Added": EventKind.ADD_TO_CART,
    "Product Removed": EventKind.REMOVE_FROM_CART,
    "Cart Viewed": EventKind.CART_VIEW,
    "Checkout Started": EventKind.CHECKOUT_START,
    "Order Completed": EventKind.PURCHASE,
    "Products Searched": EventKind.SEARCH,
    "Signed In": EventKind.LOGIN,
    "Product Price Changed": EventKind.PRICE_CHANGE,
    "Product Updated": EventKind.PRODUCT_UPDATE,
    CONSENT_EVENT_NAME: EventKind.CONSENT,
}

#: Kinds that need a product: ``properties.product_id`` (or ``products[].product_id``).
PRODUCT_KINDS: frozenset[EventKind] = frozenset(
    {
        EventKind.PRODUCT_VIEW,
        EventKind.ADD_TO_CART,
        EventKind.REMOVE_FROM_CART,
        EventKind.PRICE_CHANGE,
        EventKind.PRODUCT_UPDATE,
    }
)
#: Kinds about the catalog, not a person (no user or anonymous id is needed).
CATALOG_KINDS: frozenset[EventKind] = frozenset({EventKind.PRICE_CHANGE, EventKind.PRODUCT_UPDATE})

SegmentType = Literal["track", "identify", "page", "screen", "alias", "group"]


@dataclass(frozen=True)
class ProductLine:
    """A product an event names: its id, and what the event says of it."""

    product_id: str
    quantity: int = 1
    price: float | None = None
    name: str | None = None
    category: str | None = None
    brand: str | None = None


@dataclass(frozen=True)
class NewEvent:
    """A validated event on its way into the log (no offset yet)."""

    message_id: str
    source: str  # the write key's name: which system sent it
    type: SegmentType
    kind: EventKind
    event: str | None  # the track name as sent (None for identify/page/...)
    occurred_at: datetime  # the event's own timestamp (Segment ``timestamp``), UTC
    received_at: datetime  # when the intake accepted it, UTC
    anonymous_id: str | None
    user_id: str | None
    #: identifiers the event carries, canonical type -> raw value (email, phone, account_id, ...)
    identifiers: Mapping[str, str] = field(default_factory=dict)
    products: tuple[ProductLine, ...] = ()
    #: the normalized payload as sent (properties, traits, context, ...), JSON-serializable
    body: Mapping[str, Any] = field(default_factory=dict)
    #: sha256 of the canonical JSON of what was sent: the same messageId with another payload
    #: is a conflict, with the same payload a duplicate (acknowledged, not stored twice)
    payload_sha256: str = ""


@dataclass(frozen=True)
class LoggedEvent(NewEvent):
    """An event as the log hands it to consumers: with its offset (increasing, gap-free
    within one log, the order of commit)."""

    offset: int = 0


@dataclass(frozen=True)
class FailedEvent:
    """Input the intake could not accept, kept with a typed reason (never dropped)."""

    source: str | None  # None when the write key itself was wrong
    reason: str  # e.g. "invalid_json", "event_too_large", "unknown_type", "future_timestamp"
    detail: str  # what a developer needs to fix it; never the payload's values
    received_at: datetime
    message_id: str | None = None
    body: bytes = b""  # the raw input (truncated to the event limit)


AppendStatus = Literal["accepted", "duplicate", "conflict"]


@dataclass(frozen=True)
class AppendResult:
    """What the log did with each event of one ``append`` (same order), after the commit."""

    statuses: tuple[AppendStatus, ...]
    offsets: tuple[int | None, ...]  # None for a duplicate or a conflict
    failed_ids: tuple[int, ...] = ()  # ids of the kept failed events (conflicts included)


class EventLog(Protocol):
    """The durable log between the intake and its consumers."""

    def append(
        self, events: Sequence[NewEvent], failures: Sequence[FailedEvent] = ()
    ) -> AppendResult:
        """Commit ``events`` and ``failures`` durably before returning (grouped with others)."""
        ...

    def read(self, after: int, limit: int) -> list[LoggedEvent]:
        """Up to ``limit`` events with offset > ``after``, in offset order."""
        ...

    def head(self) -> int:
        """The last committed offset (0 when empty)."""
        ...

    def close(self) -> None:
        """Release files and threads."""
        ...
