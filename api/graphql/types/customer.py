"""The unified customer: golden record, identifiers, traits, segments, consents, events."""

from __future__ import annotations

from typing import Any, Final

import strawberry

from api.graphql.budget import list_size
from api.graphql.pagination import decode_cursor, encode_cursor, page_size
from api.graphql.permissions import requires
from api.graphql.pii import Pii, personal, personal_fields
from api.graphql.types.consent import CONSENT_CHANNELS, Consent, customer_consents
from api.graphql.types.decision import MAX_RECENT_DECISIONS, Decision, sale_ids
from api.graphql.types.event import Event, EventConnection, EventEdge
from api.graphql.types.identifier import Identifier
from api.graphql.types.identity import Identity
from api.graphql.types.live import LiveProfile
from api.graphql.types.page import PageInfo
from api.graphql.types.product import (
    MAX_RECOMMENDATIONS,
    Recommendation,
    has_recommendations,
    list_limit,
)
from api.graphql.types.provenance import AttributeProvenance
from api.graphql.types.scalars import DateTime
from api.graphql.types.segment import CustomerSegment
from api.graphql.types.traits import CustomerTraits
from api.lookup import ALIAS_TYPE
from api.repositories.customers import EventPage
from api.repositories.database import Row
from api.repositories.live import live_event_rows
from api.security import Scope
from identity import PERSONAL_ATTRIBUTES  # personal data: names, email, phone, address, birth date

#: Golden-record attributes that carry ``<attribute>_source`` and ``<attribute>_updated_at``.
SURVIVING_ATTRIBUTES: Final[tuple[str, ...]] = (*PERSONAL_ATTRIBUTES, "region", "country")
_WITHOUT_PII_READ = " Personal data: '***' without pii:read."


def _personal(description: str) -> Any:
    return strawberry.field(
        description=description + _WITHOUT_PII_READ, metadata=personal(Pii.VALUE)
    )


@strawberry.type(description="One customer: the golden record and everything known about them.")
class Customer:
    row: strawberry.Private[Row]

    def pii_owner(self) -> str:
        """Whose personal data this is (for the audit log)."""
        return self.row["customer_id"]

    # Plain attributes (no resolver) take strawberry's fast path; personal ones are masked and
    # audited by api.graphql.pii from their declaration.
    customer_id: strawberry.ID = strawberry.field(
        description="Stable customer id from identity resolution."
    )
    email: str | None = _personal("Surviving email (normalized).")
    phone: str | None = _personal("Surviving phone (E.164).")
    first_name: str | None = _personal("Surviving first name.")
    last_name: str | None = _personal("Surviving last name.")
    full_name: str | None = _personal("Surviving full name.")
    birth_date: str | None = _personal("Surviving birth date (ISO 8601).")
    street_address: str | None = _personal("Surviving street address.")
    postal_code: str | None = _personal("Surviving postal code.")
    city: str | None = _personal("Surviving city.")
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
        get = row.get
        birth_date = get("birth_date")
        return cls(
            row=row,
            customer_id=strawberry.ID(row["customer_id"]),
            email=get("email"),
            phone=get("phone"),
            first_name=get("first_name"),
            last_name=get("last_name"),
            full_name=get("full_name"),
            birth_date=str(birth_date) if birth_date is not None else None,
            street_address=get("street_address"),
            postal_code=get("postal_code"),
            city=get("city"),
            region=get("region"),
            country=get("country"),
            is_anonymous=bool(get("is_anonymous")),
            signed_up_at=get("signed_up_at"),
            record_count=get("record_count"),
            profile_record_count=get("profile_record_count"),
            source_count=get("source_count"),
        )

    @strawberry.field(description="Personal fields that hold a value this key may not see.")
    def masked_fields(self, info: strawberry.Info) -> list[str]:
        if info.context.principal.can_read_pii:
            return []
        return [
            strawberry_name(f.python_name)
            for f in _PERSONAL
            if getattr(self, f.python_name) is not None
        ]

    @strawberry.field(
        description="Source and time of each surviving attribute.",
        metadata=list_size(len(SURVIVING_ATTRIBUTES)),
    )
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

    @strawberry.field(
        description="Marketing consent per channel (latest statement wins), with its history.",
        metadata=list_size(len(CONSENT_CHANNELS)),
    )
    async def consents(self, info: strawberry.Info) -> list[Consent]:
        return await customer_consents(info, self.row)

    @strawberry.field(description="Every identifier per source, incl. ids retired by merges.")
    async def identifiers(
        self, info: strawberry.Info, types: list[str] | None = None
    ) -> list[Identifier]:
        rows = await info.context.loaders.identifiers.load(self.row["customer_id"])
        wanted = {t.strip().lower() for t in types} if types is not None else None
        return [
            Identifier.from_row(r) for r in rows if wanted is None or r["identifier_type"] in wanted
        ]

    @strawberry.field(description="Behavioural traits; null if the customer has none.")
    async def traits(self, info: strawberry.Info) -> CustomerTraits | None:
        row = await info.context.loaders.traits.load(self.row["customer_id"])
        return CustomerTraits.from_row(row) if row is not None else None

    @strawberry.field(
        description="Current segments with when the customer entered each (segments:read).",
        extensions=requires(Scope.SEGMENTS_READ),
        metadata=list_size(30),
    )
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
        position = decode_cursor(context.sealer, after, "event", 2)
        key = EventPage(
            customer_id=self.row["customer_id"],
            limit=limit + 1,
            after_occurred_at=position[0] if position else None,
            after_event_id=position[1] if position else None,
        )
        rows = await context.loaders.events.load(key)
        live = await self._live_events(info, position)
        if live:  # accepted since the snapshot was built: merged into the timeline's order
            known = {r["event_id"] for r in rows}
            rows = sorted(
                [*rows, *(r for r in live if r["event_id"] not in known)],
                key=lambda r: (str(r["occurred_at"]), str(r["event_id"])),
                reverse=True,
            )
        page = rows[:limit]
        edges = [EventEdge(node=Event.from_row(r)) for r in page]
        end = (
            encode_cursor(context.sealer, "event", page[-1]["occurred_at"], page[-1]["event_id"])
            if page
            else None
        )
        return EventConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=len(rows) > limit, end_cursor=end),
        )

    async def _customer_ids(self, info: strawberry.Info) -> tuple[str, ...]:
        """The customer's id, then the ids merged into it (their live data is theirs)."""
        customer_id = self.row["customer_id"]
        identifiers = await info.context.loaders.identifiers.load(customer_id)
        return (
            customer_id,
            *(r["identifier_value"] for r in identifiers if r["identifier_type"] == ALIAS_TYPE),
        )

    async def _live_events(
        self, info: strawberry.Info, position: list[str] | None
    ) -> list[dict[str, Any]]:
        """Live events newer than the snapshot and past the page position, as timeline rows."""
        context = info.context
        if context.live is None:
            return []
        state = await context.loaders.live.load(await self._customer_ids(info))
        if state is None:
            return []
        rows = live_event_rows(
            self.row["customer_id"],
            state.recent_events,
            context.snapshot.manifest.created_at,
            context.live.settings.events_source,
        )
        if position is not None:
            after = (str(position[0]), str(position[1]))
            rows = [r for r in rows if (r["occurred_at"], r["event_id"]) < after]
        return rows

    @strawberry.field(
        description="What the customer did in the last seconds, ahead of the next batch run "
        "(null when the live path has not seen them; profile:read).",
        extensions=requires(Scope.PROFILE_READ),
    )
    async def live(self, info: strawberry.Info) -> LiveProfile | None:
        if info.context.live is None:
            return None
        state = await info.context.loaders.live.load(await self._customer_ids(info))
        return LiveProfile.from_state(state) if state is not None else None

    @strawberry.field(
        description=(
            "Recommended products, best first (at most "
            f"{MAX_RECOMMENDATIONS}; empty when the snapshot has none)."
        ),
        extensions=requires(Scope.PROFILE_READ),
        metadata=list_size(MAX_RECOMMENDATIONS),
    )
    async def recommendations(self, info: strawberry.Info, first: int = 10) -> list[Recommendation]:
        limit = list_limit(first, MAX_RECOMMENDATIONS)
        if not has_recommendations(info):
            return []
        rows = await info.context.loaders.recommendations.load(self.row["customer_id"])
        return [Recommendation.from_row(r) for r in rows[:limit]]

    @strawberry.field(
        description="The customer's last decisions on every channel, newest first (one per "
        f"channel asked; at most {MAX_RECENT_DECISIONS}): the call center sees what the email "
        "said (decisions:read).",
        extensions=requires(Scope.DECISIONS_READ),
        metadata=list_size(MAX_RECENT_DECISIONS, "last"),
    )
    async def decisions(self, info: strawberry.Info, last: int | None = 5) -> list[Decision]:
        limit = list_limit(5 if last is None else last, MAX_RECENT_DECISIONS, "last")
        context = info.context
        customer_id = self.row["customer_id"]
        identifiers = await context.loaders.identifiers.load(customer_id)
        ids = [customer_id] + [
            r["identifier_value"] for r in identifiers if r["identifier_type"] == ALIAS_TYPE
        ]
        logged = context.decisions.recent(ids, limit)
        sales = context.decisions.sales(context.db, context.snapshot, sale_ids(logged))
        return [Decision.from_decision(d, sales) for d in logged]

    @strawberry.field(description="Why these records are one customer.")
    def identity(self) -> Identity:
        return Identity(customer_id=self.row["customer_id"])


def strawberry_name(column: str) -> str:
    """The GraphQL (camelCase) name of a snake_case column."""
    head, *rest = column.split("_")
    return head + "".join(part.capitalize() for part in rest)


@strawberry.type
class CustomerEdge:
    node: Customer

    @strawberry.field(description="This position, to pass as `after`.")
    def cursor(self, info: strawberry.Info) -> str:
        return encode_cursor(info.context.sealer, "customer", self.node.row["customer_id"])


@strawberry.type(description="A page of customers, by customer id.")
class CustomerConnection:
    edges: list[CustomerEdge]
    page_info: PageInfo
    count: strawberry.Private[Any]

    @strawberry.field(description="Customers the filter matches (all pages; costs a count).")
    def total_count(self) -> int:
        return int(self.count())


_PERSONAL = personal_fields(Customer)
