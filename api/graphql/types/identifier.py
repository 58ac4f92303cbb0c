"""Identifiers of a customer, and the input to look a customer up by one."""

from __future__ import annotations

import strawberry

from api.graphql.types.scalars import DateTime


@strawberry.input(description="Find a customer by any identifier, normalized as identity does.")
class IdentifierLookup:
    type: str = strawberry.field(
        description="email, phone, a named identifier (account_id, loyalty_id, cookie_id, ...) "
        "or alias_customer_id (an id retired by a merge)."
    )
    value: str = strawberry.field(description="As written; it is normalized before the lookup.")


@strawberry.type(description="One identifier of a customer as seen in one source.")
class Identifier:
    type: str = strawberry.field(description="email, phone, account_id, ... or alias_customer_id")
    value: str = strawberry.field(
        description="Normalized value (masked for email and phone without pii:read)."
    )
    source: str
    first_seen_at: DateTime | None
    last_seen_at: DateTime | None
    record_count: int | None = strawberry.field(
        description="Records of the source carrying it (0 for aliases)."
    )
