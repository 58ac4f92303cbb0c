"""Turn a client's lookup input into the normalized identifier the snapshot is keyed by.

Normalization is identity's own (``identity.normalize.Normalizer``) with the settings the
snapshot was built with, so ``+1 (415) 555-2671`` and ``4155552671`` find the same person, and
a value identity would have refused (malformed, or a junk placeholder) is refused here with a
message saying why, rather than silently finding nobody.
"""

from __future__ import annotations

from typing import Final

from api.graphql.errors import BadInputError
from api.snapshot import Snapshot
from identity import IDENTIFIER_NAME_PATTERN as _TYPE_PATTERN
from identity import Status
from snapshots import ALIAS_IDENTIFIER_TYPE

ALIAS_TYPE: Final[str] = ALIAS_IDENTIFIER_TYPE
MAX_VALUE_LENGTH: Final[int] = 512


def known_identifier_types(snapshot: Snapshot) -> list[str]:
    """Identifier types a lookup may use on this snapshot (computed once per snapshot)."""
    known = snapshot.cache.get("identifier_types")
    if known is None:
        known = sorted({*snapshot.manifest.identifier_types, "email", "phone", ALIAS_TYPE})
        snapshot.cache["identifier_types"] = known
    return known


def normalize_lookup(snapshot: Snapshot, identifier_type: str, value: str) -> tuple[str, str]:
    """(type, normalized value); BadInputError with a clear message for unusable input."""
    kind = identifier_type.strip().lower()
    known = known_identifier_types(snapshot)
    if kind not in known or not _TYPE_PATTERN.match(kind):
        raise BadInputError(
            f"unknown identifier type '{identifier_type[:64]}'; use one of: {', '.join(known)}",
            knownTypes=known,
        )
    if not value or not value.strip():
        raise BadInputError("`lookup.value` is empty")
    if len(value) > MAX_VALUE_LENGTH:
        raise BadInputError(f"`lookup.value` is longer than {MAX_VALUE_LENGTH} characters")
    if kind == ALIAS_TYPE:
        return kind, value.strip()
    normalized, status = snapshot.normalizer.identifier(kind, value)
    shown = value.strip()[:80]
    if status == Status.INVALID:
        if kind == "phone":
            region = snapshot.normalizer.region
            raise BadInputError(
                f"'{shown}' is not a valid phone number (numbers without a +country code are "
                f"read as {region}); write it in international form, e.g. +14155552671"
            )
        what = "email address" if kind == "email" else kind
        raise BadInputError(f"'{shown}' is not a valid {what}")
    if status == Status.JUNK:
        raise BadInputError(
            f"'{shown}' is a placeholder value (blocklisted junk such as test@example.com or "
            "0000000000); identity never links records by it, so no customer can be found by it"
        )
    if normalized is None:
        raise BadInputError("`lookup.value` is empty after normalization")
    return kind, str(normalized)
