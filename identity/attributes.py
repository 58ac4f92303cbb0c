"""Canonical identity vocabulary shared by cdp.yml mappings, Parquet, dbt and GraphQL.

Kept in the identity library (not the platform) so that the library is usable on its own and
the platform's configuration validates against the same names the matcher understands.
"""

from __future__ import annotations

import re
from typing import Final

#: Person attributes the matcher compares. Values are free text until normalized.
IDENTITY_ATTRIBUTES: Final[tuple[str, ...]] = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "full_name",
    "birth_date",
    "street_address",
    "postal_code",
    "city",
    "region",
    "country",
)

#: A named identifier (``account_id``, ``loyalty_id``, ``cookie_id``, a national id, ...).
IDENTIFIER_NAME_PATTERN: Final[re.Pattern[str]] = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def is_valid_identifier_name(name: str) -> bool:
    """An identifier name must be a snake_case word that is not an attribute."""
    return bool(IDENTIFIER_NAME_PATTERN.match(name)) and name not in IDENTITY_ATTRIBUTES
