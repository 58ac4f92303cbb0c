"""Identity-resolution settings: the ``identity:`` section of cdp.yml, validated strictly.

Every guard threshold and model setting lives here so a user can tune resolution without
code, and so that an invalid section fails at start with a message naming the key instead of
surprising a run. Light on purpose (pydantic and phonenumbers, no pandas or Splink): the API
loads these settings to normalize lookups exactly as the run did.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from identity.blocking import DEFAULT_BLOCKING_KEYS, BlockingKey, parse_blocking_rule
from identity.vocabulary import is_valid_identifier_name

#: Values real systems use when a field had to be filled but nobody knew it.
DEFAULT_BLOCKLIST: tuple[str, ...] = (
    # emails
    "test@example.com",
    "test@test.com",
    "none@none.com",
    "null@null.com",
    "na@na.com",
    "n/a@n/a.com",
    "email@email.com",
    "a@a.com",
    "x@x.com",
    "xx@xx.com",
    "asdf@asdf.com",
    "unknown@unknown.com",
    "noemail@*",
    "no-email@*",
    "no.email@*",
    "nomail@*",
    "noreply@*",
    "no-reply@*",
    "donotreply@*",
    "donotemail@*",
    "declined@*",
    "refused@*",
    "*@example.invalid",
    # phones (digits only; structural junk such as one repeated digit is caught separately)
    "0000000000",
    "1234567890",
    "0123456789",
    "5555555555",
    "1231231234",
    "9876543210",
    # placeholder words, for any attribute or identifier
    "n/a",
    "na",
    "n.a.",
    "none",
    "null",
    "nil",
    "nan",
    "unknown",
    "unk",
    "test",
    "testing",
    "asdf",
    "qwerty",
    "xxx",
    "xx",
    "x",
    "tbd",
    "-",
    "--",
    ".",
    "?",
    "0",
    "no name",
    "noname",
    "not provided",
    "not available",
    "declined",
    "refused",
    "anonymous",
    "guest",
    "customer",
    "dummy",
    "fake",
    "sample",
)


class ModelSettings(BaseModel):
    """How the model is trained and applied (``identity.model`` in cdp.yml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match_threshold: float = Field(
        default=0.99, gt=0.0, lt=1.0, description="minimum match probability of a model edge"
    )
    blocking_rules: list[str] | None = Field(
        default=None,
        description="rules 'l.a = r.a and l.b = r.b' over normalized columns; None: defaults "
        "tuned for millions of records",
    )
    max_pairs_for_u: int = Field(
        default=1_000_000, ge=10_000, description="random pairs sampled to estimate u"
    )
    seed: int = Field(default=42, description="seed of every random sample, for reproducibility")
    max_block_size: int = Field(
        default=500,
        ge=2,
        description="a blocking-key value shared by more records than this generates no pairs "
        "(placeholder or shared values would otherwise explode the comparisons)",
    )
    training_sample_records: int = Field(
        default=300_000, ge=1_000, description="train on a random sample of at most this many"
    )
    em_max_pairs: int = Field(
        default=2_000_000, ge=10_000, description="cap on the pairs of each EM session"
    )
    deterministic_rules_recall: float = Field(
        default=0.7,
        gt=0.0,
        le=1.0,
        description="assumed share of true matches that exact name+birth date or "
        "email+name rules find; sets the prior match probability",
    )
    threads: int | None = Field(default=None, ge=1, description="DuckDB threads; None: all")

    @field_validator("blocking_rules")
    @classmethod
    def _rules_parse(cls, rules: list[str] | None) -> list[str] | None:
        if rules is None:
            return None
        if not rules:
            raise ValueError("blocking_rules must not be empty; omit it to use the defaults")
        for rule in rules:
            parse_blocking_rule(rule)
        return rules

    def blocking_keys(self) -> tuple[BlockingKey, ...]:
        """The keys that generate candidate pairs, defaults or parsed from the rules."""
        if self.blocking_rules is None:
            return DEFAULT_BLOCKING_KEYS
        keys = [parse_blocking_rule(rule) for rule in self.blocking_rules]
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise ValueError(f"blocking_rules repeat a rule: {names}")
        return tuple(keys)


class IdentitySettingsError(ValueError):
    """The ``identity:`` section of cdp.yml is invalid; the message names each bad key."""


class IdentitySettings(BaseModel):
    """How records become customers: normalization defaults, guards and the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phone_default_region: str = Field(
        default="US", description="ISO region used to read phone numbers written without +code"
    )
    blocklist: tuple[str, ...] = Field(
        default=(),
        description="extra junk values (exact, case-insensitive; '*' is a wildcard), added to "
        "the defaults",
    )
    use_default_blocklist: bool = Field(
        default=True, description="include DEFAULT_BLOCKLIST; turn off only to replace it"
    )
    max_distinct_names_per_email: int = Field(
        default=1,
        ge=1,
        description="an email on records of more distinct first names than this (after "
        "nicknames, typos, initials and first/last swaps are folded) is not a deterministic key",
    )
    max_distinct_names_per_phone: int = Field(
        default=1, ge=1, description="the same guard for phone numbers (household phones)"
    )
    unique_identifier_types: tuple[str, ...] = Field(
        default=("loyalty_id",),
        description="identifier types a person holds at most one value of; a customer never "
        "gets two different values",
    )
    anonymous_identifier_types: tuple[str, ...] = Field(
        default=("cookie_id", "device_id", "anonymous_id"),
        description="identifiers of events sources that stand for an unknown visitor: one record "
        "per distinct value",
    )
    max_cluster_size: int = Field(
        default=20, ge=2, description="a customer never holds more records than this"
    )
    id_salt: str = Field(
        default="cdp", min_length=1, description="salt of new customer ids (cus_ + 16 hex)"
    )
    reuse_model: bool = Field(
        default=True,
        description="reuse the last run's trained model while identity.model is unchanged; "
        "false retrains every run",
    )
    model: ModelSettings = Field(default_factory=ModelSettings)

    @field_validator("phone_default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"'{value}' is not a phone region phonenumbers knows (e.g. US, GB)")
        return region

    @field_validator("unique_identifier_types", "anonymous_identifier_types")
    @classmethod
    def _identifier_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not is_valid_identifier_name(name):
                raise ValueError(f"'{name}' is not a snake_case identifier name")
        return value

    @field_validator("blocklist")
    @classmethod
    def _clean_blocklist(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().casefold() for v in value if v.strip())

    @cached_property
    def blocklist_values(self) -> frozenset[str]:
        """Exact junk values, casefolded."""
        entries = (
            (*DEFAULT_BLOCKLIST, *self.blocklist)
            if self.use_default_blocklist
            else (self.blocklist)
        )
        return frozenset(e for e in entries if "*" not in e)

    @cached_property
    def blocklist_wildcards(self) -> tuple[str, ...]:
        """Wildcard entries ('*' matches anything), casefolded."""
        entries = (
            (*DEFAULT_BLOCKLIST, *self.blocklist)
            if self.use_default_blocklist
            else (self.blocklist)
        )
        return tuple(e for e in entries if "*" in e)

    @cached_property
    def blocklist_regexes(self) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
        """Anchored regexes of the wildcard entries: (those with '@', the others)."""
        return (
            _wildcard_regex([w for w in self.blocklist_wildcards if "@" in w]),
            _wildcard_regex([w for w in self.blocklist_wildcards if "@" not in w]),
        )

    def is_blocklisted(self, value: str | None) -> bool:
        """Whether a (trimmed, casefolded) value is junk."""
        if value is None:
            return False
        if value in self.blocklist_values:
            return True
        pattern = self.blocklist_regexes[0 if "@" in value else 1]
        return pattern is not None and pattern.match(value) is not None


def _wildcard_regex(patterns: list[str]) -> re.Pattern[str] | None:
    """One anchored regex for fnmatch-style entries ('*' matches anything, nothing else is
    special)."""
    if not patterns:
        return None
    parts = [".*".join(re.escape(p) for p in w.split("*")) for w in patterns]
    return re.compile("(?:" + "|".join(parts) + r")\Z", re.DOTALL)


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def load_identity_settings(
    section: Mapping[str, Any] | None,
    *,
    default_phone_region: str | None = None,
    where: str = "cdp.yml",
) -> IdentitySettings:
    """Validate the ``identity:`` section; the error names ``where`` and each bad key.

    ``default_phone_region`` (cdp.yml ``defaults.phone_region``) applies when the section does
    not set its own.
    """
    data = dict(section or {})
    if default_phone_region and "phone_default_region" not in data:
        data["phone_default_region"] = default_phone_region
    try:
        return IdentitySettings.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"  - identity.{_location(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        ]
        raise IdentitySettingsError(
            f"{where}: invalid identity settings\n" + "\n".join(problems)
        ) from exc
