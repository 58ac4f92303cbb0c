"""Erasure from the real-time stores: the event log, the processor's state and outbox, and the
real-time exports in the lake (:class:`EventsEraser`, store name ``events``).

Who is the person here: every event, row or line whose identifiers (normalized as identity
does, then keyed-hashed) are in the person's :class:`~privacy.suppression.Suppression`, plus
what the live path tied to them. The state is read first: customer ids in it that the list
names (``customer_id`` entries: the survivor, aliases, provisional ids), the owners of live
identity links the list names, and their ``live_aliases`` both ways. The identifiers the live
path linked to those ids (a cookie seen at sign-in) and the ids themselves are the person too:
:meth:`EventsEraser.related` hands them to the list, so a replay of that cookie's events is
dropped at intake as well.

What happens, store by store:

- ``events/log.sqlite``: the person's events (by identifier, by an ``order_id`` in
  ``properties``, or because the processor attributed them to one of the person's ids in
  ``live_events``) and kept failed events whose raw body names one of their identifiers are
  deleted, in short transactions under the log writer's lock (intake waits at most one chunk).
  The newest row of each table is never deleted (SQLite would give its number to the next
  row, and readers past it would skip that event): it is emptied instead (no identifiers, body
  ``{}``; a failed event's body cleared);
- ``events/state.sqlite``: live profile, counters, views, cart, recent events, identity links,
  aliases, timers, trigger firings, segment members and poison events of the person are
  deleted in one transaction; outbox messages are pseudonymized (customer id ->
  ``erased:<16 hex>``, payload ``{}``), so delivery counts survive, and a pending one is
  dead-lettered with reason ``erased`` (never sent, with or without its payload);
- ``lake/_realtime/failed_events/*.parquet`` and ``provisional_customers.parquet``: rewritten
  without the matching rows (write, fsync, atomic replace; a file left empty is removed).

SQLite keeps deleted bytes in free pages and in the WAL: the erasing connections set
``secure_delete`` (freed content is zeroed), then VACUUM and truncate the WAL. Idempotent: a
second erase finds nothing and writes nothing. Nothing personal is logged or returned: counts
and file names only.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from events.config import IdentifierTypes
from events.fold import FAILED_DIR, PROVISIONAL_NAME, realtime_dir
from events.outbox import DEAD, ERASED_ERROR, PENDING, transaction
from events.processor import log_path
from events.resolve import event_identifiers
from events.state import now_micros, state_path
from events.types import CATALOG_KINDS, NewEvent
from privacy.keys import parse_hash
from privacy.retention import (
    DELETE_CHUNK,
    _connect,
    _flock,
    _has_table,
    _no_lock,
    _shrink,
    _write_table_atomic,
)
from privacy.stores import EraseOutcome, ScanOutcome
from privacy.suppression import (
    CUSTOMER_ID_TYPE,
    ORDER_ID_TYPE,
    PSEUDONYM_HEX,
    PSEUDONYM_PREFIX,
    Normalize,
    Suppression,
)

logger = logging.getLogger(__name__)

#: The reason an outbox message of an erased person was dead-lettered with.
ERASED_REASON: Final[str] = ERASED_ERROR
#: Events read from the log per query.
LOG_PAGE: Final[int] = 5_000
#: Ids per ``in (...)`` list of one statement (below SQLite's variable limit).
_IN_CHUNK: Final[int] = 500

#: State tables keyed by one customer id column, deleted for the person's ids.
CUSTOMER_TABLES: Final[tuple[str, ...]] = (
    "live_profiles",
    "live_counters",
    "live_product_views",
    "live_cart",
    "live_events",
    "timers",
    "trigger_firings",
    "segment_members",
)


def _fallback_pseudonym(person: Suppression, customer_id: str) -> str:
    """A pseudonym for an id the live state tied to the person but the list does not hold
    (a provisional id seen after the request was made): under the current key."""
    digest = parse_hash(person.keyring.hash(CUSTOMER_ID_TYPE, customer_id)).digest
    return PSEUDONYM_PREFIX + digest.hex()[:PSEUDONYM_HEX]


class _Normalizer:
    """``normalize`` in the shape ``events.resolve.event_identifiers`` calls (``identifier``),
    memoized: a log repeats the same values many times."""

    def __init__(self, normalize: Normalize, size: int = 200_000) -> None:
        self.normalize = normalize
        self.size = size
        self.memo: dict[tuple[str, str], Any] = {}

    def identifier(self, identifier_type: str, raw: Any) -> Any:
        key = (identifier_type, str(raw))
        found = self.memo.get(key)
        if found is None:
            found = self.normalize(identifier_type, raw)
            if len(self.memo) >= self.size:
                self.memo.clear()
            self.memo[key] = found
        return found


@dataclass(frozen=True, slots=True)
class _Carried:
    """The identifier fields of a logged event: what ``event_identifiers`` reads."""

    user_id: str | None
    anonymous_id: str | None
    identifiers: Mapping[str, str]


def _keys(
    carried: Any, order: Any, normalizer: Any, types: IdentifierTypes
) -> list[tuple[str, str]]:
    strong, anon = event_identifiers(carried, normalizer, types)
    keys = [*strong, *([anon] if anon is not None else [])]
    if isinstance(order, str | int) and not isinstance(order, bool) and str(order).strip():
        keys.append((ORDER_ID_TYPE, str(order).strip()))
    return keys


def event_keys(event: NewEvent, normalizer: Any, types: IdentifierTypes) -> list[tuple[str, str]]:
    """(type, normalized value) of every identifier an event carries, its order id
    (``properties.order_id``) included; none for catalog events.

    ``normalizer`` has identity's ``Normalizer.identifier`` method.
    """
    if event.kind in CATALOG_KINDS:
        return []
    properties = event.body.get("properties") if isinstance(event.body, Mapping) else None
    order = properties.get("order_id") if isinstance(properties, Mapping) else None
    return _keys(event, order, normalizer, types)


def event_suppressed(
    event: NewEvent, suppression: Suppression, normalizer: Any, types: IdentifierTypes
) -> bool:
    """Whether one of the event's identifiers is in the list (False at once for an empty
    list: no normalizing, no hashing)."""
    if not suppression:
        return False
    return any(
        suppression.matches(kind, value) for kind, value in event_keys(event, normalizer, types)
    )


def suppression_filter(
    current: Callable[[], Suppression],
    normalizer: Callable[[], Any],
    types: IdentifierTypes,
) -> Callable[[NewEvent], bool]:
    """The stream processor's ``suppressed`` hook: the list as it is now (``current()``, e.g.
    ``SuppressionCache.get``) and the serving snapshot's normalizer (``normalizer()``)."""

    def suppressed(event: NewEvent) -> bool:
        listed = current()
        if not listed:
            return False
        return event_suppressed(event, listed, normalizer(), types)

    return suppressed


# --- what the state ties to the person --------------------------------------------------------


@dataclass
class _Person:
    """The person as the live path knows them: customer ids, linked identifiers, log offsets."""

    ids: set[str] = field(default_factory=set)
    #: identifiers live_identities links to those ids (not necessarily in the list yet)
    linked: set[tuple[str, str]] = field(default_factory=set)
    #: log offsets the processor attributed to those ids (live_events)
    offsets: set[int] = field(default_factory=set)


def _chunks(values: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _customer_columns(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(table, column) of every customer id column the state holds."""
    found = [(t, "customer_id") for t in CUSTOMER_TABLES if _has_table(conn, t)]
    if _has_table(conn, "live_identities"):
        found.append(("live_identities", "customer_id"))
    if _has_table(conn, "live_aliases"):
        found += [("live_aliases", "customer_id"), ("live_aliases", "alias_customer_id")]
    if _has_table(conn, "outbox"):
        found.append(("outbox", "customer_id"))
    return found


def _state_person(conn: sqlite3.Connection, person: Suppression) -> _Person:
    """The customer ids, linked identifiers and attributed offsets of ``person`` in the state."""
    found = _Person()
    if CUSTOMER_ID_TYPE in person.types:
        for table, column in _customer_columns(conn):
            for (value,) in conn.execute(f"select distinct {column} from {table}"):
                if value and person.matches(CUSTOMER_ID_TYPE, str(value)):
                    found.ids.add(str(value))
    if _has_table(conn, "live_identities"):
        for kind, value, owner in conn.execute(
            "select identifier_type, identifier_value, customer_id from live_identities"
        ):
            if person.matches(str(kind), str(value)):
                found.ids.add(str(owner))
    if _has_table(conn, "live_aliases") and found.ids:
        frontier = sorted(found.ids)
        while frontier:
            step: list[str] = []
            for part in _chunks(frontier):
                marks = _marks(len(part))
                for pair in conn.execute(
                    f"select alias_customer_id, customer_id from live_aliases "
                    f"where alias_customer_id in ({marks}) or customer_id in ({marks})",
                    [*part, *part],
                ):
                    for value in map(str, pair):
                        if value not in found.ids:
                            found.ids.add(value)
                            step.append(value)
            frontier = step
    ids = sorted(found.ids)
    for part in _chunks(ids):
        marks = _marks(len(part))
        if _has_table(conn, "live_identities"):
            found.linked.update(
                (str(k), str(v))
                for k, v in conn.execute(
                    f"select identifier_type, identifier_value from live_identities "
                    f"where customer_id in ({marks})",
                    list(part),
                )
            )
        if _has_table(conn, "live_events"):
            found.offsets.update(
                int(o)
                for (o,) in conn.execute(
                    f"select offset from live_events where customer_id in ({marks})", list(part)
                )
            )
    return found


# --- the event log ---------------------------------------------------------------------------


@dataclass
class _LogMatches:
    events: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


#: The identifier columns of the log's events, and the order id out of the body.
_READ_CARRIED: Final[str] = (
    "select offset, kind, anonymous_id, user_id, identifiers, "
    "case when json_valid(body) then json_extract(body, '$.properties.order_id') end "
    "from events where offset > ? order by offset limit ?"
)
#: Distinct identifier sets whose decision is remembered during one scan of the log.
_DECIDED_MAX: Final[int] = 500_000


class EventsEraser:
    """The real-time stores of one CDP_HOME (see the module docstring)."""

    name = "events"

    def __init__(
        self, home: Path, normalize: Normalize, identifier_types: IdentifierTypes | None = None
    ) -> None:
        self.home = Path(home)
        self.normalize = normalize
        self.types = identifier_types or IdentifierTypes()

    # -- paths --------------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        """``events/log.sqlite``."""
        return log_path(self.home)

    @property
    def state_path(self) -> Path:
        """``events/state.sqlite``."""
        return state_path(self.home)

    @property
    def lake_dir(self) -> Path:
        """``lake/_realtime``."""
        return realtime_dir(self.home / "lake")

    def _absent(self) -> bool:
        return not (self.log_path.is_file() or self.state_path.is_file() or self.lake_dir.is_dir())

    # -- the person ---------------------------------------------------------------------------

    def _state(self, person: Suppression) -> _Person:
        if not person or not self.state_path.is_file():
            return _Person()
        conn = _connect(self.state_path)
        try:
            return _state_person(conn, person)
        finally:
            conn.close()

    def related(self, person: Suppression) -> dict[str, str]:
        """The live path's ids of the person and the identifiers it linked to them (a cookie
        seen at sign-in), as ``{hash: type}``: listed, so replays of them are dropped too."""
        state = self._state(person)
        keyring = person.keyring
        found = {keyring.hash(CUSTOMER_ID_TYPE, cid): CUSTOMER_ID_TYPE for cid in state.ids}
        found.update({keyring.hash(kind, value): kind for kind, value in state.linked})
        return {h: t for h, t in found.items() if h not in person.hashes}

    def _log_matches(self, person: Suppression, state: _Person) -> _LogMatches:
        """Offsets of the person's events and ids of failed events naming them.

        Reads only the identifier columns (and the order id out of the body) with a read-only
        connection, and decides once per distinct set of identifiers: a cookie's many events
        cost one normalization and one hash. 100,000 events: about 1 s.
        """
        matches = _LogMatches()
        if not self.log_path.is_file():
            return matches
        normalizer = _Normalizer(self.normalize)
        decided: dict[tuple[Any, ...], bool] = {}
        uri = f"{self.log_path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30.0)
        try:
            if not _has_table(conn, "events"):
                return matches
            after = 0
            while True:
                rows = conn.execute(_READ_CARRIED, (after, LOG_PAGE)).fetchall()
                if not rows:
                    break
                for offset, kind, anonymous_id, user_id, identifiers, order in rows:
                    if offset in state.offsets:
                        matches.events.append(int(offset))
                        continue
                    if kind in CATALOG_KINDS:
                        continue
                    key = (anonymous_id, user_id, identifiers, order)
                    hit = decided.get(key)
                    if hit is None:
                        carried = _Carried(user_id, anonymous_id, orjson.loads(identifiers))
                        hit = any(
                            found in state.linked or person.matches(*found)
                            for found in _keys(carried, order, normalizer, self.types)
                        )
                        if len(decided) < _DECIDED_MAX:
                            decided[key] = hit
                    if hit:
                        matches.events.append(int(offset))
                after = int(rows[-1][0])
            last = 0
            while person and _has_table(conn, "failed_events"):
                batch = conn.execute(
                    "select failed_id, body from failed_events where failed_id > ? "
                    "order by failed_id limit ?",
                    (last, LOG_PAGE),
                ).fetchall()
                if not batch:
                    break
                for failed_id, body in batch:
                    text = bytes(body or b"").decode("utf-8", errors="replace")
                    if person.text_matches(text, self.normalize):
                        matches.failed.append(int(failed_id))
                last = int(batch[-1][0])
        finally:
            conn.close()
        return matches

    def _erase_log(self, matches: _LogMatches, notes: list[str]) -> dict[str, int]:
        """Delete (the newest row: empty) the matched events and failed events."""
        removed = {"log.events": 0, "log.failed_events": 0}
        if not matches.events and not matches.failed:
            return removed
        lock_path = self.log_path.with_name(self.log_path.name + ".writer-lock")

        def lock() -> contextlib.AbstractContextManager[None]:
            return _flock(lock_path)

        conn = _connect(self.log_path)
        try:
            conn.execute("pragma journal_mode = wal")
            conn.execute("pragma secure_delete = on")
            plans = (
                ("events", "offset", matches.events, "log.events", _EMPTY_EVENT),
                ("failed_events", "failed_id", matches.failed, "log.failed_events", _EMPTY_FAILED),
            )
            for table, key, wanted, label, empty in plans:
                if not wanted:
                    continue
                newest = int(
                    conn.execute(f"select coalesce(max({key}), 0) from {table}").fetchone()[0]
                )
                doomed = sorted(v for v in wanted if v != newest)
                for part in _chunks(doomed, DELETE_CHUNK):
                    with lock(), transaction(conn):
                        for small in _chunks(part):
                            removed[label] += conn.execute(
                                f"delete from {table} where {key} in ({_marks(len(small))})",
                                list(small),
                            ).rowcount
                if newest in wanted:
                    with lock():
                        removed[label] += conn.execute(
                            f"update {table} set {empty} where {key} = ?", (newest,)
                        ).rowcount
            _scrub(conn, lock, self.log_path, notes)
        finally:
            conn.close()
        return removed

    # -- the state ----------------------------------------------------------------------------

    def _dead_matches(
        self,
        conn: sqlite3.Connection,
        person: Suppression,
        state: _Person,
        offsets: Collection[int],
    ) -> list[int]:
        """Poison events of the person: at one of their offsets, or naming them."""
        if not _has_table(conn, "dead_events"):
            return []
        found: list[int] = []
        for offset, text in conn.execute("select offset, event from dead_events"):
            if offset in offsets or offset in state.offsets:
                found.append(int(offset))
                continue
            if person.text_matches(str(text), self.normalize) or _names_linked(text, state):
                found.append(int(offset))
        return found

    def _identity_matches(
        self, conn: sqlite3.Connection, person: Suppression, state: _Person
    ) -> list[tuple[str, str]]:
        """Live identity links of the person: owned by their ids, or of a listed identifier."""
        if not _has_table(conn, "live_identities"):
            return []
        found: list[tuple[str, str]] = []
        for kind, value, owner in conn.execute(
            "select identifier_type, identifier_value, customer_id from live_identities"
        ):
            if str(owner) in state.ids or person.matches(str(kind), str(value)):
                found.append((str(kind), str(value)))
        return found

    def _erase_state(
        self, person: Suppression, state: _Person, offsets: Collection[int], notes: list[str]
    ) -> dict[str, int]:
        removed: dict[str, int] = {}
        conn = _connect(self.state_path)
        try:
            conn.execute("pragma secure_delete = on")
            dead = self._dead_matches(conn, person, state, offsets)
            links = self._identity_matches(conn, person, state)
            ids = sorted(state.ids)
            if not ids and not dead and not links:
                return removed
            with transaction(conn):
                for part in _chunks(ids):
                    marks = _marks(len(part))
                    for table in CUSTOMER_TABLES:
                        if _has_table(conn, table):
                            count = conn.execute(
                                f"delete from {table} where customer_id in ({marks})", list(part)
                            ).rowcount
                            _add(removed, f"state.{table}", count)
                    if _has_table(conn, "live_aliases"):
                        count = conn.execute(
                            f"delete from live_aliases where customer_id in ({marks}) "
                            f"or alias_customer_id in ({marks})",
                            [*part, *part],
                        ).rowcount
                        _add(removed, "state.live_aliases", count)
                    if _has_table(conn, "outbox"):
                        _add(
                            removed, "state.outbox_pseudonymized", _pseudonymize(conn, part, person)
                        )
                for kind, value in links:
                    count = conn.execute(
                        "delete from live_identities where identifier_type = ? "
                        "and identifier_value = ?",
                        (kind, value),
                    ).rowcount
                    _add(removed, "state.live_identities", count)
                for part in _chunks(dead):
                    count = conn.execute(
                        f"delete from dead_events where offset in ({_marks(len(part))})",
                        list(part),
                    ).rowcount
                    _add(removed, "state.dead_events", count)
            if any(removed.values()):
                _scrub(conn, _no_lock, self.state_path, notes)
        finally:
            conn.close()
        return {k: v for k, v in removed.items() if v}

    # -- the lake -----------------------------------------------------------------------------

    def _lake_files(self) -> list[Path]:
        folder = self.lake_dir / FAILED_DIR
        files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
        provisional = self.lake_dir / PROVISIONAL_NAME
        if provisional.is_file():
            files.append(provisional)
        return files

    def _lake_mask(self, path: Path, table: pa.Table, person: Suppression, state: _Person) -> Any:
        """Rows of one real-time lake file that belong to the person."""
        if path.name == PROVISIONAL_NAME:
            keep: list[bool] = []
            for kind, value, owner in zip(
                table["identifier_type"].to_pylist(),
                table["identifier_value"].to_pylist(),
                table["customer_id"].to_pylist(),
                strict=True,
            ):
                keep.append(
                    str(owner) in state.ids
                    or person.matches(CUSTOMER_ID_TYPE, str(owner))
                    or (str(kind), str(value)) in state.linked
                    or person.matches(str(kind), str(value))
                )
            return pa.array(keep, pa.bool_())
        bodies = table["body"].to_pylist() if "body" in table.column_names else []
        return pa.array(
            [
                body is not None
                and person.text_matches(
                    bytes(body).decode("utf-8", errors="replace"), self.normalize
                )
                > 0
                for body in bodies
            ],
            pa.bool_(),
        )

    def _erase_lake(self, person: Suppression, state: _Person) -> tuple[dict[str, int], list[str]]:
        removed: dict[str, int] = {}
        notes: list[str] = []
        for path in self._lake_files():
            table = pq.read_table(path)
            mask = self._lake_mask(path, table, person, state)
            count = int(pc.sum(mask).as_py() or 0)
            if not count:
                continue
            label = (
                "lake.provisional_customers"
                if path.name == PROVISIONAL_NAME
                else "lake.failed_events"
            )
            _add(removed, label, count)
            kept = table.filter(pc.invert(mask))
            if kept.num_rows == 0 and path.name != PROVISIONAL_NAME:
                path.unlink()
                notes.append(f"removed {path.relative_to(self.home)}")
            else:
                _write_table_atomic(kept, path)
                notes.append(f"rewrote {path.relative_to(self.home)}")
        return removed, notes

    # -- Eraser -------------------------------------------------------------------------------

    def erase(self, person: Suppression) -> EraseOutcome:
        """Remove the person's events, live state and real-time exports (idempotent)."""
        if self._absent():
            return EraseOutcome(absent=True)
        if not person:
            return EraseOutcome()
        state = self._state(person)  # before anything is deleted: it names their offsets
        matches = self._log_matches(person, state)
        removed: dict[str, int] = {}
        notes: list[str] = []
        removed.update({k: v for k, v in self._erase_log(matches, notes).items() if v})
        if self.state_path.is_file():
            removed.update(self._erase_state(person, state, set(matches.events), notes))
        lake, written = self._erase_lake(person, state)
        removed.update(lake)
        notes += written
        logger.info("events erasure: %s", removed or "nothing held")
        return EraseOutcome(removed=removed, notes=tuple(notes))

    def scan(self, suppression: Suppression) -> ScanOutcome:
        """Count what still matches ``suppression`` in the log, the state and the lake files."""
        if self._absent() or not suppression:
            return ScanOutcome()
        state = self._state(suppression)
        found: dict[str, int] = {}
        matches = self._log_matches(suppression, state)
        _add(found, "events/log.sqlite:events", len(matches.events))
        _add(found, "events/log.sqlite:failed_events", len(matches.failed))
        if self.state_path.is_file():
            conn = _connect(self.state_path)
            try:
                ids = sorted(state.ids)
                for part in _chunks(ids):
                    marks = _marks(len(part))
                    for table, column in _customer_columns(conn):
                        if table == "live_identities":
                            continue
                        count = conn.execute(
                            f"select count(*) from {table} where {column} in ({marks})", list(part)
                        ).fetchone()[0]
                        _add(found, f"events/state.sqlite:{table}", int(count))
                _add(
                    found,
                    "events/state.sqlite:live_identities",
                    len(self._identity_matches(conn, suppression, state)),
                )
                _add(
                    found,
                    "events/state.sqlite:dead_events",
                    len(self._dead_matches(conn, suppression, state, set(matches.events))),
                )
            finally:
                conn.close()
        for path in self._lake_files():
            mask = self._lake_mask(path, pq.read_table(path), suppression, state)
            _add(found, str(path.relative_to(self.home)), int(pc.sum(mask).as_py() or 0))
        where = tuple(sorted(f"{name}: {count}" for name, count in found.items() if count))
        return ScanOutcome(remaining=sum(found.values()), where=where)


#: What the newest row of a log table becomes instead of being deleted.
_EMPTY_EVENT: Final[str] = (
    "anonymous_id = null, user_id = null, identifiers = '{}', products = '[]', body = '{}', "
    "payload_sha256 = 'erased'"
)
_EMPTY_FAILED: Final[str] = "body = x'', message_id = null, source = null"


def _add(counts: dict[str, int], key: str, count: int) -> None:
    counts[key] = counts.get(key, 0) + int(count)


def _names_linked(text: Any, state: _Person) -> bool:
    """Whether a poison event's stored JSON carries one of the person's linked raw ids."""
    if not state.linked:
        return False
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(record, dict):
        return False
    values = {value for _kind, value in state.linked}
    return any(
        isinstance(record.get(k), str) and record[k].strip() in values
        for k in ("anonymous_id", "user_id")
    )


def _pseudonymize(conn: sqlite3.Connection, ids: Iterable[str], person: Suppression) -> int:
    """Outbox messages of ``ids``: pseudonymous id, empty payload; pending ones dead-lettered
    (``erased``), so the delivery worker never sends them. Status and attempts are kept."""
    changed = 0
    now = now_micros()
    for customer_id in ids:
        alias = person.pseudonym(customer_id) or _fallback_pseudonym(person, customer_id)
        changed += conn.execute(
            "update outbox set customer_id = ?, payload = '{}', "
            "last_error = case when status = 'delivered' then last_error else ? end, "
            "dead_at = case when status = ? then ? else dead_at end, "
            "status = case when status = ? then ? else status end "
            "where customer_id = ?",
            (alias, ERASED_REASON, PENDING, now, PENDING, DEAD, customer_id),
        ).rowcount
    return changed


def _scrub(
    conn: sqlite3.Connection,
    lock: Callable[[], contextlib.AbstractContextManager[None]],
    path: Path,
    notes: list[str],
) -> None:
    """Leave the deleted rows' bytes in neither the file nor its WAL.

    ``secure_delete`` (set on the erasing connection) has zeroed the freed cells and pages;
    retention's ``_shrink`` gives free pages back (one VACUUM the first time, which switches
    the file to incremental auto-vacuum, then a short ``incremental_vacuum``: a full VACUUM of a
    large log at every erasure would hold intake for seconds); the WAL, which still holds the
    page images from before the delete, is checkpointed and truncated. A reader in the middle
    of a long read can keep the WAL from being truncated: noted, and the next checkpoint
    overwrites it.
    """
    _shrink(conn, lock)
    busy = int(conn.execute("pragma wal_checkpoint(truncate)").fetchone()[0])
    if busy:
        notes.append(f"{path.name}: the WAL is in use by a reader and was not truncated yet")


__all__ = [
    "ERASED_REASON",
    "EventsEraser",
    "event_keys",
    "event_suppressed",
    "suppression_filter",
]
