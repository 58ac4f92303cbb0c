"""The user's description of their data: ``cdp.yml``.

Bringing your own data is writing this file, never changing code. Every source names a *kind*;
the kind fixes which canonical fields exist, which are required and how each is typed, so the
lake has the same column names whatever the source called them.

Example::

    version: 1
    landing: landing            # folder the globs are relative to (relative to this file)
    defaults:
      phone_region: US
    sources:
      - name: crm
        kind: people
        format: csv
        path: crm/*.csv
        record_key: customer_number
        mapping:
          first_name: first_name
          street_address: [house_number, street]   # joined with a space
        identifiers:
          loyalty_id: customer_number
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from decisions.policy import DecisionsPolicy, format_error
from events.config import RealtimeConfig, check_against_policy
from identity import IDENTITY_ATTRIBUTES, ColumnMapping, ColumnRef
from privacy.config import PrivacyConfig


class ConfigError(ValueError):
    """A problem in cdp.yml that the user must fix; the message names the file and key."""


class FieldType(StrEnum):
    """Logical type of a canonical field in the lake."""

    TEXT = "text"
    TIMESTAMP = "timestamp"
    DATE = "date"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    DECIMAL = "decimal"


@dataclass(frozen=True)
class FieldSpec:
    """One canonical field of a source kind."""

    name: str
    type: FieldType
    required: bool = False
    description: str = ""
    #: Personal data (identity attributes, free text a person typed or a URL that may carry
    #: them): never shown outside the lake, e.g. masked in the ingest preview.
    is_personal: bool = False


def _identity_fields(*names: str) -> tuple[FieldSpec, ...]:
    # Identity attributes stay text in the lake; identity/normalize.py owns their parsing so a
    # messy birth date is a counted null there, not a quarantined row here.
    return tuple(
        FieldSpec(n, FieldType.TEXT, description="identity attribute", is_personal=True)
        for n in names
    )


class SourceKind(StrEnum):
    """What a source holds; decides its canonical fields."""

    PEOPLE = "people"
    EVENTS = "events"
    ORDERS = "orders"
    ORDER_LINES = "order_lines"
    PRODUCTS = "products"
    PRICE_CHANGES = "price_changes"
    EMAIL_EVENTS = "email_events"
    CONSENTS = "consents"
    OFFERS = "offers"


T = FieldType
KIND_FIELDS: dict[SourceKind, tuple[FieldSpec, ...]] = {
    SourceKind.PEOPLE: (
        *_identity_fields(*IDENTITY_ATTRIBUTES),
        FieldSpec("signed_up_at", T.TIMESTAMP, description="when the person joined the source"),
        FieldSpec("updated_at", T.TIMESTAMP, description="last change of the record"),
        FieldSpec("has_email_consent", T.BOOLEAN),
        FieldSpec("has_sms_consent", T.BOOLEAN),
        FieldSpec("has_push_consent", T.BOOLEAN),
    ),
    SourceKind.EVENTS: (
        FieldSpec("event_type", T.TEXT, required=True),
        FieldSpec("occurred_at", T.TIMESTAMP, required=True),
        *_identity_fields("email"),
        # URLs, searches and user agents can carry emails, names and device fingerprints.
        FieldSpec("page_url", T.TEXT, is_personal=True),
        FieldSpec("product_id", T.TEXT),
        FieldSpec("search_query", T.TEXT, is_personal=True),
        FieldSpec("order_id", T.TEXT),
        FieldSpec("user_agent", T.TEXT, is_personal=True),
        FieldSpec("utm_source", T.TEXT),
        FieldSpec("utm_medium", T.TEXT),
        FieldSpec("utm_campaign", T.TEXT),
    ),
    SourceKind.ORDERS: (
        FieldSpec("order_id", T.TEXT, required=True),
        FieldSpec("ordered_at", T.TIMESTAMP, required=True),
        FieldSpec("status", T.TEXT, required=True),
        *_identity_fields("email", "phone"),
        FieldSpec("currency", T.TEXT),
        FieldSpec("total_amount", T.DECIMAL),
    ),
    SourceKind.ORDER_LINES: (
        FieldSpec("order_id", T.TEXT, required=True),
        FieldSpec("line_number", T.INTEGER),
        FieldSpec("product_id", T.TEXT, required=True),
        FieldSpec("quantity", T.INTEGER, required=True),
        FieldSpec("unit_price", T.DECIMAL, required=True),
    ),
    SourceKind.PRODUCTS: (
        FieldSpec("product_id", T.TEXT, required=True),
        FieldSpec("product_name", T.TEXT),
        FieldSpec("category", T.TEXT),
        FieldSpec("brand", T.TEXT),
        FieldSpec("price", T.DECIMAL),
    ),
    SourceKind.PRICE_CHANGES: (
        FieldSpec("product_id", T.TEXT, required=True),
        FieldSpec("price", T.DECIMAL, required=True),
        FieldSpec("changed_at", T.TIMESTAMP, required=True),
    ),
    SourceKind.EMAIL_EVENTS: (
        FieldSpec("event_type", T.TEXT, required=True),
        FieldSpec("occurred_at", T.TIMESTAMP, required=True),
        *_identity_fields("email"),
        FieldSpec("campaign_id", T.TEXT),
        FieldSpec("link_url", T.TEXT, is_personal=True),
    ),
    SourceKind.CONSENTS: (
        FieldSpec("channel", T.TEXT, required=True),
        FieldSpec("is_granted", T.BOOLEAN, required=True),
        FieldSpec("changed_at", T.TIMESTAMP, required=True),
        *_identity_fields("email", "phone"),
    ),
    # A sales calendar: one row per product a sale (a campaign) covers, so offers join products
    # and orders on product_id and emails on campaign_id = sale_id.
    SourceKind.OFFERS: (
        FieldSpec("offer_id", T.TEXT, required=True, description="one product in one sale"),
        FieldSpec("sale_id", T.TEXT, required=True, description="the sale; emails' campaign_id"),
        FieldSpec("product_id", T.TEXT, required=True),
        FieldSpec("starts_at", T.TIMESTAMP, required=True),
        FieldSpec("ends_at", T.TIMESTAMP, required=True, description="exclusive"),
        FieldSpec("discount_percent", T.DECIMAL, description="off the regular price"),
        FieldSpec("regular_price", T.DECIMAL, description="regular price when the sale starts"),
        FieldSpec("sale_price", T.DECIMAL, description="price during the sale"),
        FieldSpec("title", T.TEXT),
        FieldSpec("theme", T.TEXT, description="e.g. black-friday, brand-spotlight"),
        FieldSpec("brand", T.TEXT, description="empty for a collection of several brands"),
        FieldSpec("category", T.TEXT),
    ),
}

#: Kinds whose records describe (or point at) a person and may carry named identifiers.
KINDS_WITH_IDENTIFIERS: frozenset[SourceKind] = frozenset(
    {
        SourceKind.PEOPLE,
        SourceKind.EVENTS,
        SourceKind.ORDERS,
        SourceKind.EMAIL_EVENTS,
        SourceKind.CONSENTS,
    }
)

#: Columns the ingest adds to every lake row; mappings may not use these names.
LINEAGE_COLUMNS: tuple[str, ...] = (
    "record_id",
    "_source_file",
    "_source_line",
    "_file_sha256",
    "_record_hash",
    "_ingested_at",
    "passthrough",
)

SOURCE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceOptions(_Strict):
    """Reader options; defaults suit well-formed UTF-8 files."""

    encoding: str = "utf-8"
    delimiter: str = ","
    timestamp_format: str | None = Field(
        default=None, description="strptime format; ISO 8601 (with offset or Z) when omitted"
    )
    default_timezone: str = "UTC"
    true_values: tuple[str, ...] = ("true", "t", "yes", "y", "1")
    false_values: tuple[str, ...] = ("false", "f", "no", "n", "0")


#: Upper bound for both limits: past this a "record" is a file, and readers hold records whole.
MAX_LIMIT = 64 * 1024 * 1024


class IngestLimits(_Strict):
    """How large one value and one record may be; larger records are quarantined, not read.

    Set project-wide under ``ingest:`` and per source under ``sources[].ingest:`` (a source's
    keys override the project's, key by key). The defaults are far above anything the sample
    world or a typical CRM, shop or analytics export holds, and far below what would let one
    file exhaust memory or push megabytes of junk into identity resolution and the API.
    """

    max_field_chars: int = Field(
        default=4096,
        ge=1,
        le=MAX_LIMIT,
        description="most characters one value may hold (after decoding, before trimming)",
    )
    max_row_bytes: int = Field(
        default=65536,
        ge=1,
        le=MAX_LIMIT,
        description="most bytes one record may take as UTF-8 (a CSV record, a JSON line, or "
        "a Parquet row's values as text), line ending excluded",
    )


def _check_limits(limits: IngestLimits, where: str, field_limit_set: bool) -> None:
    """A value limit set above the record limit is a mistake (an unset default is just moot)."""
    if field_limit_set and limits.max_field_chars > limits.max_row_bytes:
        raise ValueError(
            f"{where}: max_field_chars ({limits.max_field_chars}) is larger than max_row_bytes "
            f"({limits.max_row_bytes}), so no record could hold such a value; raise "
            "max_row_bytes or lower max_field_chars"
        )


class SourceConfig(ColumnMapping):
    """One delivered data set and how its columns map onto canonical fields.

    The ``mapping`` and ``identifiers`` keys are identity's :class:`ColumnMapping` (the same
    model ``cdp identity resolve --mapping`` reads), checked against this source's kind.
    """

    name: str
    kind: SourceKind
    format: Literal["csv", "jsonl", "parquet"]
    path: str = Field(description="glob relative to the landing folder, or absolute")
    record_key: ColumnRef
    trust: int = Field(default=100, ge=0, description="survivorship rank; lower wins")
    options: SourceOptions = Field(default_factory=SourceOptions)
    ingest: IngestLimits = Field(
        default_factory=IngestLimits,
        description="limits for this source; keys not set here come from the top-level ingest",
    )
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name_is_snake_case(cls, value: str) -> str:
        if not SOURCE_NAME_PATTERN.match(value):
            raise ValueError(
                f"'{value}' is not a valid source name: use lowercase letters, digits and _"
            )
        return value

    @field_validator("record_key")
    @classmethod
    def _record_key_not_empty(cls, value: ColumnRef) -> ColumnRef:
        columns = [value] if isinstance(value, str) else value
        if not columns or not all(column.strip() for column in columns):
            raise ValueError("record_key must name at least one column")
        return value

    @model_validator(mode="after")
    def _mapping_matches_kind(self) -> SourceConfig:
        fields = {f.name: f for f in KIND_FIELDS[self.kind]}
        self.check_fields(sorted(fields), f"a field of kind '{self.kind}'")
        missing = [f.name for f in fields.values() if f.required and f.name not in self.mapping]
        if missing:
            raise ValueError(
                f"mapping: kind '{self.kind}' requires {', '.join(missing)}; map a column to each"
            )
        if self.identifiers and self.kind not in KINDS_WITH_IDENTIFIERS:
            raise ValueError(f"identifiers: kind '{self.kind}' does not carry identifiers")
        self.check_identifiers({*fields, *LINEAGE_COLUMNS}, "a canonical field or lineage column")
        return self

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        """Canonical fields of this source's kind (mapped or not)."""
        return KIND_FIELDS[self.kind]

    @property
    def record_key_columns(self) -> list[str]:
        """Source columns whose values, joined with '|', form the record id."""
        return [self.record_key] if isinstance(self.record_key, str) else list(self.record_key)

    def mapped_columns(self) -> set[str]:
        """Every source column the config names; the rest are passthrough."""
        return set(self.record_key_columns) | super().mapped_columns()


class IdentityConfig(BaseModel):
    """Identity-resolution settings; validated in full by the identity library."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Defaults(_Strict):
    """Project-wide defaults that sources inherit."""

    phone_region: str = "US"
    timezone: str = "UTC"


class PurchasePropensityConfig(_Strict):
    """``models.purchase_propensity``: P(at least one order in the next ``horizon_days``)."""

    horizon_days: int = Field(default=30, ge=1, le=3650)


class ChurnConfig(_Strict):
    """``models.churn``: P(a previous buyer places no order in the next ``horizon_days``)."""

    horizon_days: int = Field(default=90, ge=1, le=3650)


class ClvConfig(_Strict):
    """``models.clv``: revenue expected in the next ``horizon_days``."""

    horizon_days: int = Field(default=365, ge=1, le=3650)


class ModelsConfig(_Strict):
    """``models:`` in cdp.yml: the customer models' horizons and how much history they need.

    Training examples are the customer features at past cutoffs, ``cutoff_step_days`` apart
    (``training_cutoffs`` of them before the as-of date); a model trains only when it has
    ``min_training_rows`` labelled examples holding ``min_positive_rows`` of each class, else
    it falls back to a documented recency/frequency heuristic.
    """

    purchase_propensity: PurchasePropensityConfig = Field(default_factory=PurchasePropensityConfig)
    churn: ChurnConfig = Field(default_factory=ChurnConfig)
    clv: ClvConfig = Field(default_factory=ClvConfig)
    training_cutoffs: int = Field(default=6, ge=1, le=60)
    cutoff_step_days: int = Field(default=30, ge=1, le=365)
    min_training_rows: int = Field(default=200, ge=1)
    min_positive_rows: int = Field(default=20, ge=1)


#: Categories of the generated catalogue bought once and kept (a TV, shoes, a tent): the default
#: of ``recommendations.durable_categories`` (the products source marks no durability itself).
DEFAULT_DURABLE_CATEGORIES: tuple[str, ...] = (
    "Electronics",
    "Footwear",
    "Home & Kitchen",
    "Sports & Outdoors",
    "Jewelry & Accessories",
)


class RecommendationBlend(_Strict):
    """Weights of each strategy's per-customer normalized score in the hybrid."""

    collaborative: float = Field(default=0.6, ge=0)
    content: float = Field(default=0.3, ge=0)
    popular: float = Field(default=0.1, ge=0)
    repeat: float = Field(
        default=0.3, ge=0, description="the customer's own past interactions with the product"
    )


class InteractionWeights(_Strict):
    """Implicit-feedback weight of one interaction of each kind."""

    product_view: float = Field(default=1.0, ge=0)
    add_to_cart: float = Field(default=3.0, ge=0)
    purchase: float = Field(default=6.0, ge=0, description="one order line")


class RecommendationsConfig(_Strict):
    """``recommendations:``: top-N per customer, similar products, exclusions, the ALS model."""

    top_n: int = Field(default=10, ge=1, le=100)
    similar_n: int = Field(default=10, ge=1, le=100)
    weights: RecommendationBlend = Field(default_factory=RecommendationBlend)
    interaction_weights: InteractionWeights = Field(default_factory=InteractionWeights)
    durable_categories: tuple[str, ...] = Field(
        default=DEFAULT_DURABLE_CATEGORIES,
        description="categories (case and punctuation ignored) whose products are bought once",
    )
    durable_suppression_days: int = Field(
        default=180, ge=0, description="after buying a durable, its whole category is left out"
    )
    popularity_window_days: int = Field(default=30, ge=1)
    holdout_days: int = Field(default=14, ge=1, description="evaluation: the last days held out")
    factors: int = Field(default=48, ge=2, le=512)
    iterations: int = Field(default=15, ge=1, le=100)
    regularization: float = Field(default=0.05, ge=0)
    alpha: float = Field(default=2.0, gt=0, description="confidence per unit of log1p(weight)")
    threads: int = Field(default=2, ge=1)
    min_customers: int = Field(
        default=20, ge=2, description="fewer customers with interactions: no collaborative model"
    )
    seed: int = 7


class CdpConfig(_Strict):
    """The whole of cdp.yml."""

    version: Literal[1] = 1
    landing: str | None = Field(
        default=None, description="landing folder, relative to cdp.yml; default CDP_HOME/landing"
    )
    defaults: Defaults = Field(default_factory=Defaults)
    ingest: IngestLimits = Field(default_factory=IngestLimits)
    sources: list[SourceConfig]
    identity: dict[str, Any] = Field(default_factory=dict)
    profiles: dict[str, Any] = Field(default_factory=dict)
    recommendations: RecommendationsConfig = Field(default_factory=RecommendationsConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    #: the decision policy; its model lives in the decisions library (the API reads it too)
    decisions: DecisionsPolicy = Field(default_factory=DecisionsPolicy)
    #: the real-time path: triggers, channel webhooks, intake limits (the events library's)
    realtime: RealtimeConfig = Field(default_factory=RealtimeConfig)
    #: retention of event and decision data (the privacy library's)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)

    @model_validator(mode="after")
    def _triggers_fit_the_policy(self) -> CdpConfig:
        problems = check_against_policy(self.realtime, self.decisions)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _unique_source_names(self) -> CdpConfig:
        seen: set[str] = set()
        for index, source in enumerate(self.sources):
            if source.name in seen:
                raise ValueError(f"sources.{index}.name: duplicate source name '{source.name}'")
            seen.add(source.name)
        project_set = "max_field_chars" in self.ingest.model_fields_set
        _check_limits(self.ingest, "ingest", project_set)
        for index, source in enumerate(self.sources):
            source_set = project_set or "max_field_chars" in source.ingest.model_fields_set
            _check_limits(self.limits_for(source), f"sources.{index}.ingest", source_set)
        return self

    def limits_for(self, source: SourceConfig) -> IngestLimits:
        """A source's limits: its own ``ingest`` keys, the project's for those it leaves out."""
        own = {key: getattr(source.ingest, key) for key in source.ingest.model_fields_set}
        return self.ingest.model_copy(update=own)

    def source(self, name: str) -> SourceConfig:
        """The source called ``name``; KeyError names the known ones."""
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(f"no source '{name}' in cdp.yml (known: {[s.name for s in self.sources]})")


@dataclass(frozen=True)
class LoadedConfig:
    """A validated cdp.yml together with where it was read from."""

    path: Path
    config: CdpConfig

    def landing_dir(self, cdp_home: Path) -> Path:
        """Folder the source globs are relative to."""
        if self.config.landing is None:
            return cdp_home / "landing"
        landing = Path(self.config.landing)
        return landing if landing.is_absolute() else (self.path.parent / landing)

    def source_folder(self, source: SourceConfig, cdp_home: Path) -> Path:
        """The folder a source's glob is read in: the landing folder, or an absolute glob's own."""
        pattern = Path(source.path)
        return pattern.parent if pattern.is_absolute() else self.landing_dir(cdp_home)

    def source_files(self, source: SourceConfig, cdp_home: Path) -> list[Path]:
        """Files currently matching a source's glob, sorted for a stable ingest order."""
        pattern = Path(source.path)
        if pattern.is_absolute():
            root, glob = Path(pattern.anchor), str(pattern.relative_to(pattern.anchor))
        else:
            root, glob = self.landing_dir(cdp_home), source.path
        return sorted(p for p in root.glob(glob) if p.is_file())


def _format_location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load_config(path: Path) -> LoadedConfig:
    """Read and validate cdp.yml, failing with the file, key and problem in the message."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: configuration file not found; run `cdp generate` for a sample or write one"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'sources' key at the top level")
    try:
        config = CdpConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if error["loc"][:1] in {("decisions",), ("realtime",)}:  # keys named in full
                problems.append(f"  - {format_error(error, prefix='')}")
                continue
            if not error["loc"] and str(error["msg"]).startswith("Value error, realtime."):
                for problem in str(error["msg"]).removeprefix("Value error, ").split("; "):
                    problems.append(f"  - {problem}")
                continue
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"  - {_format_location(error['loc'])}: {message}")
        raise ConfigError(f"{path}: invalid configuration\n" + "\n".join(problems)) from exc
    return LoadedConfig(path=path, config=config)
