"""Where each golden-record attribute came from."""

from __future__ import annotations

import strawberry

from api.graphql.types.scalars import DateTime


@strawberry.type(description="The source and observation time of one surviving attribute.")
class AttributeProvenance:
    attribute: str = strawberry.field(description="Canonical attribute name, e.g. email.")
    source: str | None
    updated_at: DateTime | None
