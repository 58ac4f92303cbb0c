"""Identifiers of a customer, and the input to look a customer up by one."""

from __future__ import annotations

import strawberry

from api.graphql.pii import Pii, personal
from api.graphql.types.scalars import DateTime
from api.repositories.database import Row


@strawberry.input(description="Find a customer by any identifier, normalized as identity does.")
class IdentifierLookup:
    type: str = strawberry.field(
        description="email, phone, a named identifier (account_id, loyalty_id, cookie_id, ...) "
        "or alias_customer_id (an id retired by a merge)."
    )
    value: str = strawberry.field(description="As written; it is normalized before the lookup.")


@strawberry.type(description="One identifier of a customer as seen in one source.")
class Identifier:
    customer_id: strawberry.Private[str]
    type: str = strawberry.field(description="email, phone, account_id, ... or alias_customer_id")
    value: str = strawberry.field(
        description="Normalized value. Without pii:read, an opaque token (equal values give "
        "equal tokens, so it still works as a handle).",
        metadata=personal(Pii.IDENTIFIER),
    )
    source: str
    first_seen_at: DateTime | None
    last_seen_at: DateTime | None
    record_count: int | None = strawberry.field(
        description="Records of the source carrying it (0 for aliases)."
    )

    def pii_owner(self) -> str:
        """Whose personal data this is (for the audit log)."""
        return self.customer_id

    @classmethod
    def from_row(cls, row: Row) -> Identifier:
        """Build from a customer_identifiers row."""
        return cls(
            customer_id=row["customer_id"],
            type=row["identifier_type"],
            value=row["identifier_value"],
            source=row["source"],
            first_seen_at=row.get("first_seen_at"),
            last_seen_at=row.get("last_seen_at"),
            record_count=row.get("record_count"),
        )
