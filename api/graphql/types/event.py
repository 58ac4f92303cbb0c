"""The customer timeline (dbt mart customer_events), paged newest first."""

from __future__ import annotations

import dataclasses
from typing import Any

import strawberry

from api.graphql.pagination import encode_cursor
from api.graphql.pii import Pii, personal
from api.graphql.types.page import PageInfo
from api.graphql.types.scalars import DateTime


@strawberry.type(description="One web, order or email event of a customer.")
class Event:
    customer_id: strawberry.Private[str]
    event_id: str = strawberry.field(
        description="'<source>:<record_id>' of the source row (a token without pii:read: "
        "source keys can embed personal data).",
        metadata=personal(Pii.IDENTIFIER),
    )
    occurred_at: DateTime
    channel: str = strawberry.field(description="web, orders or email")
    event_type: str
    source: str
    product_id: str | None
    order_id: str | None
    campaign_id: str | None
    amount: float | None
    detail: str | None = strawberry.field(
        description="Free text: the search query, page or link URL, or order summary. Personal "
        "data ('***' without pii:read): searches and links routinely carry emails and names.",
        metadata=personal(Pii.TEXT),
    )

    def pii_owner(self) -> str:
        """Whose personal data this is (for the audit log)."""
        return self.customer_id

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        """Build from a customer_events row."""
        return cls(**{name: row.get(name) for name in _FIELDS})


_FIELDS = tuple(f.name for f in dataclasses.fields(Event))


@strawberry.type
class EventEdge:
    node: Event

    @strawberry.field(description="This position, to pass as `after`.")
    def cursor(self, info: strawberry.Info) -> str:
        node = self.node
        return encode_cursor(info.context.sealer, "event", node.occurred_at, node.event_id)


@strawberry.type(description="A page of events, newest first.")
class EventConnection:
    edges: list[EventEdge]
    page_info: PageInfo
