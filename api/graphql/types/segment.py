"""Segments (dbt mart segments) and their members, paged by cursor for audience export."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

from api.graphql.pagination import decode_cursor, encode_cursor, page_size
from api.graphql.permissions import requires
from api.graphql.types.page import PageInfo
from api.graphql.types.scalars import DateTime
from api.repositories.database import Row
from api.repositories.segments import MemberPage
from api.security import Scope

if TYPE_CHECKING:
    from api.graphql.types.customer import Customer


@strawberry.type(description="One member of a segment.")
class SegmentMemberEdge:
    segment: strawberry.Private[str]
    customer_id: strawberry.ID
    entered_at: DateTime | None = strawberry.field(description="When they (last) entered.")

    @strawberry.field(description="This position, to pass as `after`.")
    def cursor(self, info: strawberry.Info) -> str:
        return encode_cursor(info.context.sealer, "member:" + self.segment, self.customer_id)

    @strawberry.field(
        description="The member's profile (needs profile:read).",
        extensions=requires(Scope.PROFILE_READ),
    )
    async def node(
        self, info: strawberry.Info
    ) -> Annotated[Customer, strawberry.lazy("api.graphql.types.customer")] | None:
        from api.graphql.types.customer import Customer

        row = await info.context.loaders.customer.load(str(self.customer_id))
        return Customer.from_row(row) if row is not None else None


@strawberry.type(description="A page of segment members, by customer id.")
class SegmentMemberConnection:
    edges: list[SegmentMemberEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Members of the segment (all pages).")


@strawberry.type(description="An audience defined by a dbt model (or a behavioural cluster).")
class Segment:
    row: strawberry.Private[Row]

    @strawberry.field(description="The segment name (the dbt model's name).")
    def name(self) -> str:
        return self.row["segment"]

    @strawberry.field
    def description(self) -> str | None:
        return self.row.get("description")

    @strawberry.field
    def owner(self) -> str | None:
        return self.row.get("owner")

    @strawberry.field(description="rule or behavioural_cluster")
    def family(self) -> str | None:
        return self.row.get("segment_family")

    @strawberry.field(description="The dbt model or asset that defines it.")
    def defined_by(self) -> str | None:
        return self.row.get("defined_by")

    @strawberry.field(description="Current number of members.")
    def size(self) -> int:
        return int(self.row.get("member_count") or 0)

    @strawberry.field(
        description="Members by customer id; follow `pageInfo.endCursor` to export all.",
        extensions=requires(Scope.SEGMENTS_READ),
    )
    async def members(
        self, info: strawberry.Info, first: int | None = None, after: str | None = None
    ) -> SegmentMemberConnection:
        context = info.context
        limit = page_size(
            first,
            default=context.limits.default_page_size,
            maximum=context.limits.max_page_size,
        )
        segment = self.row["segment"]
        kind = "member:" + segment
        position = decode_cursor(context.sealer, after, kind, 1)
        rows = await context.loaders.members.load(
            MemberPage(segment=segment, limit=limit + 1, after=position[0] if position else None)
        )
        page = rows[:limit]
        edges = [
            SegmentMemberEdge(
                segment=segment,
                customer_id=strawberry.ID(r["customer_id"]),
                entered_at=r["entered_at"],
            )
            for r in page
        ]
        return SegmentMemberConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > limit,
                end_cursor=encode_cursor(context.sealer, kind, page[-1]["customer_id"])
                if page
                else None,
            ),
            total_count=self.size(),
        )


@strawberry.type(description="A customer's membership of one segment.")
class CustomerSegment:
    name: str
    entered_at: DateTime | None

    @strawberry.field(description="The segment's catalogue entry.")
    def segment(self, info: strawberry.Info) -> Segment | None:
        row = info.context.segment_catalogue().get(self.name)
        return Segment(row=row) if row is not None else None
