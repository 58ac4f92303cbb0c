"""Marketing consent per channel."""

from __future__ import annotations

import strawberry

from api.graphql.types.scalars import DateTime


@strawberry.type(description="The latest consent statement for one channel.")
class Consent:
    channel: str = strawberry.field(description="email, sms or push")
    is_granted: bool = strawberry.field(description="False when no statement exists.")
    source: str | None = strawberry.field(description="Source of the latest statement.")
    updated_at: DateTime | None = strawberry.field(description="When it was stated.")
