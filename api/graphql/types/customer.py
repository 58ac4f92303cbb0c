"""The unified customer: golden record, identifiers, traits, segments, consents, events."""

from __future__ import annotations

from typing import Any, Final

import strawberry

from api.graphql.pagination import decode_cursor, encode_cursor, page_size
from api.graphql.types.consent import Consent
from api.graphql.types.event import Event, EventConnection, EventEdge
from api.graphql.types.identifier import Identifier
from api.graphql.types.identity import Identity
from api.graphql.types.masking import MASK, PII_FIELDS, PII_IDENTIFIER_TYPES
from api.graphql.types.page import PageInfo
from api.graphql.types.provenance import AttributeProvenance
from api.graphql.types.scalars import DateTime
from api.graphql.types.segment import CustomerSegment
from api.graphql.types.traits import CustomerTraits
from api.repositories.customers import EventPage
from api.repositories.database import Row

#: Golden-record attributes that carry ``<attribute>_source`` and ``<attribute>_updated_at``.
SURVIVING_ATTRIBUTES: Final[tuple[str, ...]] = (
    *PII_FIELDS,
    "region",
    "country",
)
CONSENT_CHANNELS: Final[tuple[str, ...]] = ("email", "sms", "push")


def _pii_field(column: str, description: str) -> Any:
    def resolve(root: Customer, info: strawberry.Info) -> str | None:
        return root.pii(info, column)

    return strawberry.field(
        resolver=resolve, description=f"{description} PII: '{MASK}' without pii:read."
    )


@strawberry.type(description="One customer: the golden record and everything known about them.")
class Customer:
    row: strawberry.Private[Row]

    def pii(self, info: strawberry.Info, column: str) -> str | None:
        """A PII value if the key may read it (and the read is audited), else the mask."""
        value = self.row.get(column)
        if value is None:
            return None
        context = info.context
        if context.principal.can_read_pii:
            context.reveal(self.row["customer_id"], column)
            return str(value)
        return MASK

    # Plain attributes (no resolver) take strawberry's fast path; PII needs a resolver.
    customer_id: strawberry.ID = strawberry.field(
        description="Stable customer id from identity resolution."
    )
    region: str | None = strawberry.field(description="Surviving region.")
    country: str | None = strawberry.field(description="Surviving country.")
    is_anonymous: bool = strawberry.field(
        description="No people record: only cookies or email addresses."
    )
    signed_up_at: DateTime | None = strawberry.field(
        description="Earliest sign-up over the customer's people records."
    )
    record_count: int | None = strawberry.field(description="All identity records of the customer.")
    profile_record_count: int | None = strawberry.field(
        description="People records merged into the customer."
    )
    source_count: int | None = strawberry.field(description="Distinct sources among the records.")

    @classmethod
    def from_row(cls, row: Row) -> Customer:
        """Build from a customers row."""
        return cls(
            row=row,
            customer_id=strawberry.ID(row["customer_id"]),
            region=row.get("region"),
            country=row.get("country"),
            is_anonymous=bool(row.get("is_anonymous")),
            signed_up_at=row.get("signed_up_at"),
            record_count=row.get("record_count"),
            profile_record_count=row.get("profile_record_count"),
            source_count=row.get("source_count"),
        )

    email = _pii_field("email", "Surviving email (normalized).")
    phone = _pii_field("phone", "Surviving phone (E.164).")
    first_name = _pii_field("first_name", "Surviving first name.")
    last_name = _pii_field("last_name", "Surviving last name.")
    full_name = _pii_field("full_name", "Surviving full name.")
    birth_date = _pii_field("birth_date", "Surviving birth date (ISO 8601).")
    street_address = _pii_field("street_address", "Surviving street address.")
    postal_code = _pii_field("postal_code", "Surviving postal code.")
    city = _pii_field("city", "Surviving city.")

    @strawberry.field(description="PII fields that hold a value this key may not see.")
    def masked_fields(self, info: strawberry.Info) -> list[str]:
        if info.context.principal.can_read_pii:
            return []
        return [strawberry_name(c) for c in PII_FIELDS if self.row.get(c) is not None]

    @strawberry.field(description="Source and time of each surviving attribute.")
    def provenance(self) -> list[AttributeProvenance]:
        return [
            AttributeProvenance(
                attribute=attribute,
                source=self.row.get(f"{attribute}_source"),
                updated_at=self.row.get(f"{attribute}_updated_at"),
            )
            for attribute in SURVIVING_ATTRIBUTES
            if self.row.get(f"{attribute}_source") is not None
        ]

    @strawberry.field(description="Marketing consent per channel (latest statement wins).")
    def consents(self) -> list[Consent]:
        return [
            Consent(
                channel=channel,
                is_granted=bool(self.row.get(f"has_{channel}_consent")),
                source=self.row.get(f"has_{channel}_consent_source"),
                updated_at=self.row.get(f"has_{channel}_consent_updated_at"),
            )
            for channel in CONSENT_CHANNELS
        ]

    @strawberry.field(description="Every identifier per source, incl. ids retired by merges.")
    async def identifiers(
        self, info: strawberry.Info, types: list[str] | None = None
    ) -> list[Identifier]:
        context = info.context
        rows = await context.loaders.identifiers.load(self.row["customer_id"])
        wanted = {t.strip().lower() for t in types} if types is not None else None
        can_read = context.principal.can_read_pii
        result = []
        for r in rows:
            kind = r["identifier_type"]
            if wanted is not None and kind not in wanted:
                continue
            value = r["identifier_value"]
            if kind in PII_IDENTIFIER_TYPES:
                if can_read:
                    context.reveal(self.row["customer_id"], f"identifiers.{kind}")
                else:
                    value = MASK
            result.append(
                Identifier(
                    type=kind,
                    value=value,
                    source=r["source"],
                    first_seen_at=r.get("first_seen_at"),
                    last_seen_at=r.get("last_seen_at"),
                    record_count=r.get("record_count"),
                )
            )
        return result

    @strawberry.field(description="Behavioural traits; null if the customer has none.")
    async def traits(self, info: strawberry.Info) -> CustomerTraits | None:
        row = await info.context.loaders.traits.load(self.row["customer_id"])
        return CustomerTraits.from_row(row) if row is not None else None

    @strawberry.field(description="Current segments with when the customer entered each.")
    async def segments(self, info: strawberry.Info) -> list[CustomerSegment]:
        rows = await info.context.loaders.segments.load(self.row["customer_id"])
        return [CustomerSegment(name=r["segment"], entered_at=r["entered_at"]) for r in rows]

    @strawberry.field(description="The timeline across web, orders and email, newest first.")
    async def events(
        self, info: strawberry.Info, first: int | None = None, after: str | None = None
    ) -> EventConnection:
        context = info.context
        limit = page_size(
            first,
            default=min(20, context.limits.default_page_size),
            maximum=context.limits.max_page_size,
        )
        position = decode_cursor(after, "event", 2)
        key = EventPage(
            customer_id=self.row["customer_id"],
            limit=limit + 1,
            after_occurred_at=position[0] if position else None,
            after_event_id=position[1] if position else None,
        )
        rows = await context.loaders.events.load(key)
        edges = [
            EventEdge(
                cursor=encode_cursor("event", r["occurred_at"], r["event_id"]),
                node=Event.from_row(r),
            )
            for r in rows[:limit]
        ]
        return EventConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > limit,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @strawberry.field(description="Why these records are one customer.")
    def identity(self) -> Identity:
        return Identity(customer_id=self.row["customer_id"])


def strawberry_name(column: str) -> str:
    """The GraphQL (camelCase) name of a snake_case column."""
    head, *rest = column.split("_")
    return head + "".join(part.capitalize() for part in rest)


@strawberry.type
class CustomerEdge:
    cursor: str
    node: Customer


@strawberry.type(description="A page of customers, by customer id.")
class CustomerConnection:
    edges: list[CustomerEdge]
    page_info: PageInfo
    count: strawberry.Private[Any]

    @strawberry.field(description="Customers the filter matches (all pages; costs a count).")
    def total_count(self) -> int:
        return int(self.count())
