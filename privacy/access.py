"""Access on request: everything the platform holds about one person, as one JSON document.

A person is named by a customer id (a merged, retired id works too) or by an identifier
(``email``, ``phone``, ``account_id``, ... or ``alias_customer_id``), normalized as identity
normalized the data (the serving snapshot's own ``Normalizer`` settings, as the API's lookup
does), so ``Ann@Shop.com`` finds ``ann@shop.com``. The person's ids are the snapshot's survivor,
every id merged into it (``customer_aliases``, followed both ways) and the live path's aliases
and provisional ids (``events/state.sqlite``).

What is gathered, by store:

- the serving snapshot (``serving/CURRENT``): every table with a ``customer_id`` column, rows
  of the person's ids, sorted into the categories below (a table added later lands in
  ``other_tables`` rather than being missed);
- the lake: the raw rows of each identity record (``lake/<source>/*.parquet`` by
  ``record_id``), as delivered after ingest's cleaning;
- the real-time path: events in the event log that carry one of the person's identifiers or
  that the stream processor attributed to one of their ids (``live_events``), kept failed
  events whose raw body contains one of their identifier values, the live profile, live
  identity links, trigger firings and outbox messages;
- the decision log: decisions (``DecisionStore.recent``), outcomes and consent events.

An unknown person is not an error: the document says ``"found": false`` ("nothing held").
Nothing here writes: stores that do not exist yet are reported as absent, never created
(except the decision store's schema when its file exists).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import duckdb
import orjson

from decisions.store import DecisionStore, default_store_path
from events.config import IdentifierTypes
from events.live import open_live_reader, read_live
from events.log import SqliteEventLog
from events.processor import log_path
from events.resolve import SnapshotView, event_identifiers
from events.state import state_path
from events.types import LoggedEvent
from identity import (
    IDENTIFIER_NAME_PATTERN,
    MAX_LOOKUP_LENGTH,
    IdentitySettings,
    LookupValueError,
    Normalizer,
    lookup_value,
)
from snapshots import ALIAS_IDENTIFIER_TYPE, SnapshotError, read_current, snapshot_folder

#: Format version of the export document.
EXPORT_VERSION: Final[int] = 1
#: Events read from the log per query while scanning it.
LOG_PAGE: Final[int] = 5_000
#: Most decisions exported (newest first); the decision log keeps a person's full history
#: far below this.
MAX_DECISIONS: Final[int] = 100_000

#: Snapshot tables by export category; any other table with a ``customer_id`` column goes to
#: ``other_tables`` (or to ``consents`` when its name says consent).
PROFILE_TABLES: Final[tuple[str, ...]] = (
    "customer_traits",
    "customer_segments",
    "segment_membership_history",
    "customer_recommendations",
    "customer_category_activity",
    "customer_brands_bought",
    "customer_assignment",
)
IDENTIFIER_TABLES: Final[tuple[str, ...]] = ("customer_identifiers", "identifier_lookup")
RECORD_TABLES: Final[tuple[str, ...]] = ("identity_records", "identity_evidence")
EVENT_TABLES: Final[tuple[str, ...]] = ("customer_events",)
HISTORY_TABLES: Final[tuple[str, ...]] = ("customer_id_history", "customer_aliases")

#: Step names handed to the progress callback, in order.
STEPS: Final[tuple[str, ...]] = (
    "snapshot",
    "lake records",
    "event log",
    "live state",
    "decision log",
)

Progress = Callable[[str, int, int], None]


class AccessError(ValueError):
    """The request cannot name a person (bad identifier type or value); says what to do."""


@dataclasses.dataclass(frozen=True)
class PersonRef:
    """Who is asked for: a customer id, or an identifier (type, raw value)."""

    customer_id: str | None = None
    identifier_type: str | None = None
    value: str | None = None

    def __post_init__(self) -> None:
        if (self.customer_id is None) == (self.identifier_type is None):
            raise AccessError("name the person by a customer id or by one identifier")
        if self.identifier_type is not None and self.value is None:
            raise AccessError("an identifier needs a value")

    @classmethod
    def parse_identifier(cls, text: str) -> PersonRef:
        """``TYPE:VALUE`` (the value may itself contain ``:``)."""
        kind, sep, value = text.partition(":")
        if not sep or not kind.strip() or not value.strip():
            raise AccessError(f"'{text[:80]}' is not TYPE:VALUE (e.g. account_id:ACC-1)")
        return cls(identifier_type=kind, value=value)


# --- JSON -----------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def to_json(document: Mapping[str, Any]) -> bytes:
    """The export as indented JSON (UTF-8), every value made JSON-safe."""
    return orjson.dumps(
        document,
        default=_default,
        option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS,
    )


# --- the snapshot ---------------------------------------------------------------------------


def _open_snapshot(home: Path) -> SnapshotView | None:
    serving = Path(home) / "serving"
    try:
        snapshot_id = read_current(serving)
        if snapshot_id is None:
            return None
        return SnapshotView.open(snapshot_folder(serving, snapshot_id))
    except (OSError, SnapshotError, sqlite3.Error) as exc:
        raise AccessError(f"cannot read the serving snapshot in {serving}: {exc}") from exc


def _rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Integer microseconds in ``*_at`` columns (the state and decision files) as UTC times."""
    for row in rows:
        for column, value in row.items():
            if column.endswith("_at") and isinstance(value, int):
                row[column] = datetime.fromtimestamp(value / 1e6, UTC)
    return rows


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def normalize_identifier(
    normalizer: Normalizer, identifier_type: str, value: str
) -> tuple[str, str]:
    """(type, normalized value) as identity normalizes it; AccessError for unusable input."""
    kind = identifier_type.strip().lower()
    if not IDENTIFIER_NAME_PATTERN.match(kind):
        raise AccessError(
            f"'{identifier_type[:64]}' is not an identifier type (lowercase letters, digits and "
            "underscores, e.g. email, phone, account_id)"
        )
    try:
        checked = lookup_value(None if kind == ALIAS_IDENTIFIER_TYPE else normalizer, kind, value)
    except LookupValueError as exc:
        raise AccessError(str(exc)) from exc
    return kind, checked


def _alias_closure(snapshot: SnapshotView | None, start: Iterable[str]) -> list[str]:
    """The ids merged into or out of ``start`` in the snapshot, followed both ways."""
    ids = list(dict.fromkeys(start))
    if snapshot is None or not snapshot.has_table("customer_aliases") or not ids:
        return ids
    seen = set(ids)
    frontier = list(ids)
    while frontier:
        marks = _marks(len(frontier))
        rows = snapshot.conn.execute(
            f"select alias_customer_id, customer_id from customer_aliases "
            f"where alias_customer_id in ({marks}) or customer_id in ({marks})",
            [*frontier, *frontier],
        ).fetchall()
        frontier = []
        for alias, target in rows:
            for found in (str(alias), str(target)):
                if found not in seen:
                    seen.add(found)
                    ids.append(found)
                    frontier.append(found)
    return ids


def _survivor(snapshot: SnapshotView | None, ids: Sequence[str]) -> str | None:
    """The id the snapshot serves the person under (the one with a customers row)."""
    if snapshot is None or not snapshot.has_table("customers") or not ids:
        return None
    row = snapshot.conn.execute(
        f"select customer_id from customers where customer_id in ({_marks(len(ids))}) "
        "order by customer_id limit 1",
        list(ids),
    ).fetchone()
    return str(row[0]) if row else None


def _customer_tables(snapshot: SnapshotView) -> list[str]:
    return sorted(
        name
        for name, columns in snapshot.manifest.columns.items()
        if "customer_id" in columns and snapshot.has_table(name)
    )


def _snapshot_rows(snapshot: SnapshotView, ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Rows of every customer table naming one of ``ids``."""
    marks = _marks(len(ids))
    found: dict[str, list[dict[str, Any]]] = {}
    for table in _customer_tables(snapshot):
        columns = snapshot.manifest.columns[table]
        where = [f"customer_id in ({marks})"]
        params: list[Any] = list(ids)
        for other in ("related_customer_id", "alias_customer_id"):
            if other in columns:
                where.append(f"{other} in ({marks})")
                params += list(ids)
        rows = _rows(snapshot.conn, f"select * from {table} where {' or '.join(where)}", params)
        if rows:
            found[table] = rows
    return found


# --- the lake -------------------------------------------------------------------------------


def lake_rows(home: Path, records: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Raw lake rows of identity records, by record uid (``lake/<source>/*.parquet``)."""
    by_source: dict[str, dict[str, str]] = {}
    for record in records:
        source, record_id = record.get("source"), record.get("record_id")
        if source and record_id is not None:
            by_source.setdefault(str(source), {})[str(record_id)] = str(record["record_uid"])
    found: dict[str, list[dict[str, Any]]] = {}
    con = duckdb.connect()
    try:
        for source, uids in sorted(by_source.items()):
            folder = Path(home) / "lake" / source
            files = sorted(str(p) for p in folder.glob("*.parquet")) if folder.is_dir() else []
            if not files:
                continue
            con.register("wanted", _wanted_frame(uids))
            # in file order then row order: a record's versions in the order they arrived
            result = con.execute(
                "select l.* from read_parquet(?, union_by_name = true, filename = true, "
                "file_row_number = true) l join wanted w on l.record_id = w.record_id "
                "order by l.filename, l.file_row_number",
                [files],
            )
            names = [d[0] for d in result.description]
            for row in result.fetchall():
                values = dict(zip(names, row, strict=True))
                values.pop("file_row_number", None)
                values["lake_file"] = str(Path(values.pop("filename")).relative_to(home))
                found.setdefault(uids[str(values["record_id"])], []).append(values)
            con.unregister("wanted")
    finally:
        con.close()
    return found


def _wanted_frame(uids: Mapping[str, str]) -> Any:
    import pyarrow as pa

    return pa.table({"record_id": pa.array(list(uids), pa.string())})


# --- the real-time path ---------------------------------------------------------------------


class _CachedNormalizer:
    """Identity's normalizer with a memo: a log repeats the same values many times (phone
    parsing costs tens of microseconds a value)."""

    def __init__(self, normalizer: Normalizer, size: int = 200_000) -> None:
        self.normalizer = normalizer
        self.size = size
        self.memo: dict[tuple[str, str], Any] = {}

    def identifier(self, identifier_type: str, raw: Any) -> Any:
        key = (identifier_type, str(raw))
        result = self.memo.get(key)
        if result is None:
            result = self.normalizer.identifier(identifier_type, raw)
            if len(self.memo) >= self.size:
                self.memo.clear()
            self.memo[key] = result
        return result


def _event_dict(event: LoggedEvent, matched: Sequence[str]) -> dict[str, Any]:
    record = dataclasses.asdict(event)
    record["matched_by"] = list(matched)
    return record


def _scan_log(
    home: Path,
    keys: set[tuple[str, str]],
    offsets: set[int],
    normalizer: Normalizer,
    types: IdentifierTypes,
    on_page: Callable[[int, int], None],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(events, failed events) of the person in the event log."""
    path = log_path(home)
    if not path.is_file():
        return [], []
    cached = _CachedNormalizer(normalizer)
    events: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    values = {value.lower() for _, value in keys if len(value) >= 4}
    with SqliteEventLog(path) as log:
        head = log.head()
        after = 0
        while True:
            page = log.read(after, LOG_PAGE)
            if not page:
                break
            for event in page:
                strong, anon = event_identifiers(event, cached, types)  # type: ignore[arg-type]
                carried = [*strong, *([anon] if anon is not None else [])]
                matched = [f"{kind}:{value}" for kind, value in carried if (kind, value) in keys]
                if event.offset in offsets:
                    matched.append("live_events")
                if matched:
                    events.append(_event_dict(event, matched))
            after = page[-1].offset
            on_page(after, head)
        last = 0
        while values:
            batch = log.failed(limit=LOG_PAGE, after_id=last)
            if not batch:
                break
            for record in batch:
                text = record.body.decode("utf-8", errors="replace").lower()
                if any(value in text for value in values):
                    failed.append(
                        {
                            "failed_id": record.failed_id,
                            "received_at": record.received_at,
                            "source": record.source,
                            "reason": record.reason,
                            "detail": record.detail,
                            "message_id": record.message_id,
                            "body": record.body,
                            "matched_by": "identifier value in the raw body",
                        }
                    )
            last = batch[-1].failed_id
    return events, failed


def _state_reader(home: Path) -> sqlite3.Connection | None:
    try:
        return open_live_reader(state_path(home))
    except FileNotFoundError:
        return None


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "select 1 from sqlite_master where type = 'table' and name = ?", (name,)
    ).fetchone()
    return row is not None


def _live_ids(
    conn: sqlite3.Connection, keys: Collection[tuple[str, str]], ids: Collection[str]
) -> list[str]:
    """Customer ids the live path links to the keys or to ``ids`` (aliases both ways)."""
    found = list(ids)
    for kind, value in keys:
        row = conn.execute(
            "select customer_id from live_identities where identifier_type = ? "
            "and identifier_value = ?",
            (kind, value),
        ).fetchone()
        if row is not None:
            found.append(str(row[0]))
    frontier = list(dict.fromkeys(found))
    seen = set(frontier)
    while frontier:
        marks = _marks(len(frontier))
        rows = conn.execute(
            f"select alias_customer_id, customer_id from live_aliases "
            f"where alias_customer_id in ({marks}) or customer_id in ({marks})",
            [*frontier, *frontier],
        ).fetchall()
        frontier = []
        for pair in rows:
            for value in map(str, pair):
                if value not in seen:
                    seen.add(value)
                    found.append(value)
                    frontier.append(value)
    return list(dict.fromkeys(found))


def _live_state(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, Any]:
    marks = _marks(len(ids))
    held: dict[str, Any] = {}
    profile = read_live(conn, ids, recent_products=1_000, recent_events=10_000)
    held["live_profile"] = dataclasses.asdict(profile) if profile is not None else None
    queries = {
        "live_identities": "select * from live_identities where customer_id in ({m})",
        "live_aliases": "select * from live_aliases where customer_id in ({m}) "
        "or alias_customer_id in ({m2})",
        "live_cart": "select * from live_cart where customer_id in ({m})",
        "timers": "select * from timers where customer_id in ({m})",
        "trigger_firings": "select * from trigger_firings where customer_id in ({m})",
        "outbox": "select * from outbox where customer_id in ({m})",
    }
    for name, sql in queries.items():
        if not _has_table(conn, name):
            continue
        params = [*ids, *ids] if "{m2}" in sql else list(ids)
        held[name] = _times(_rows(conn, sql.format(m=marks, m2=marks), params))
    for message in held.get("outbox", []):
        message["payload"] = orjson.loads(message["payload"])
    return held


def _live_offsets(conn: sqlite3.Connection, ids: Sequence[str]) -> set[int]:
    if not _has_table(conn, "live_events"):
        return set()
    rows = conn.execute(
        f"select offset from live_events where customer_id in ({_marks(len(ids))})", list(ids)
    ).fetchall()
    return {int(r[0]) for r in rows}


# --- the decision log -----------------------------------------------------------------------


def _decision_log(home: Path, ids: Sequence[str]) -> dict[str, Any] | None:
    path = default_store_path(home)
    if not path.is_file() or not ids:
        return None
    marks = _marks(len(ids))
    with DecisionStore.open(path) as store:
        decisions = [dataclasses.asdict(d) for d in store.recent(ids, MAX_DECISIONS)]
        conn = store.conn
        outcomes = _times(
            _rows(
                conn,
                f"select * from outcomes where customer_id in ({marks}) order by occurred_at",
                list(ids),
            )
        )
        consents = _rows(
            conn,
            f"select * from consent_events where customer_id in ({marks}) "
            "order by changed_at, consent_id",
            list(ids),
        )
    for row in _times(consents):
        row["is_granted"] = bool(row["is_granted"])
    return {"decisions": decisions, "outcomes": outcomes, "consent_events": consents}


# --- the export -----------------------------------------------------------------------------


def _consent_columns(golden: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in golden.items() if k.startswith("has_") and "consent" in k}


def export_person(
    home: Path,
    person: PersonRef,
    *,
    identifier_types: IdentifierTypes | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Everything held about ``person`` under ``home`` (CDP_HOME), as a JSON-ready document.

    ``found`` is False and every category empty when nothing is held. AccessError when the
    request cannot name anyone (an unknown identifier type's spelling, an invalid value).
    """
    home = Path(home)
    types = identifier_types or IdentifierTypes()
    report = progress or (lambda _step, _done, _total: None)
    snapshot = _open_snapshot(home)
    try:
        normalizer = snapshot.normalizer if snapshot is not None else Normalizer(IdentitySettings())
        keys: set[tuple[str, str]] = set()
        asked: dict[str, Any]
        start: list[str] = []
        if person.customer_id is not None:
            customer = person.customer_id.strip()
            if not customer or len(customer) > MAX_LOOKUP_LENGTH:
                raise AccessError("the customer id is empty or too long")
            asked = {"customer_id": customer}
            start.append(customer)
        else:
            assert person.identifier_type is not None and person.value is not None
            kind, value = normalize_identifier(normalizer, person.identifier_type, person.value)
            asked = {"identifier_type": kind, "normalized_value": value}
            if kind == ALIAS_IDENTIFIER_TYPE:
                start.append(value)
            else:
                keys.add((kind, value))
                if snapshot is not None and snapshot.has_table("identifier_lookup"):
                    row = snapshot.conn.execute(
                        "select customer_id from identifier_lookup where identifier_type = ? "
                        "and identifier_value = ?",
                        (kind, value),
                    ).fetchone()
                    if row is not None:
                        start.append(str(row[0]))

        # who: snapshot ids, then live ids, then the snapshot's aliases of the live ids
        report("snapshot", 0, 1)
        state = _state_reader(home)
        try:
            ids = _alias_closure(snapshot, start)
            if state is not None:
                ids = _alias_closure(snapshot, _live_ids(state, keys, ids))
            tables = _snapshot_rows(snapshot, ids) if snapshot is not None and ids else {}
            for row in tables.get("customer_identifiers", []):
                keys.add((str(row["identifier_type"]), str(row["identifier_value"])))
            if state is not None and ids and _has_table(state, "live_identities"):
                for kind, value in state.execute(
                    f"select identifier_type, identifier_value from live_identities "
                    f"where customer_id in ({_marks(len(ids))})",
                    ids,
                ).fetchall():
                    keys.add((str(kind), str(value)))
            report("snapshot", 1, 1)

            records = tables.get("identity_records", [])
            report("lake records", 0, len(records))
            raw = lake_rows(home, records) if records else {}
            for record in records:
                record["lake_rows"] = raw.get(str(record["record_uid"]), [])
            report("lake records", len(records), len(records))

            live: dict[str, Any] = {}
            offsets: set[int] = set()
            report("live state", 0, 1)
            if state is not None and ids:
                live = _live_state(state, ids)
                offsets = _live_offsets(state, ids)
            report("live state", 1, 1)
        finally:
            if state is not None:
                state.close()

        log_events, failed = _scan_log(
            home,
            keys,
            offsets,
            normalizer,
            types,
            lambda done, total: report("event log", done, total),
        )
        report("decision log", 0, 1)
        decision_log = _decision_log(home, ids) if ids else None
        report("decision log", 1, 1)
    finally:
        if snapshot is not None:
            snapshot.close()

    golden = tables.pop("customers", [])
    profile = {name: tables.pop(name) for name in PROFILE_TABLES if name in tables}
    identifiers = {name: tables.pop(name) for name in IDENTIFIER_TABLES if name in tables}
    evidence = tables.pop("identity_evidence", [])
    tables.pop("identity_records", None)
    snapshot_events = tables.pop("customer_events", [])
    history = {name: tables.pop(name) for name in HISTORY_TABLES if name in tables}
    consent_tables = {name: tables.pop(name) for name in list(tables) if "consent" in name}
    live_identities = live.pop("live_identities", [])
    live_aliases = live.pop("live_aliases", [])
    outbox = live.pop("outbox", [])
    firings = live.pop("trigger_firings", [])
    decisions = decision_log or {"decisions": [], "outcomes": [], "consent_events": []}

    document: dict[str, Any] = {
        "export_version": EXPORT_VERSION,
        "exported_at": now or datetime.now(UTC),
        "asked": asked,
        "customer_ids": ids,
        "snapshot_id": snapshot.id if snapshot is not None else None,
        "profile": {"golden_record": golden[0] if golden else None, **profile},
        "identifiers": {
            **identifiers,
            "live_identities": live_identities,
            "all": sorted(f"{k}:{v}" for k, v in keys),
        },
        "records": {"identity_records": records, "identity_evidence": evidence},
        "events": {
            "snapshot_events": snapshot_events,
            "event_log": log_events,
            "failed_events": failed,
            "live": live,
        },
        "consents": {
            "golden_record": _consent_columns(golden[0]) if golden else {},
            "decision_log": decisions["consent_events"],
            **consent_tables,
        },
        "decisions": {
            "decisions": decisions["decisions"],
            "outcomes": decisions["outcomes"],
            "trigger_firings": firings,
            "outbox": outbox,
        },
        "id_history": {**history, "live_aliases": live_aliases},
        "other_tables": tables,
    }
    held = bool(
        golden
        or any(profile.values())
        or any(identifiers.values())
        or live_identities
        or records
        or snapshot_events
        or log_events
        or failed
        or live.get("live_profile")
        or any(decisions.values())
        or outbox
        or firings
        or any(history.values())
        or tables
    )
    document["found"] = held
    if not held:
        document["message"] = "nothing held: no store has data about this person"
    return document


def summary(document: Mapping[str, Any]) -> dict[str, int]:
    """Counts per category (what the CLI prints), without any personal value."""
    events = document["events"]
    decisions = document["decisions"]
    records = document["records"]["identity_records"]
    return {
        "customer ids": len(document["customer_ids"]),
        "identifiers": len(document["identifiers"]["all"]),
        "records": len(records),
        "lake rows": sum(len(r.get("lake_rows", [])) for r in records),
        "snapshot events": len(events["snapshot_events"]),
        "event log events": len(events["event_log"]),
        "failed events": len(events["failed_events"]),
        "consent statements": len(document["consents"]["decision_log"])
        + sum(1 for k in document["consents"]["golden_record"] if k.endswith("_consent")),
        "decisions": len(decisions["decisions"]),
        "outbox messages": len(decisions["outbox"]),
    }
