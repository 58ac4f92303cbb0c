"""The values the decision service passes between its parts.

Plain frozen dataclasses, no I/O: the engine is a pure function of a customer's facts, the
sales running now and the policy; the store (decision log, caps, consent withdrawals) is the
only part that writes. Everything a channel or an analyst sees of a decision is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Channels that send a message (caps and consent apply); others (web, app, call_center) show.
MESSAGE_CHANNELS: frozenset[str] = frozenset({"email", "sms", "push"})
#: Channels that show what the customer asks to see: they need no address, so always reachable.
DISPLAY_CHANNELS: frozenset[str] = frozenset({"web", "app", "call_center"})


@dataclass(frozen=True)
class SaleItem:
    """A product a running sale covers, at its sale price."""

    product_id: str
    product_name: str
    category: str
    brand: str
    regular_price: float
    sale_price: float


@dataclass(frozen=True)
class Sale:
    """One sale of the calendar (the offers source): a theme, a category, perhaps one brand."""

    sale_id: str
    title: str
    theme: str
    category: str
    brand: str | None  # None for a collection of several brands
    discount_percent: float
    starts_at: datetime
    ends_at: datetime  # exclusive
    items: tuple[SaleItem, ...]


@dataclass(frozen=True)
class CustomerFacts:
    """What the platform knows about a customer that a decision may use (no hidden traits).

    Built from the serving snapshot (``decisions.facts``) for the API and the batch, or by a
    simulation. ``assignment_id`` is the oldest customer id the person has had, so holdout and
    experiment assignment survive merges.
    """

    customer_id: str
    assignment_id: str
    first_name: str | None = None
    last_name: str | None = None
    #: channel -> consent from the golden record: True, False, or None when none is recorded
    consents: Mapping[str, bool | None] = field(default_factory=dict)
    #: channel -> when the resolved statement behind ``consents`` was made (when known): a
    #: withdrawal in the decision log older than a grant stated since no longer holds
    consent_changed_at: Mapping[str, datetime] = field(default_factory=dict)
    segments: frozenset[str] = frozenset()
    #: the customer_traits row (purchase_probability, churn_risk, favourite_category, ...)
    traits: Mapping[str, Any] = field(default_factory=dict)
    #: category -> when the customer last bought (and kept) something in it
    category_last_purchased_at: Mapping[str, datetime] = field(default_factory=dict)
    #: category -> share of the customer's interactions (views, carts, purchases), sums to <= 1
    category_affinity: Mapping[str, float] = field(default_factory=dict)
    brands_bought: frozenset[str] = frozenset()
    last_viewed_category: str | None = None
    last_viewed_product_id: str | None = None
    #: product_id -> recommendation score (customer_recommendations), best first
    recommended_products: Mapping[str, float] = field(default_factory=dict)
    #: every customer id the person has had (merged-away ids), so caps count sends to all of them
    alias_ids: frozenset[str] = frozenset()
    #: channels a message can reach the customer on (``decisions.facts``: email with an address,
    #: sms with a phone number, push with a recorded push consent) plus the display channels.
    #: The default knows no address, so a message channel refuses (``no_address:<channel>``).
    reachable: frozenset[str] = DISPLAY_CHANNELS


@dataclass(frozen=True)
class Engagement:
    """A customer's recent message history on the log, as the store counts it."""

    sends: int = 0
    opens: int = 0
    clicks: int = 0
    last_engaged_at: datetime | None = None


@dataclass(frozen=True)
class ExperimentArm:
    """The arm of an experiment a customer is in (or the holdout)."""

    experiment: str
    arm: str
    is_holdout: bool = False


@dataclass(frozen=True)
class DecisionItem:
    """One item chosen: the product (and the sale it is on), why, and how it was chosen."""

    product_id: str
    sale_id: str | None
    score: float
    propensity: float  # the probability with which the policy chose this item (for IPS)
    is_wildcard: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """A decision as logged and served: the same decision id for every channel in a period."""

    decision_id: str
    customer_id: str
    channel: str
    placement: str
    policy_version: str
    decided_at: datetime
    expires_at: datetime
    send: bool
    reasons: tuple[str, ...]
    theme: str | None
    items: tuple[DecisionItem, ...]
    subject: str | None
    blocks: Mapping[str, str]
    #: subject and blocks rendered with PII variables (first name, ...) at their fallbacks
    subject_masked: str | None
    blocks_masked: Mapping[str, str]
    experiment: ExperimentArm | None
    is_holdout: bool
    #: the candidates considered and counts by reason they were left out (for explanation)
    excluded: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CapRule:
    """At most ``max_sends`` sends on ``channels`` to one customer in any ``window`` (sliding),
    counting the sends of ``placements`` only (None: of every placement)."""

    name: str
    channels: frozenset[str]
    max_sends: int
    window_seconds: float
    placements: frozenset[str] | None = None

    def counts(self, channel: str, placement: str) -> bool:
        """Whether a send on ``channel`` for ``placement`` counts against this cap."""
        return channel in self.channels and (
            self.placements is None or placement in self.placements
        )


@dataclass(frozen=True)
class TriggerItem:
    """A product a real-time trigger is about (the one whose price fell, one in the cart)."""

    product_id: str
    product_name: str | None = None
    category: str | None = None
    brand: str | None = None
    #: the price now (after the change), and before it for a price drop
    price: float | None = None
    previous_price: float | None = None
    quantity: int = 1
