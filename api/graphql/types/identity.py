"""Why records are one customer: the records, the evidence between them, the id history."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import orjson
import strawberry
from strawberry.scalars import JSON

from api.graphql.budget import list_size
from api.graphql.pii import Pii, personal
from api.graphql.types.scalars import DateTime

_TOKEN = " Without pii:read, an opaque token (the same record has the same token everywhere)."


@strawberry.type(description="The record at the other end of a link.")
class LinkedRecord:
    record_uid: str = strawberry.field(
        description="'<source>:<record_id>'." + _TOKEN, metadata=personal(Pii.IDENTIFIER)
    )
    source: str | None
    record_id: str | None = strawberry.field(
        description="The record's key in its source." + _TOKEN, metadata=personal(Pii.IDENTIFIER)
    )
    customer_id: str | None
    is_same_customer: bool = strawberry.field(
        description="False for a refused link to another customer's record."
    )

    def pii_owner(self) -> str | None:
        """The other record's customer: its identifiers are that customer's data."""
        return self.customer_id


@strawberry.type(description="One reason to link two records, or to refuse the link.")
class Evidence:
    owner_id: strawberry.Private[str]
    other_record: LinkedRecord
    evidence_type: str = strawberry.field(description="rule (deterministic) or model (Splink)")
    rule: str = strawberry.field(description="e.g. same_email, same_account_id, splink")
    identifier_type: str | None
    match_probability: float | None
    match_weight: float | None
    details: JSON | None = strawberry.field(
        description="The shared identifier (partly masked by identity), or the model's "
        "per-comparison levels and weights. Without pii:read only numbers and levels are kept.",
        metadata=personal(Pii.DETAILS),
    )
    is_accepted: bool
    rejected_reason: str | None = strawberry.field(
        description="The guard that refused the link (e.g. max_distinct_names_per_phone)."
    )

    def pii_owner(self) -> str:
        """Whose personal data this is (for the audit log)."""
        return self.owner_id


@strawberry.type(description="A source record merged into the customer.")
class IdentityRecord:
    customer_id: strawberry.Private[str]
    record_uid: str = strawberry.field(
        description="'<source>:<record_id>'." + _TOKEN, metadata=personal(Pii.IDENTIFIER)
    )
    source: str
    record_id: str = strawberry.field(
        description="The record's key in its source (an email for email_events)." + _TOKEN,
        metadata=personal(Pii.IDENTIFIER),
    )
    evidence: list[Evidence]

    def pii_owner(self) -> str:
        """Whose personal data this is (for the audit log)."""
        return self.customer_id


@strawberry.type(description="A merge or split that involved this customer's ids.")
class IdentityHistoryEvent:
    occurred_at: DateTime | None
    run_id: str | None
    event_type: str | None
    customer_id: str | None
    related_customer_id: str | None
    cause: str | None


def _details(text: str | None) -> Any:
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"text": text}


@strawberry.type(description="Identity resolution's account of this customer.")
class Identity:
    customer_id: strawberry.Private[str]

    @strawberry.field(description="Source records and the evidence that joined each to others.")
    async def records(self, info: strawberry.Info) -> list[IdentityRecord]:
        loaders = info.context.loaders
        records, evidence = await asyncio.gather(
            loaders.records.load(self.customer_id), loaders.evidence.load(self.customer_id)
        )
        by_record: dict[str, list[Evidence]] = defaultdict(list)
        for row in evidence:
            other = LinkedRecord(
                record_uid=row["other_record_uid"],
                source=row["other_source"],
                record_id=row["other_record_id"],
                customer_id=row["other_customer_id"],
                is_same_customer=row["other_customer_id"] == self.customer_id,
            )
            by_record[row["record_uid"]].append(
                Evidence(
                    owner_id=self.customer_id,
                    other_record=other,
                    evidence_type=row["evidence_type"],
                    rule=row["rule"],
                    identifier_type=row["identifier_type"],
                    match_probability=row["match_probability"],
                    match_weight=row["match_weight"],
                    details=_details(row["details"]),
                    is_accepted=bool(row["is_accepted"]),
                    rejected_reason=row["rejected_reason"],
                )
            )
        return [
            IdentityRecord(
                customer_id=self.customer_id,
                record_uid=row["record_uid"],
                source=row["source"],
                record_id=row["record_id"] or "",
                evidence=by_record.get(row["record_uid"], []),
            )
            for row in records
        ]

    @strawberry.field(
        description="Merges and splits of this id and the ids it absorbed.",
        metadata=list_size(10),
    )
    async def history(self, info: strawberry.Info) -> list[IdentityHistoryEvent]:
        loaders = info.context.loaders
        identifiers = await loaders.identifiers.load(self.customer_id)
        ids = [self.customer_id] + [
            r["identifier_value"]
            for r in identifiers
            if r["identifier_type"] == "alias_customer_id"
        ]
        seen: set[tuple[Any, ...]] = set()
        events = []
        for rows in await loaders.history.load_many(ids):
            for row in rows:
                key = tuple(
                    row.get(c)
                    for c in (
                        "occurred_at",
                        "run_id",
                        "event_type",
                        "customer_id",
                        "related_customer_id",
                    )
                )
                if key not in seen:
                    seen.add(key)
                    events.append(row)
        events.sort(key=lambda r: r.get("occurred_at") or "")
        return [
            IdentityHistoryEvent(
                occurred_at=r.get("occurred_at"),
                run_id=r.get("run_id"),
                event_type=r.get("event_type"),
                customer_id=r.get("customer_id"),
                related_customer_id=r.get("related_customer_id"),
                cause=r.get("cause"),
            )
            for r in events
        ]
