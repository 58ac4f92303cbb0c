"""Real-time consent: a ``Consent Updated`` event appended to the decision log's consent events.

Why the decision log and not the live state: every path that can send (``decide`` in the API,
the daily batch, real-time triggers) already checks the log's latest consent event for the
person inside the delivery transaction (``DecisionStore.deliver``, ``withdrawn_many``), so one
append makes a withdrawal hold everywhere at once, with no snapshot to rebuild. The log is
exported to ``lake/_decisions/consent_events`` and resolved by dbt
(``customer_consents``/``customer_consent_history``) at the next batch run, which is how the
statement joins the golden record's history.

The source of the appended event is ``event:<write key name>:<messageId>``: the consent
history names where a statement came from, and a replayed event (the processor applying a
batch again after a crash, before its offset commit) appends an identical row (same person,
channel, value, time and source), which cannot change the latest state; the history model
collapses such twins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Protocol

from events.intake import Refused, consent_statement
from events.types import EventKind, LoggedEvent

#: The prefix of a real-time statement's source in the decision log and the consent history.
SOURCE_PREFIX: Final[str] = "event"


class ConsentEventError(ValueError):
    """A consent event the processor cannot apply (kept in ``dead_events`` with this error)."""


class ConsentSink(Protocol):
    """The part of ``decisions.store.DecisionStore`` a consent statement is written to."""

    def record_consent(
        self, customer_id: str, channel: str, granted: bool, at: datetime, source: str
    ) -> None: ...


def consent_source(event: LoggedEvent) -> str:
    """Where the statement came from, as the decision log and the history show it."""
    return f"{SOURCE_PREFIX}:{event.source}:{event.message_id}"


def apply_consent(sink: ConsentSink, event: LoggedEvent, customer_id: str | None) -> bool:
    """Append the event's statement for ``customer_id``; False for any other kind of event.

    Raises ConsentEventError when the event names no person the processor could resolve (a
    withdrawal must never vanish silently: the processor keeps it as a dead event) or when
    its properties are not a valid statement (events logged before validation existed).
    """
    if event.kind != EventKind.CONSENT:
        return False
    properties = event.body.get("properties") if isinstance(event.body, dict) else None
    try:
        channel, granted = consent_statement(properties)
    except Refused as refused:
        raise ConsentEventError(f"consent event {event.message_id}: {refused.detail}") from None
    if customer_id is None:
        raise ConsentEventError(
            f"consent event {event.message_id} names no person with a usable identifier "
            "(userId, anonymousId, context.traits email or phone)"
        )
    sink.record_consent(customer_id, channel, granted, event.occurred_at, consent_source(event))
    return True
