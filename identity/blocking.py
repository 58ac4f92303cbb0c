"""Blocking: which pairs of records the model compares, as column tuples.

Keys are column tuples rather than free SQL so that the batch model (Splink, in DuckDB) and the
real-time scorer (in-memory indexes) generate exactly the same candidate pairs, and so that a key
value shared by too many records (a placeholder birth date, a store's phone number) can be
skipped instead of producing a quadratic number of pairs.

Plain Python (no Splink): ``ModelSettings`` validates the blocking rules of cdp.yml with
:func:`parse_blocking_rule` wherever settings are loaded, the API included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

#: Columns of the normalized record frame that the comparisons read.
COMPARED_COLUMNS: Final[tuple[str, ...]] = (
    "first_name",
    "first_name_canonical",
    "last_name",
    "birth_date",
    "email",
    "phone",
    "street_address",
    "postal_code",
    "city",
)

#: Derived column: first and last name in sorted order, equal for a swapped first/last name.
NAME_PAIR_COLUMN: Final[str] = "name_pair"
NAME_PAIR_SQL: Final[str] = (
    "case when first_name is not null and last_name is not null then "
    "least(first_name, last_name) || ' ' || greatest(first_name, last_name) end"
)
#: Derived column: the email's mailbox name (recomputed, whatever the input says).
EMAIL_USER_COLUMN: Final[str] = "email_user"
EMAIL_USER_SQL: Final[str] = "nullif(split_part(email, '@', 1), '')"

#: Derived list column: a record's person-level named identifiers as ``type:value`` (null when
#: it has none). Device identifiers (cookies) and values a shared device carried are left out.
PERSON_IDENTIFIERS_COLUMN: Final[str] = "person_identifiers"

#: Columns a blocking key may use (contract columns plus the derived name pair).
BLOCKABLE_COLUMNS: Final[tuple[str, ...]] = (
    *COMPARED_COLUMNS,
    NAME_PAIR_COLUMN,
    EMAIL_USER_COLUMN,
    "email_domain",
    "region",
    "country",
)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class BlockingKey:
    """Two records become a candidate pair when they share every column of a key."""

    name: str
    columns: tuple[str, ...]

    @property
    def size_column(self) -> str:
        """Column holding how many records share this key's value (the block size)."""
        return f"block_size__{self.name}"

    def sql(self, max_block_size: int) -> str:
        """Splink blocking rule: equal key columns, block not larger than the cap."""
        equalities = [f"l.{c} = r.{c}" for c in self.columns]
        return " and ".join([*equalities, f"l.{self.size_column} <= {max_block_size}"])


#: Defaults chosen for millions of records: each key is selective (a few records per value
#: for real people) and together they tolerate one wrong or missing attribute of any kind.
DEFAULT_BLOCKING_KEYS: Final[tuple[BlockingKey, ...]] = (
    BlockingKey("email", ("email",)),
    BlockingKey("phone", ("phone",)),
    BlockingKey("last_name__birth_date", ("last_name", "birth_date")),
    BlockingKey("first_name__birth_date", ("first_name_canonical", "birth_date")),
    BlockingKey("first_name__postal_code", ("first_name_canonical", "postal_code")),
    BlockingKey("last_name__postal_code", ("last_name", "postal_code")),
    BlockingKey("street_address__postal_code", ("street_address", "postal_code")),
    # First and last name swapped defeat every name key above; the sorted pair does not.
    BlockingKey("name_pair__birth_date", (NAME_PAIR_COLUMN, "birth_date")),
    BlockingKey("name_pair__postal_code", (NAME_PAIR_COLUMN, "postal_code")),
    # Both names mistyped (or one missing, the other mistyped): no name key holds.
    BlockingKey("birth_date__postal_code", ("birth_date", "postal_code")),
)

#: EM sessions: each trains the comparisons its key does not use. Person keys come first:
#: pairs sharing a name or a birth date are rarely household members, whose shared contact
#: details would otherwise teach the model that a different first name is normal for one
#: person. Contact keys run only for comparisons no earlier session could train (e.g. when
#: the data has few birth dates).
EM_TRAINING_KEYS: Final[tuple[BlockingKey, ...]] = (
    BlockingKey("em_first_name__last_name", ("first_name_canonical", "last_name")),
    BlockingKey("em_last_name__birth_date", ("last_name", "birth_date")),
    BlockingKey("em_first_name__birth_date", ("first_name_canonical", "birth_date")),
    BlockingKey("em_email", ("email",)),
    BlockingKey("em_phone", ("phone",)),
    BlockingKey("em_street_address__postal_code", ("street_address", "postal_code")),
)
#: The first EM sessions always run; the rest only while a comparison is still untrained.
EM_ALWAYS: Final[int] = 3


def parse_blocking_rule(rule: str) -> BlockingKey:
    """Read a rule written as ``l.a = r.a and l.b = r.b`` into a blocking key.

    Raises:
        ValueError: the rule is not a conjunction of same-column equalities over known
            columns; the message says which part is wrong.
    """
    parts = [p.strip() for p in re.split(r"\band\b", rule.strip(), flags=re.IGNORECASE)]
    columns: list[str] = []
    for part in parts:
        match = re.fullmatch(r"l\.(\w+)\s*=\s*r\.(\w+)", part, flags=re.IGNORECASE)
        if not match or match.group(1).lower() != match.group(2).lower():
            raise ValueError(
                f"blocking rule '{rule}': '{part}' is not of the form l.<column> = r.<column>"
            )
        column = match.group(1).lower()
        if not _IDENTIFIER.match(column) or column not in BLOCKABLE_COLUMNS:
            raise ValueError(
                f"blocking rule '{rule}': unknown column '{column}' "
                f"(known: {', '.join(BLOCKABLE_COLUMNS)})"
            )
        if column not in columns:
            columns.append(column)
    return BlockingKey("__".join(columns), tuple(columns))
