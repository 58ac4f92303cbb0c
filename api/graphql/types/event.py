"""The customer timeline (dbt mart customer_events), paged newest first."""

from __future__ import annotations

import dataclasses
from typing import Any

import strawberry

from api.graphql.types.page import PageInfo
from api.graphql.types.scalars import DateTime


@strawberry.type(description="One web, order or email event of a customer.")
class Event:
    event_id: str = strawberry.field(description="'<source>:<record_id>' of the source row.")
    occurred_at: DateTime
    channel: str = strawberry.field(description="web, orders or email")
    event_type: str
    source: str
    product_id: str | None
    order_id: str | None
    campaign_id: str | None
    amount: float | None
    detail: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        """Build from a customer_events row."""
        return cls(**{name: row.get(name) for name in _FIELDS})


_FIELDS = tuple(f.name for f in dataclasses.fields(Event))


@strawberry.type
class EventEdge:
    cursor: str
    node: Event


@strawberry.type(description="A page of events, newest first.")
class EventConnection:
    edges: list[EventEdge]
    page_info: PageInfo
