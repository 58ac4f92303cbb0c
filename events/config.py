"""The ``realtime:`` section of cdp.yml: intake limits, live profile, triggers, webhooks, fold.

Example::

    realtime:
      triggers:
        - name: price_drop
          kind: price_drop_on_viewed      # a viewed product's price fell
          placement: price_drop           # a decisions placement of kind: trigger
          viewed_within_days: 14
          min_drop_percent: 10
        - name: cart_reminder
          kind: cart_abandoned            # an add-to-cart with no purchase after a while
          placement: cart_reminder
          after_minutes: 60
        - name: welcome_vip
          kind: segment_entered           # or segment_exited; from the batch runs
          placement: vip_welcome
          segment: high_value
      channels:                           # where each message channel's webhook is
        email:
          url: http://127.0.0.1:8025/hooks/email

A trigger never sends by itself: it asks the decision service for its placement, so consent,
caps, post-purchase suppression and the holdout apply to real-time messages exactly as to the
daily ones. Invalid settings fail at start naming the key (``realtime.triggers.0.kind``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from decisions.policy import DecisionsPolicy, format_error, load_policy

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"'{value}' is not a name (lowercase letters, digits and '_')")
    return value


class _Trigger(_Strict):
    name: str = Field(description="unique; part of every firing's idempotency key")
    placement: str = Field(description="the decisions placement (kind: trigger) it asks for")
    channels: tuple[str, ...] = Field(
        default=("email",), min_length=1, description="channels asked, in order"
    )
    is_enabled: bool = True

    _check_name = field_validator("name", "placement")(classmethod(lambda cls, v: _name(v)))


class PriceDropTrigger(_Trigger):
    """A product the customer viewed within ``viewed_within_days`` got cheaper by at least
    ``min_drop_percent`` (eBay's example: the price of a viewed item changes, an email goes)."""

    kind: Literal["price_drop_on_viewed"]
    viewed_within_days: float = Field(default=14, gt=0, le=365)
    min_drop_percent: float = Field(default=10, gt=0, lt=100)


class CartAbandonedTrigger(_Trigger):
    """An add-to-cart with no purchase within ``after_minutes``: a timer, fired on time even
    when no further event arrives."""

    kind: Literal["cart_abandoned"]
    after_minutes: float = Field(default=60, gt=0, le=7 * 24 * 60)


class SegmentTrigger(_Trigger):
    """A customer entered (or left) a segment between two published batch runs."""

    kind: Literal["segment_entered", "segment_exited"]
    segment: str


Trigger = Annotated[
    PriceDropTrigger | CartAbandonedTrigger | SegmentTrigger, Field(discriminator="kind")
]


class WebhookChannel(_Strict):
    """A channel's endpoint. The signing secret comes from the environment variable
    ``secret_env`` when set, else from ``CDP_HOME/secrets/webhooks/<channel>`` (created on first
    use; ``cdp outbox secret CHANNEL`` prints it for the receiver)."""

    url: str = Field(description="http(s) URL the delivery worker POSTs each message to")
    secret_env: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value

    @field_validator("secret_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV.match(value):
            raise ValueError(f"'{value}' is not an environment variable name")
        return value


class DeliveryPolicy(_Strict):
    """Retries with exponential backoff and full jitter, then the dead-letter store."""

    max_age_hours: float = Field(default=4.0, gt=0, le=72, description="then dead-lettered")
    base_delay_seconds: float = Field(default=1.0, gt=0, le=600)
    max_delay_seconds: float = Field(default=600.0, gt=0, le=3600)
    concurrency: StrictInt = Field(default=8, ge=1, le=64, description="requests in flight")

    @model_validator(mode="after")
    def _delays(self) -> DeliveryPolicy:
        if self.max_delay_seconds < self.base_delay_seconds:
            raise ValueError("max_delay_seconds: must be at least base_delay_seconds")
        return self


class IntakeLimits(_Strict):
    """Segment's own limits by default: 32 KB per event, 500 KB per batch request."""

    max_event_bytes: StrictInt = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    max_batch_bytes: StrictInt = Field(default=500 * 1024, ge=4096, le=16 * 1024 * 1024)
    max_future_seconds: float = Field(
        default=3600.0, ge=0, description="a timestamp further ahead than this is refused"
    )


class LiveProfileSettings(_Strict):
    """How much of the recent past the live profile keeps per customer."""

    recent_products: StrictInt = Field(default=20, ge=1, le=500)
    recent_events: StrictInt = Field(default=50, ge=1, le=1000)
    #: product views kept for the price-drop trigger (its longest ``viewed_within_days`` wins)
    view_retention_days: float = Field(default=30, gt=0, le=365)


class FoldSettings(_Strict):
    """Where the log lands as ordinary sources (landing folder, relative to the landing dir)."""

    folder: str = "realtime"
    events_source: str = "realtime_events"
    price_changes_source: str = "realtime_price_changes"


class IdentifierTypes(_Strict):
    """Which identifier types Segment's ``userId`` and ``anonymousId`` are in this platform
    (the batch sources name the same identifiers, so a login links to a known customer)."""

    user_id: str = "account_id"
    anonymous_id: str = "cookie_id"

    _check = field_validator("user_id", "anonymous_id")(classmethod(lambda cls, v: _name(v)))


class RealtimeConfig(_Strict):
    """The whole ``realtime:`` section; every key has a working default."""

    identifiers: IdentifierTypes = Field(default_factory=IdentifierTypes)
    intake: IntakeLimits = Field(default_factory=IntakeLimits)
    live: LiveProfileSettings = Field(default_factory=LiveProfileSettings)
    triggers: tuple[Trigger, ...] = ()
    channels: dict[str, WebhookChannel] = Field(default_factory=dict)
    delivery: DeliveryPolicy = Field(default_factory=DeliveryPolicy)
    fold: FoldSettings = Field(default_factory=FoldSettings)

    @model_validator(mode="after")
    def _unique_triggers(self) -> RealtimeConfig:
        seen: set[str] = set()
        for index, trigger in enumerate(self.triggers):
            if trigger.name in seen:
                raise ValueError(f"triggers.{index}.name: duplicate trigger '{trigger.name}'")
            seen.add(trigger.name)
        return self

    def trigger(self, name: str) -> PriceDropTrigger | CartAbandonedTrigger | SegmentTrigger:
        """The trigger called ``name``; KeyError names the known ones."""
        for trigger in self.triggers:
            if trigger.name == name:
                return trigger
        raise KeyError(f"no trigger '{name}' (known: {[t.name for t in self.triggers]})")


class RealtimeConfigError(ValueError):
    """An invalid ``realtime:`` section; the message names the file and key."""


def check_against_policy(config: RealtimeConfig, policy: DecisionsPolicy) -> list[str]:
    """Problems (``realtime.triggers.0.placement: ...``) with the triggers' placements and
    channels as the decision policy defines them; empty when they fit."""
    problems: list[str] = []
    known = ", ".join(sorted(n for n, p in policy.placements.items() if p.kind == "trigger"))
    for index, trigger in enumerate(config.triggers):
        key = f"realtime.triggers.{index}"
        placement = policy.placements.get(trigger.placement)
        if placement is None or placement.kind != "trigger":
            problems.append(
                f"{key}.placement: '{trigger.placement}' is not a decisions placement of "
                f"kind: trigger (known: {known or 'none'})"
            )
            continue
        for channel in trigger.channels:
            if channel not in placement.channels:
                problems.append(
                    f"{key}.channels: placement '{trigger.placement}' does not send on "
                    f"'{channel}' (its channels: {', '.join(placement.channels)})"
                )
    return problems


def parse_realtime(
    raw: Any, source: str = "cdp.yml", policy: DecisionsPolicy | None = None
) -> RealtimeConfig:
    """Validate the value of the ``realtime`` key (None: the defaults), and, given the
    decision policy, the triggers' placements and channels."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RealtimeConfigError(f"{source}: realtime: expected a mapping (triggers, channels)")
    try:
        config = RealtimeConfig.model_validate(raw)
    except ValidationError as exc:
        lines = "\n".join(f"  - {format_error(e, prefix='realtime')}" for e in exc.errors())
        raise RealtimeConfigError(f"{source}: invalid realtime section\n{lines}") from exc
    if policy is not None:
        problems = check_against_policy(config, policy)
        if problems:
            lines = "\n".join(f"  - {p}" for p in problems)
            raise RealtimeConfigError(f"{source}: invalid realtime section\n{lines}")
    return config


def load_realtime(path: Path) -> tuple[RealtimeConfig, DecisionsPolicy]:
    """The ``realtime:`` and ``decisions:`` sections of a cdp.yml, checked against each other
    (a missing file: both defaults). For the API and ``cdp stream``, which may not import the
    pipeline's config."""
    path = Path(path)
    if not path.is_file():
        return RealtimeConfig(), DecisionsPolicy()
    policy = load_policy(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (UnicodeDecodeError, yaml.YAMLError) as exc:  # load_policy read it already
        raise RealtimeConfigError(f"{path}: unreadable: {exc}") from exc
    return parse_realtime(raw.get("realtime"), str(path), policy), policy
