"""Live profiles: the stream processor's state (``CDP_HOME/events/state.sqlite``), read-only.

Why a second store beside the snapshot: the snapshot changes once per batch run, the live
profile within milliseconds of an accepted event. Serving reads it through the events library's
reader (``events.live.read_live``): a read-only WAL connection, opened once per worker on first
use, that never blocks the processor; a request costs a handful of indexed lookups per customer.
Until ``cdp stream`` has created the file every customer simply has no live profile.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from events.config import FoldSettings, LiveProfileSettings, load_realtime
from events.live import LiveEvent, LiveProfile, open_live_reader, read_live

logger = logging.getLogger(__name__)

#: The customer_events channel of real-time events (the fold makes them an events source).
LIVE_CHANNEL: Final[str] = "web"


def state_path(home: Path) -> Path:
    """Where ``cdp stream`` keeps its state under CDP_HOME."""
    return home / "events" / "state.sqlite"


@dataclass(frozen=True)
class LiveSettings:
    """How much of the live profile serving shows, and the folded source's name (live events
    carry the event id the next batch run will give them: ``<source>:<message id>``)."""

    recent_products: int = LiveProfileSettings().recent_products
    recent_events: int = LiveProfileSettings().recent_events
    events_source: str = FoldSettings().events_source


class LiveState:
    """One worker's read-only view of the live state (thread-safe, cheap per request)."""

    def __init__(self, path: Path, settings: LiveSettings | None = None) -> None:
        self.path = Path(path)
        self.settings = settings or LiveSettings()
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_home(cls, home: Path, config_path: Path | None = None) -> LiveState:
        """The live state of a CDP_HOME, sized by cdp.yml's ``realtime`` section (defaults
        without one; an invalid one raises RealtimeConfigError naming the key)."""
        settings = LiveSettings()
        if config_path is not None:
            realtime, _policy = load_realtime(config_path)
            settings = LiveSettings(
                recent_products=realtime.live.recent_products,
                recent_events=realtime.live.recent_events,
                events_source=realtime.fold.events_source,
            )
        return cls(state_path(home), settings)

    def _connection(self) -> sqlite3.Connection | None:
        # Called with the lock held. A missing file is normal before `cdp stream` first runs:
        # one stat per request until it appears.
        if self._conn is None:
            try:
                self._conn = open_live_reader(self.path)
            except (FileNotFoundError, sqlite3.OperationalError):
                return None
        return self._conn

    def profiles(self, groups: Sequence[Sequence[str]]) -> list[LiveProfile | None]:
        """The live profile of each group of ids (a customer and its merged ids), in order."""
        with self._lock:
            conn = self._connection()
            if conn is None:
                return [None] * len(groups)
            try:
                return [
                    read_live(
                        conn,
                        group,
                        recent_products=self.settings.recent_products,
                        recent_events=self.settings.recent_events,
                    )
                    for group in groups
                ]
            except sqlite3.OperationalError as exc:
                # The processor has not created its tables yet (or the file was replaced):
                # reopen on the next request rather than fail the customer query.
                logger.warning("live state %s unreadable, retried next request: %s", self.path, exc)
                self._close_locked()
                return [None] * len(groups)

    def _close_locked(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Release the connection (on shutdown)."""
        with self._lock:
            self._close_locked()


def iso(at: datetime) -> str:
    """The snapshot's timestamp text (``2025-06-30T12:00:00.000000Z``), so live and snapshot
    times sort and page together."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def live_event_rows(
    customer_id: str, events: Sequence[LiveEvent], newer_than: datetime, source: str
) -> list[dict[str, object]]:
    """Live events after ``newer_than`` as customer_events rows (the snapshot has the rest)."""
    return [
        {
            "customer_id": customer_id,
            "event_id": f"{source}:{event.message_id}",
            "occurred_at": iso(event.occurred_at),
            "channel": LIVE_CHANNEL,
            "event_type": event.kind,
            "source": source,
            "product_id": event.product_id,
            "order_id": None,
            "campaign_id": None,
            "amount": None,
            "detail": event.event if event.kind == "custom" else None,
        }
        for event in events
        if event.occurred_at > newer_than
    ]
