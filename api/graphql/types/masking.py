"""PII masking: what a key without ``pii:read`` sees instead of personal data."""

from __future__ import annotations

from typing import Final

#: Replaces every PII value for keys without pii:read (null stays null).
MASK: Final[str] = "***"

#: Golden-record fields that are personal data (names, email, phone, address, birth date).
PII_FIELDS: Final[tuple[str, ...]] = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "full_name",
    "birth_date",
    "street_address",
    "postal_code",
    "city",
)

#: Identifier types whose values are personal data.
PII_IDENTIFIER_TYPES: Final[frozenset[str]] = frozenset({"email", "phone"})


def mask_record_id(record_id: str) -> str:
    """Record ids that embed an email (``email:<address>``) keep only their prefix."""
    if "@" not in record_id:
        return record_id
    prefix, separator, _ = record_id.partition(":")
    return f"{prefix}:{MASK}" if separator else MASK
