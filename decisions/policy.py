"""The decision policy: ``decisions:`` in cdp.yml.

A retailer's rules are configuration, not code: which placements exist and which channels may ask
for them, who may see which sales, how often anyone hears from us (caps over *sliding* windows
across channels, and a per-customer cap that adapts to receptivity), what is suppressed after a
purchase, how much we explore, who is held out and which experiments run. An invalid policy fails
at start with the file, the key and the problem (``decisions.caps.0.max: ...``); references to
segments and traits are checked against the published data by :func:`check_references`.

A cdp.yml without ``decisions:`` gets a usable default: one daily email placement, one email a
day at most, a frequency adapting to receptivity, no experiments and no holdout.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from decisions.templates import TEMPLATE_VARIABLES, TemplateError, template_variables
from decisions.types import MESSAGE_CHANNELS, CapRule

#: Channels that show items rather than send a message (no consent needed, caps optional).
DISPLAY_CHANNELS: frozenset[str] = frozenset({"web", "app", "call_center"})
KNOWN_CHANNELS: frozenset[str] = MESSAGE_CHANNELS | DISPLAY_CHANNELS

#: Name of the per-customer cap computed from receptivity (``frequency``); reserved.
ADAPTIVE_CAP = "adaptive_frequency"
#: Assignment namespace of the global control group; no experiment may take it.
HOLDOUT = "holdout"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class PolicyError(ValueError):
    """A decision policy the user must fix; the message names the file and key."""


def duration_seconds(text: str) -> float:
    """Seconds in a duration like ``30m``, ``24h``, ``7d``; ValueError when not positive."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(
            f"'{text}' is not a duration: write a number and a unit (s, m, h, d, w), e.g. 24h or 7d"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"'{text}': a duration must be longer than zero")
    return seconds


def _check_duration(text: str) -> str:
    duration_seconds(text)
    return text.strip()


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"'{value}' is not a valid name: use lowercase letters, digits and _")
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]
Name = Annotated[str, AfterValidator(_check_name)]
Share = Annotated[float, Field(ge=0, lt=1)]


def normalize_category(name: str) -> str:
    """Category key with case and punctuation ignored: ``home-kitchen`` is ``Home & Kitchen``."""
    return re.sub(r"[^a-z0-9]+", "", name.lower().replace("&", ""))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _channels(value: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [c for c in value if c not in KNOWN_CHANNELS]
    if unknown:
        known = ", ".join(sorted(KNOWN_CHANNELS))
        raise ValueError(f"unknown channel {unknown[0]!r} (known: {known})")
    if len(set(value)) != len(value):
        raise ValueError("a channel is listed twice")
    return value


Channels = Annotated[tuple[str, ...], Field(min_length=1), AfterValidator(_channels)]


class Placement(_Strict):
    """Where a decision is shown: a daily email, a home-page hero, a call-center panel."""

    channels: Channels
    #: message: decided for a period (the daily email); display: shown when asked; trigger:
    #: sent when a real-time trigger fires (``realtime.triggers``), with the trigger's items
    kind: Literal["message", "display", "trigger"] = "message"
    items: StrictInt = Field(default=4, ge=1, le=50, description="items per decision")
    wildcard_slots: StrictInt = Field(
        default=1, ge=0, description="items outside the customer's known taste, to learn"
    )
    period: Duration = Field(
        default="1d", description="one decision per customer per period, the same on every channel"
    )
    subject: str | None = Field(default=None, description="template name of the subject line")
    blocks: dict[str, str] = Field(
        default_factory=dict, description="block name -> template name (HTML)"
    )

    @model_validator(mode="before")
    @classmethod
    def _trigger_defaults(cls, data: Any) -> Any:
        # A trigger's items are what fired it (the product whose price fell, the cart): no
        # wildcards unless asked, and one message per customer per hour by default.
        if isinstance(data, dict) and data.get("kind") == "trigger":
            data = {"wildcard_slots": 0, "period": "1h", **data}
        return data

    @model_validator(mode="after")
    def _wildcards_fit(self) -> Placement:
        if self.kind == "trigger" and self.wildcard_slots:
            raise ValueError(
                "wildcard_slots: a trigger placement carries the items that fired it; "
                "set wildcard_slots: 0"
            )
        if self.kind == "display":
            messages = [c for c in self.channels if c in MESSAGE_CHANNELS]
            if messages:
                raise ValueError(
                    f"channels: '{messages[0]}' sends messages; a display placement is shown "
                    f"only on {', '.join(sorted(DISPLAY_CHANNELS))} (or make it kind: message)"
                )
        if self.wildcard_slots > self.items:
            raise ValueError(
                f"wildcard_slots: {self.wildcard_slots} wildcard slots do not fit in "
                f"{self.items} items; lower wildcard_slots or raise items"
            )
        return self

    @property
    def period_seconds(self) -> float:
        """The period in seconds."""
        return duration_seconds(self.period)


class SaleMatch(_Strict):
    """Which sales an offer rule is about; empty lists match every sale."""

    themes: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()


class TraitRange(_Strict):
    """A threshold on a numeric trait; a customer without the trait is not admitted."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TraitRange:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class OfferRule(_Strict):
    """Eligibility: the sales it matches are shown only to customers it admits."""

    name: Name
    sales: SaleMatch = Field(default_factory=SaleMatch)
    segments: tuple[str, ...] = Field(
        default=(), description="admitted when in any of these (none listed: everyone)"
    )
    exclude_segments: tuple[str, ...] = ()
    traits: dict[str, TraitRange] = Field(default_factory=dict)


class CapPolicy(_Strict):
    """At most ``max`` sends on ``channels`` in any ``window`` (sliding, across placements).

    ``placements`` narrows a cap to the sends of those placements (e.g. one promotional email a
    day, and separately one triggered email a day); empty means every placement.
    """

    name: Name
    channels: Channels
    max: StrictInt = Field(ge=0)
    window: Duration
    placements: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == ADAPTIVE_CAP:
            raise ValueError(f"'{ADAPTIVE_CAP}' is reserved for the frequency setting")
        return value

    def rule(self) -> CapRule:
        """The cap as the store counts it."""
        return CapRule(
            self.name,
            frozenset(self.channels),
            self.max,
            duration_seconds(self.window),
            frozenset(self.placements) or None,
        )


class FrequencyPolicy(_Strict):
    """A per-customer cap between ``min_sends`` and ``max_sends`` set by receptivity.

    Receptivity is the customer's open and click rates (their recent log plus the 90-day traits),
    smoothed towards ``reference_open_rate``/``reference_click_rate`` with ``prior_sends`` pseudo
    sends, relative to those references. A customer at or above the references may get
    ``max_sends``; one who stopped responding gets fewer, down to ``min_sends`` after
    ``dormant_after_sends`` sends without an open.
    """

    enabled: StrictBool = True
    channels: Channels = ("email",)
    #: placements whose sends it counts and limits (empty: every placement)
    placements: tuple[str, ...] = ()
    window: Duration = "7d"
    max_sends: StrictInt = Field(default=7, ge=0)
    min_sends: StrictInt = Field(default=1, ge=0)
    reference_open_rate: float = Field(default=0.2, gt=0, le=1)
    reference_click_rate: float = Field(default=0.03, gt=0, le=1)
    prior_sends: float = Field(default=10.0, gt=0)
    dormant_after_sends: StrictInt = Field(default=10, ge=1)

    def limits(self, channel: str, placement: str | None = None) -> bool:
        """Whether the adaptive cap limits sends on ``channel`` (for ``placement``, when given:
        an empty ``placements`` means every placement)."""
        return (
            self.enabled
            and channel in self.channels
            and (placement is None or not self.placements or placement in self.placements)
        )

    @model_validator(mode="after")
    def _ordered(self) -> FrequencyPolicy:
        if self.min_sends > self.max_sends:
            raise ValueError(f"min_sends ({self.min_sends}) is above max_sends ({self.max_sends})")
        return self


class SuppressionRule(_Strict):
    """After a purchase in one of ``categories``, leave that category out for ``days``.

    For durables (a TV, shoes): nobody wants a TV offer the day after buying one. Consumables are
    simply not listed.
    """

    categories: tuple[str, ...] = Field(min_length=1)
    days: float = Field(gt=0)


class ExplorationPolicy(_Strict):
    """Epsilon exploration: with probability ``share`` the theme is picked at random."""

    share: Share = 0.1


class HoldoutPolicy(_Strict):
    """The global control group: no message, a non-personalized display."""

    share: Share = 0.0


class RankingPolicy(_Strict):
    """Weights of an item's score and how the wildcard is drawn."""

    affinity: float = Field(default=1.0, ge=0, description="share of interactions in its category")
    recommended: float = Field(default=1.0, ge=0, description="recommendation score (0..1)")
    brand_fit: float = Field(default=0.3, ge=0, description="a brand the customer has bought")
    novelty: float = Field(default=0.2, ge=0, description="a brand the customer never bought")
    discount: float = Field(default=0.5, ge=0, description="discount as a fraction")
    recent_view: float = Field(default=0.3, ge=0, description="last viewed category or product")
    known_taste_categories: StrictInt = Field(
        default=3, ge=0, description="a customer's top categories; the wildcard comes from others"
    )
    wildcard_sampling: Literal["softmax", "uniform"] = "softmax"
    wildcard_temperature: float = Field(default=0.5, gt=0)


class ArmPolicy(_Strict):
    """One arm of an experiment and what it changes."""

    name: Name
    weight: float = Field(default=1.0, gt=0)
    subject: str | None = Field(default=None, description="template name replacing the subject")
    wildcard_slots: StrictInt | None = Field(default=None, ge=0)
    exploration_share: Share | None = None
    novelty: float | None = Field(default=None, ge=0, description="ranking.novelty for this arm")


class ExperimentPolicy(_Strict):
    """An A/B (or A/B/n) test on one placement; arms split customers by weight."""

    name: Name
    placement: str
    arms: tuple[ArmPolicy, ...] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == HOLDOUT:
            raise ValueError(f"'{HOLDOUT}' is the control group's name; choose another")
        return value

    @field_validator("arms")
    @classmethod
    def _unique_arms(cls, value: tuple[ArmPolicy, ...]) -> tuple[ArmPolicy, ...]:
        names = [arm.name for arm in value]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique: {names}")
        return value


class TemplateSpec(_Strict):
    """A template text and the fallbacks used for missing (or masked) variables."""

    text: str = Field(min_length=1)
    fallbacks: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _compiles(self) -> TemplateSpec:
        try:
            used = template_variables(self.text)
        except TemplateError as exc:
            raise ValueError(f"text: {exc}") from exc
        known = ", ".join(sorted(TEMPLATE_VARIABLES))
        for name in sorted(used - TEMPLATE_VARIABLES):
            raise ValueError(f"text: unknown variable '{name}' (known: {known})")
        for name in sorted(set(self.fallbacks) - TEMPLATE_VARIABLES):
            raise ValueError(f"fallbacks.{name}: unknown variable '{name}' (known: {known})")
        return self


def _default_placements() -> dict[str, Placement]:
    return {
        "daily_email": Placement(
            channels=("email", "web", "app", "call_center"),
            kind="message",
            items=4,
            wildcard_slots=1,
            period="1d",
            subject="daily_subject",
        )
    }


def _default_caps() -> tuple[CapPolicy, ...]:
    return (CapPolicy(name="email_daily", channels=("email",), max=1, window="24h"),)


def _default_templates() -> dict[str, TemplateSpec]:
    return {
        "daily_subject": TemplateSpec(
            text="{{ first_name }}, {{ theme }}: up to {{ discount }}% off",
            fallbacks={"first_name": "Hi", "theme": "Today's sales", "discount": "50"},
        )
    }


class DecisionsPolicy(_Strict):
    """The whole ``decisions:`` section."""

    period_start_hour: StrictInt = Field(
        default=14, ge=0, le=23, description="UTC hour periods start (when the day's sales start)"
    )
    placements: dict[str, Placement] = Field(default_factory=_default_placements, min_length=1)
    offers: tuple[OfferRule, ...] = ()
    caps: tuple[CapPolicy, ...] = Field(default_factory=_default_caps)
    frequency: FrequencyPolicy = Field(default_factory=FrequencyPolicy)
    suppression: tuple[SuppressionRule, ...] = ()
    exploration: ExplorationPolicy = Field(default_factory=ExplorationPolicy)
    holdout: HoldoutPolicy = Field(default_factory=HoldoutPolicy)
    ranking: RankingPolicy = Field(default_factory=RankingPolicy)
    experiments: tuple[ExperimentPolicy, ...] = ()
    templates: dict[str, TemplateSpec] = Field(default_factory=_default_templates)

    @field_validator("placements")
    @classmethod
    def _placement_names(cls, value: dict[str, Placement]) -> dict[str, Placement]:
        for name in value:
            _check_name(name)
        return value

    @model_validator(mode="after")
    def _references(self) -> DecisionsPolicy:
        # Messages start with the key path below ``decisions`` so the error names it.
        templates = sorted(self.templates)

        def template(key: str, name: str | None) -> None:
            if name is not None and name not in self.templates:
                raise ValueError(
                    f"{key}: unknown template '{name}' (known: {', '.join(templates) or 'none'})"
                )

        for pname, placement in self.placements.items():
            template(f"placements.{pname}.subject", placement.subject)
            for block, tname in placement.blocks.items():
                template(f"placements.{pname}.blocks.{block}", tname)
        known_placements = ", ".join(sorted(self.placements))
        for index, cap in enumerate(self.caps):
            for p_index, name in enumerate(cap.placements):
                if name not in self.placements:
                    raise ValueError(
                        f"caps.{index}.placements.{p_index}: unknown placement '{name}' "
                        f"(known: {known_placements})"
                    )
        for p_index, name in enumerate(self.frequency.placements):
            if name not in self.placements:
                raise ValueError(
                    f"frequency.placements.{p_index}: unknown placement '{name}' "
                    f"(known: {known_placements})"
                )
        for name, kind in (("offers", self.offers), ("caps", self.caps)):
            seen: set[str] = set()
            for index, item in enumerate(kind):
                if item.name in seen:
                    raise ValueError(f"{name}.{index}.name: duplicate name '{item.name}'")
                seen.add(item.name)
        experimented: dict[str, str] = {}
        for index, experiment in enumerate(self.experiments):
            key = f"experiments.{index}"
            if experiment.name in {e.name for e in self.experiments[:index]}:
                raise ValueError(f"{key}.name: duplicate experiment '{experiment.name}'")
            placement = self.placements.get(experiment.placement)
            if placement is None:
                raise ValueError(
                    f"{key}.placement: unknown placement '{experiment.placement}' "
                    f"(known: {', '.join(sorted(self.placements))})"
                )
            if experiment.placement in experimented:
                raise ValueError(
                    f"{key}.placement: placement '{experiment.placement}' already has experiment "
                    f"'{experimented[experiment.placement]}'; run one experiment per placement"
                )
            experimented[experiment.placement] = experiment.name
            for arm_index, arm in enumerate(experiment.arms):
                template(f"{key}.arms.{arm_index}.subject", arm.subject)
                if arm.wildcard_slots is not None and arm.wildcard_slots > placement.items:
                    raise ValueError(
                        f"{key}.arms.{arm_index}.wildcard_slots: {arm.wildcard_slots} wildcard "
                        f"slots do not fit in placement '{experiment.placement}' "
                        f"({placement.items} items)"
                    )
        return self

    def placement(self, name: str) -> Placement:
        """The placement called ``name``; KeyError names the known ones."""
        try:
            return self.placements[name]
        except KeyError:
            raise KeyError(
                f"unknown placement '{name}' (known: {', '.join(sorted(self.placements))})"
            ) from None

    def experiment_for(self, placement: str) -> ExperimentPolicy | None:
        """The experiment running on a placement, if any."""
        for experiment in self.experiments:
            if experiment.placement == placement:
                return experiment
        return None

    def cap_rules(self, channel: str, placement: str | None = None) -> list[CapRule]:
        """The configured caps a send on ``channel`` (for ``placement``, when given) counts
        against."""
        return [
            cap.rule()
            for cap in self.caps
            if channel in cap.channels
            and (placement is None or not cap.placements or placement in cap.placements)
        ]


def policy_version(policy: DecisionsPolicy) -> str:
    """First 12 hex digits of the sha256 of the policy's canonical JSON (logged per decision)."""
    canonical = json.dumps(
        policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


_KEYED_MESSAGE = re.compile(r"^([A-Za-z0-9_.]+): (.*)$", re.DOTALL)


def format_error(error: ErrorDetails, prefix: str = "decisions") -> str:
    """``key: problem`` with the key in full (``decisions.caps.0.max``), also when a validator
    names the key below its own (``placements.x.subject: unknown template``)."""
    message = error["msg"].removeprefix("Value error, ")
    parts = [prefix, *(str(part) for part in error["loc"])]
    keyed = _KEYED_MESSAGE.match(message)
    if keyed and " " not in keyed.group(1):
        parts.append(keyed.group(1))
        message = keyed.group(2)
    return f"{'.'.join(p for p in parts if p)}: {message}"


def format_errors(exc: ValidationError, prefix: str = "decisions") -> list[str]:
    """One ``key: problem`` line per error (see :func:`format_error`)."""
    return [format_error(error, prefix) for error in exc.errors()]


def parse_policy(raw: Any, source: str = "cdp.yml") -> DecisionsPolicy:
    """Validate the value of the ``decisions`` key (None: the default policy)."""
    if raw is None:
        return DecisionsPolicy()
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: decisions: expected a mapping (placements, caps, ...)")
    try:
        return DecisionsPolicy.model_validate(raw)
    except ValidationError as exc:
        lines = "\n".join(f"  - {problem}" for problem in format_errors(exc))
        raise PolicyError(f"{source}: invalid decisions policy\n{lines}") from exc


def load_policy(path: Path) -> DecisionsPolicy:
    """Read and validate only the ``decisions:`` key of a cdp.yml (absent: the default policy).

    The API calls this (it may not import the pipeline's config); errors name file, key, problem.
    """
    path = Path(path)
    if not path.is_file():
        raise PolicyError(f"{path}: configuration file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{path}:{where}: invalid YAML: {problem}") from exc
    if raw is not None and not isinstance(raw, dict):
        raise PolicyError(f"{path}: expected a mapping at the top level")
    return parse_policy((raw or {}).get("decisions"), str(path))


def check_references(
    policy: DecisionsPolicy,
    known_segments: Collection[str],
    known_traits: Collection[str],
    source: str = "cdp.yml",
) -> None:
    """Fail with every offer rule naming a segment or trait the published data does not have."""
    problems: list[str] = []

    def check(key: str, names: Iterable[str], known: Collection[str], what: str) -> None:
        listed = ", ".join(sorted(known)) or "none"
        for index, name in enumerate(names):
            if name not in known:
                problems.append(f"{key}.{index}: unknown {what} '{name}' (known: {listed})")

    for index, offer in enumerate(policy.offers):
        key = f"decisions.offers.{index}"
        check(f"{key}.segments", offer.segments, known_segments, "segment")
        check(f"{key}.exclude_segments", offer.exclude_segments, known_segments, "segment")
        listed = ", ".join(sorted(known_traits)) or "none"
        for trait in offer.traits:
            if trait not in known_traits:
                problems.append(f"{key}.traits.{trait}: unknown trait '{trait}' (known: {listed})")
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise PolicyError(f"{source}: invalid decisions policy\n{lines}")
