"""Erasure requests as GraphQL types (admin only): status overall and per store, no values."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.graphql.types.scalars import DateTime
from privacy.suppression import ErasureRequest as StoredRequest
from privacy.suppression import ErasureStep
from snapshots import TIMESTAMP_TEXT_FORMAT


def _text(moment: datetime) -> DateTime:
    return DateTime(moment.strftime(TIMESTAMP_TEXT_FORMAT))


@strawberry.type(description="One store's part in an erasure request.")
class ErasureStoreStatus:
    store: str = strawberry.field(description="lake, events, warehouse, serving, decisions, ...")
    status: str = strawberry.field(
        description="erased, verified (scanned clean), remaining, failed or absent."
    )
    removed: int = strawberry.field(description="Rows, lines or records removed or pseudonymized.")
    remaining: int = strawberry.field(description="Matches the scan still found (0 when clean).")
    detail: str = strawberry.field(description="Counts by table or file; never a value.")
    updated_at: DateTime

    @classmethod
    def from_step(cls, step: ErasureStep) -> ErasureStoreStatus:
        return cls(
            store=step.store,
            status=step.status,
            removed=step.removed,
            remaining=step.remaining,
            detail=step.detail,
            updated_at=_text(step.updated_at),
        )


@strawberry.type(
    description="An erasure request. The person is recorded only as keyed hashes of their "
    "identifiers; the pipeline carries a pending request out within a minute."
)
class ErasureRequest:
    id: strawberry.ID
    status: str = strawberry.field(
        description="pending (listed: ingest and intake drop the person; stores not yet "
        "rewritten), completed, incomplete (a store is not clean: carried out again) or "
        "nothing_held."
    )
    named_by: str = strawberry.field(description="The identifier type the request named.")
    requested_at: DateTime
    requested_by: str
    completed_at: DateTime | None
    customer_ids: int = strawberry.field(description="Customer ids on the suppression list.")
    identifiers: int = strawberry.field(description="Other identifiers on the suppression list.")
    message: str | None = strawberry.field(
        default=None, description="What the platform wants the requester to know."
    )
    stores: list[ErasureStoreStatus]

    @classmethod
    def from_stored(
        cls, request: StoredRequest, steps: list[ErasureStep], message: str | None = None
    ) -> ErasureRequest:
        return cls(
            id=strawberry.ID(request.request_id),
            status=request.status,
            named_by=request.subject_type,
            requested_at=_text(request.requested_at),
            requested_by=request.requested_by,
            completed_at=_text(request.completed_at) if request.completed_at else None,
            customer_ids=request.customer_ids,
            identifiers=request.identifiers,
            message=message or None,
            stores=[ErasureStoreStatus.from_step(step) for step in steps],
        )
