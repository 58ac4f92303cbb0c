"""Real-time identity: which customer an event is about, decided as the event is processed.

Identifiers are normalized as the batch normalizes them (``identity.Normalizer`` with the
settings the serving snapshot was built with), then looked up strongest first:

1. the user id, email, phone and other named identifiers the event carries, in the processor's
   ``live_identities`` (links made since the last batch) and then in the serving snapshot's
   ``identifier_lookup`` (merged ids followed through ``customer_aliases``);
2. the anonymous id (``cookie_id``) the same way;
3. else a new PROVISIONAL customer, ``cus_`` + 16 hex of sha256 of a fixed prefix and the first
   identifier: deterministic, so a replay of the log gives the same id, and the next batch run
   (which sees the same identifiers in the folded log) can reconcile it.

Every identifier of the event is then linked to the customer found: a login (``identify`` with a
user id or email) links the cookie at once, so the cookie's later events go to the customer. A
cookie that was provisional moves its live data (views, cart, counters, events) to the known
customer and leaves a ``live_aliases`` row, so a reader asking for either id sees one person.

``SnapshotSource`` follows ``serving/CURRENT`` the way the API does (a ``stat`` per check, a
read-only ``immutable`` open, a lease so a publisher does not delete the file under us); it
lives here because ``events`` may not import the API.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from events.config import IdentifierTypes
from events.types import CATALOG_KINDS, LoggedEvent
from identity import IdentitySettings, Normalizer, Status
from snapshots import (
    CURRENT_FILE,
    LEASE_REFRESH_SECONDS,
    NORMALIZATION_SETTINGS,
    SnapshotError,
    SnapshotManifest,
    read_current,
    read_manifest,
    remove_lease,
    snapshot_folder,
    write_lease,
)

logger = logging.getLogger(__name__)

#: Part of every provisional id's hash: changing it would change every provisional id.
PROVISIONAL_PREFIX: Final[str] = "cdp-live-provisional-v1"
#: Identifier types that name a person (looked up before the anonymous id).
STRONG_ORDER: Final[tuple[str, ...]] = ("email", "phone")


def provisional_id(identifier_type: str, value: str) -> str:
    """The provisional customer id of a person first seen with this (normalized) identifier."""
    digest = hashlib.sha256(f"{PROVISIONAL_PREFIX}|{identifier_type}|{value}".encode()).hexdigest()
    return f"cus_{digest[:16]}"


# --- the serving snapshot -----------------------------------------------------------------


@dataclass(eq=False)
class SnapshotView:
    """One opened snapshot: read-only connection, manifest, the normalizer it was built with."""

    folder: Path
    manifest: SnapshotManifest
    conn: sqlite3.Connection
    normalizer: Normalizer
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The snapshot id."""
        return self.manifest.snapshot_id

    def has_table(self, name: str) -> bool:
        """Whether the snapshot publishes ``name``."""
        return name in self.manifest.tables

    @classmethod
    def open(cls, folder: Path) -> SnapshotView:
        """Open a published snapshot read-only (SnapshotError when it is not one)."""
        manifest = read_manifest(folder)
        path = Path(folder) / manifest.database
        if not path.is_file():
            raise SnapshotError(f"{path}: missing snapshot database")
        uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, cached_statements=256)
        conn.execute("pragma query_only = 1")
        settings = IdentitySettings.model_validate(
            {k: v for k, v in manifest.identity_settings.items() if k in NORMALIZATION_SETTINGS}
        )
        return cls(
            folder=Path(folder), manifest=manifest, conn=conn, normalizer=Normalizer(settings)
        )

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class SnapshotSource:
    """The snapshot serving/CURRENT names, re-opened when the pipeline publishes a new one."""

    def __init__(self, serving_dir: Path, *, check_seconds: float = 1.0) -> None:
        self.serving_dir = Path(serving_dir)
        self.check_seconds = check_seconds
        self._current: SnapshotView | None = None
        self._pointer: tuple[int, int, int] | None = None
        self._checked_at = 0.0
        self._lease_at = 0.0
        self._default_normalizer = Normalizer(IdentitySettings())
        self.last_error: str | None = None

    @property
    def normalizer(self) -> Normalizer:
        """The current snapshot's normalizer (identity's defaults before any publish)."""
        return self._current.normalizer if self._current is not None else self._default_normalizer

    def current(self, *, force: bool = False) -> SnapshotView | None:
        """The snapshot to read (checked against CURRENT at most every ``check_seconds``)."""
        now = time.monotonic()
        if force or now - self._checked_at >= self.check_seconds:
            self._checked_at = now
            self._refresh()
        return self._current

    def _refresh(self) -> None:
        try:
            stat = os.stat(self.serving_dir / CURRENT_FILE)
            pointer: tuple[int, int, int] | None = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            pointer = None
        if pointer is None or pointer == self._pointer:
            self._renew_lease()
            return
        try:
            snapshot_id = read_current(self.serving_dir)
            if snapshot_id is None or (
                self._current is not None and self._current.id == snapshot_id
            ):
                self._pointer = pointer
                return
            view = SnapshotView.open(snapshot_folder(self.serving_dir, snapshot_id))
        except (OSError, SnapshotError, sqlite3.Error) as exc:
            if self.last_error != str(exc):
                logger.error("cannot open the serving snapshot: %s", exc)
            self.last_error = str(exc)
            return
        self._pointer = pointer
        old, self._current = self._current, view
        self.last_error = None
        self._renew_lease(force=True)
        if old is not None:
            old.close()
        logger.info("stream processor reads snapshot %s", view.id)

    def _renew_lease(self, force: bool = False) -> None:
        if self._current is None:
            return
        now = time.monotonic()
        if force or now - self._lease_at >= LEASE_REFRESH_SECONDS:
            try:
                write_lease(self.serving_dir, [self._current.id])
                self._lease_at = now
            except OSError as exc:
                logger.warning("cannot write the snapshot lease: %s", exc)

    def close(self) -> None:
        """Close the snapshot and drop the lease."""
        if self._current is not None:
            self._current.close()
            self._current = None
            remove_lease(self.serving_dir)


# --- resolution ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """Who an event is about, and whether that person is only known to the live path."""

    customer_id: str
    is_provisional: bool
    #: a provisional customer whose live data moved to ``customer_id`` by this event
    moved_from: tuple[str, ...] = ()


#: Moves a provisional customer's live data to another (``events.live.move_customer``).
MoveFn = Callable[[sqlite3.Connection, str, str, bool, int], None]


def event_identifiers(
    event: LoggedEvent, normalizer: Normalizer, types: IdentifierTypes
) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
    """(strong identifiers, anonymous identifier) of an event, normalized; junk and invalid
    values are left out (identity never links by them either)."""
    raw: list[tuple[str, str]] = []
    if event.user_id:
        raw.append((types.user_id, event.user_id))
    named = dict(event.identifiers)
    for kind in STRONG_ORDER:
        if named.get(kind):
            raw.append((kind, named.pop(kind)))
    for kind in sorted(named):
        if kind != types.anonymous_id and named[kind]:
            raw.append((kind, named[kind]))
    strong: list[tuple[str, str]] = []
    for kind, value in raw:
        normalized = _normalize(normalizer, kind, value)
        if normalized is not None and (kind, normalized) not in strong:
            strong.append((kind, normalized))
    anonymous = event.anonymous_id or event.identifiers.get(types.anonymous_id)
    anon = None
    if anonymous:
        value = _normalize(normalizer, types.anonymous_id, anonymous)
        if value is not None:
            anon = (types.anonymous_id, value)
    return strong, anon


def _normalize(normalizer: Normalizer, kind: str, value: str) -> str | None:
    normalized, status = normalizer.identifier(kind, value)
    if status in (Status.INVALID, Status.JUNK) or normalized is None:
        return None
    return str(normalized)


def _live_lookup(conn: sqlite3.Connection, key: tuple[str, str]) -> tuple[str, bool] | None:
    row = conn.execute(
        "select customer_id, is_provisional from live_identities "
        "where identifier_type = ? and identifier_value = ?",
        key,
    ).fetchone()
    return (str(row[0]), bool(row[1])) if row else None


def _snapshot_lookup(snapshot: SnapshotView | None, key: tuple[str, str]) -> str | None:
    if snapshot is None or not snapshot.has_table("identifier_lookup"):
        return None
    row = snapshot.conn.execute(
        "select customer_id from identifier_lookup where identifier_type = ? "
        "and identifier_value = ?",
        key,
    ).fetchone()
    return current_customer_id(snapshot, str(row[0])) if row else None


def current_customer_id(snapshot: SnapshotView | None, customer_id: str) -> str:
    """The snapshot's survivor of a merged id (itself when not merged or no snapshot)."""
    if snapshot is None or not snapshot.has_table("customer_aliases"):
        return customer_id
    row = snapshot.conn.execute(
        "select customer_id from customer_aliases where alias_customer_id = ?", (customer_id,)
    ).fetchone()
    return str(row[0]) if row else customer_id


def _is_customer(snapshot: SnapshotView | None, customer_id: str) -> bool:
    """Whether the snapshot serves ``customer_id`` (a provisional id a batch run kept)."""
    if snapshot is None or not snapshot.has_table("customers"):
        return False
    row = snapshot.conn.execute(
        "select 1 from customers where customer_id = ?", (customer_id,)
    ).fetchone()
    return row is not None


def _find(
    conn: sqlite3.Connection, snapshot: SnapshotView | None, keys: Sequence[tuple[str, str]]
) -> tuple[str, bool] | None:
    """(customer id, is provisional) of the first key someone owns: live links first."""
    for key in keys:
        live = _live_lookup(conn, key)
        if live is not None:
            customer_id, provisional = live
            survivor = current_customer_id(snapshot, customer_id)
            if provisional and (survivor != customer_id or _is_customer(snapshot, customer_id)):
                # a batch run reconciled it: kept as a customer id, or merged into one
                return survivor, False
            return survivor, provisional
        known = _snapshot_lookup(snapshot, key)
        if known is not None:
            return known, False
    return None


def resolve_event(
    conn: sqlite3.Connection,
    snapshot: SnapshotView | None,
    normalizer: Normalizer,
    types: IdentifierTypes,
    event: LoggedEvent,
    at: int,
    move: MoveFn,
) -> Resolution | None:
    """Resolve and link one event in the caller's transaction; None for catalog events and
    events with no usable identifier.

    The person is the first KNOWN owner of a strong identifier, else of the anonymous id, else
    the first provisional owner (strong first), else a new provisional id. Provisional owners
    of the event's other identifiers are the same person: their live data moves onto it. The
    anonymous id is re-linked to the person even from another known customer (a shared device
    signed in by someone else); a strong identifier a known other customer owns is left to
    the batch's identity rules (a typo'd or shared email must not move a person's profile).
    """
    if event.kind in CATALOG_KINDS:
        return None
    strong, anon = event_identifiers(event, normalizer, types)
    keys = [*strong, *([anon] if anon is not None else [])]
    if not keys:
        return None
    owners = {key: _find(conn, snapshot, [key]) for key in keys}
    known = [owner for owner in owners.values() if owner is not None and not owner[1]]
    provisional_owners = [owner for owner in owners.values() if owner is not None and owner[1]]
    if known:
        found = known[0]
    elif provisional_owners:
        found = provisional_owners[0]
    else:
        found = (provisional_id(*keys[0]), True)
    customer_id, provisional = found
    moved: list[str] = []
    for key, owner in owners.items():
        if owner is not None and owner[0] != customer_id:
            if owner[1]:
                if owner[0] not in moved:
                    # a provisional person whose identifier this event ties to the person found
                    move(conn, owner[0], customer_id, provisional, at)
                    moved.append(owner[0])
            elif key != anon:
                continue  # a known other customer's email, phone or account: not re-linked
        _link(conn, snapshot, key, customer_id, provisional, at)
    return Resolution(customer_id=customer_id, is_provisional=provisional, moved_from=tuple(moved))


def _link(
    conn: sqlite3.Connection,
    snapshot: SnapshotView | None,
    key: tuple[str, str],
    customer_id: str,
    provisional: bool,
    at: int,
) -> None:
    """Record identifier -> customer unless the live links or the snapshot say so already."""
    live = _live_lookup(conn, key)
    if live is not None and live == (customer_id, provisional):
        return
    if live is None and not provisional and _snapshot_lookup(snapshot, key) == customer_id:
        return
    conn.execute(
        "insert into live_identities (identifier_type, identifier_value, customer_id, "
        "is_provisional, linked_at) values (?, ?, ?, ?, ?) "
        "on conflict (identifier_type, identifier_value) do update set "
        "customer_id = excluded.customer_id, is_provisional = excluded.is_provisional, "
        "linked_at = excluded.linked_at",
        (key[0], key[1], customer_id, int(provisional), at),
    )


def record_alias(
    conn: sqlite3.Connection, alias_id: str, customer_id: str, provisional: bool, at: int
) -> None:
    """A provisional id now belongs to ``customer_id``: re-point its identifiers and aliases."""
    conn.execute(
        "update live_identities set customer_id = ?, is_provisional = ?, linked_at = ? "
        "where customer_id = ?",
        (customer_id, int(provisional), at, alias_id),
    )
    conn.execute(
        "update live_aliases set customer_id = ? where customer_id = ?", (customer_id, alias_id)
    )
    conn.execute(
        "insert into live_aliases (alias_customer_id, customer_id, linked_at) values (?, ?, ?) "
        "on conflict (alias_customer_id) do update set customer_id = excluded.customer_id",
        (alias_id, customer_id, at),
    )
