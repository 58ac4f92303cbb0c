"""Marketing consent per channel: the resolved state and the statements it was resolved from.

The state is the snapshot's ``customer_consents`` (latest statement wins over people records,
consents sources, email unsubscribes and the decision log's consent events) and the history
its ``customer_consent_history``. A customer without any row there has no statement anywhere,
which the golden record's ``has_<channel>_consent`` columns say as well; they are served then
(and for snapshots published before the consent marts), with an empty history: the rule
``decisions.facts.resolved_consents`` applies, so the API shows what decisions read.

The two tables are read through request-scoped DataLoaders (one statement per table for every
customer of a response), kept per request context here so the consent fields stay in one file.
"""

from __future__ import annotations

from typing import Any, Final
from weakref import WeakKeyDictionary

import strawberry
from strawberry.dataloader import DataLoader

from api.graphql.budget import list_size
from api.graphql.dataloaders import by_key
from api.graphql.types.product import list_limit
from api.graphql.types.scalars import DateTime
from api.repositories.consents import (
    CONSENT_TABLES,
    consent_history_by_customer,
    consents_by_customer,
)
from api.repositories.database import Row

#: Channels every customer shows a consent for (others appear once a statement names them).
CONSENT_CHANNELS: Final[tuple[str, ...]] = ("email", "sms", "push")
#: The most statements one ``history`` returns.
MAX_HISTORY: Final[int] = 100

_LOADERS: WeakKeyDictionary[Any, tuple[DataLoader[str, list[Row]], ...]] = WeakKeyDictionary()


def _loaders(context: Any) -> tuple[DataLoader[str, list[Row]], DataLoader[str, list[Row]]]:
    """The request's (consents, history) loaders, created on first use."""
    found = _LOADERS.get(context)
    if found is None:
        found = (
            by_key(context.db, consents_by_customer, list),
            by_key(context.db, consent_history_by_customer, list),
        )
        _LOADERS[context] = found
    return found  # type: ignore[return-value]


def has_consent_tables(info: strawberry.Info) -> bool:
    """Whether the request's snapshot holds the consent marts."""
    tables = info.context.snapshot.manifest.tables
    return all(name in tables for name in CONSENT_TABLES)


@strawberry.type(description="One consent statement: what was said on a channel, where, when.")
class ConsentStatement:
    is_granted: bool = strawberry.field(description="Granted (true) or withdrawn (false).")
    source: str = strawberry.field(
        description="Where it came from: a people or consents source, an email events source "
        "(unsubscribe), unsubscribe:<decision id>, or event:<write key>:<messageId>."
    )
    changed_at: DateTime = strawberry.field(description="When it was stated.")


@strawberry.type(description="The resolved consent on one channel (latest statement wins).")
class Consent:
    customer_id: strawberry.Private[str]
    channel: str = strawberry.field(description="email, sms, push or another channel named.")
    is_granted: bool = strawberry.field(
        description="False when withdrawn and when no statement exists (missing means no)."
    )
    source: str | None = strawberry.field(description="Source of the latest statement.")
    changed_at: DateTime | None = strawberry.field(
        description="When the latest statement was made; null when none exists."
    )
    updated_at: DateTime | None = strawberry.field(
        description="When it was stated.", deprecation_reason="Use changedAt."
    )

    @strawberry.field(
        description=f"The statements on this channel, newest first (at most {MAX_HISTORY}).",
        metadata=list_size(MAX_HISTORY, "last"),
    )
    async def history(self, info: strawberry.Info, last: int = 20) -> list[ConsentStatement]:
        limit = list_limit(last, MAX_HISTORY, "last")
        if not has_consent_tables(info):
            return []
        rows = await _loaders(info.context)[1].load(self.customer_id)
        return [
            ConsentStatement(
                is_granted=bool(r["is_granted"]), source=r["source"], changed_at=r["changed_at"]
            )
            for r in rows
            if r["channel"] == self.channel
        ][:limit]


def _consent(customer_id: str, channel: str, granted: Any, source: Any, at: Any) -> Consent:
    return Consent(
        customer_id=customer_id,
        channel=channel,
        is_granted=bool(granted),
        source=source,
        changed_at=at,
        updated_at=at,
    )


async def customer_consents(info: strawberry.Info, row: Row) -> list[Consent]:
    """The customer's consents: every channel of CONSENT_CHANNELS, then any other stated."""
    customer_id = row["customer_id"]
    rows: dict[str, Row] = {}
    if has_consent_tables(info):
        rows = {r["channel"]: r for r in await _loaders(info.context)[0].load(customer_id)}
    if not rows:  # no statement anywhere, or a snapshot from before the consent marts
        return [
            _consent(
                customer_id,
                channel,
                row.get(f"has_{channel}_consent"),
                row.get(f"has_{channel}_consent_source"),
                row.get(f"has_{channel}_consent_updated_at"),
            )
            for channel in CONSENT_CHANNELS
        ]
    channels = [*CONSENT_CHANNELS, *sorted(set(rows) - set(CONSENT_CHANNELS))]
    out = []
    for channel in channels:
        found = rows.get(channel)
        if found is None:
            out.append(_consent(customer_id, channel, False, None, None))
        else:
            out.append(
                _consent(
                    customer_id,
                    channel,
                    found["is_granted"],
                    found["source"],
                    found["changed_at"],
                )
            )
    return out
