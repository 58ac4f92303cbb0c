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
from identity import LookupValueError, lookup_value
from snapshots import ALIAS_IDENTIFIER_TYPE

ALIAS_TYPE: Final[str] = ALIAS_IDENTIFIER_TYPE


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
    normalizer = None if kind == ALIAS_TYPE else snapshot.normalizer
    try:
        return kind, lookup_value(normalizer, kind, value, field="`lookup.value`")
    except LookupValueError as exc:
        raise BadInputError(str(exc)) from exc
