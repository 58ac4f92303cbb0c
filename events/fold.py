"""Fold the event log into the lake: landing files of two ordinary sources, exactly once.

Why landing files and not Parquet straight into the lake: the normal ingest then validates,
quarantines and lineage-tracks real-time events exactly as it does a delivered export, and the
batch graph needs no second path. The fold writes, per offset range ``<first>-<last>``,
``<landing>/<fold.folder>/events-<first>-<last>.jsonl`` (source ``fold.events_source``, kind
events) and ``price_changes-<first>-<last>.jsonl`` (source ``fold.price_changes_source``).

Exactly once: the watermark (the last folded offset) lives in a manifest under
``CDP_HOME/lake/_realtime/``, replaced after the files (write, fsync, atomic rename, fsync of the
folder). File names and contents are a pure function of the offset range, and a fold that finds
a file starting right after its watermark (a crash between file and manifest) reuses that file's
range, so it rewrites the same bytes; the ingest skips a file whose hash it has seen and counts
records it holds already as duplicates, so every event reaches the lake once.

Besides the two sources the fold exports, for the batch side to query with DuckDB: the kept
failed events (``lake/_realtime/failed_events/failed-<first id>-<last id>.parquet``, the same
watermark scheme) and the provisional customers of the stream processor
(``lake/_realtime/provisional_customers.parquet``, rewritten whole; identity keeps their ids).

An empty real-time source is normal: :func:`seed_landing` writes one empty file per source
(``events-000000000000-000000000000.jsonl``), which the ingest records as an empty file with a
zero-row part, so ``cdp validate``, the ingest and dbt's globs all find the source.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sqlite3
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from events.config import FoldSettings, IdentifierTypes
from events.types import CATALOG_KINDS, EventKind, EventLog, LoggedEvent

logger = logging.getLogger(__name__)

#: Folder under the lake holding the fold's manifest and its exports (not a source folder:
#: source names cannot start with '_').
REALTIME_DIR: Final[str] = "_realtime"
MANIFEST_NAME: Final[str] = "fold_manifest.json"
FAILED_DIR: Final[str] = "failed_events"
PROVISIONAL_NAME: Final[str] = "provisional_customers.parquet"
EVENTS_PREFIX: Final[str] = "events"
PRICE_PREFIX: Final[str] = "price_changes"
#: Offsets in file names are zero-padded so name order is offset order.
_PAD: Final[int] = 12
#: Events per landing file: bounds one file's size (about 0.5 KB per row).
DEFAULT_CHUNK: Final[int] = 100_000

#: Columns of the events file, in order (named identifier columns follow the config's types).
EVENT_COLUMNS: Final[tuple[str, ...]] = (
    "event_id",
    "event_type",
    "event_name",
    "occurred_at",
    "received_at",
    "email",
    "product_id",
    "quantity",
    "order_id",
    "page_url",
    "search_query",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "sent_by",
    "log_offset",
)

FAILED_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        ("failed_id", pa.int64()),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("source", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("message_id", pa.string()),
        ("body", pa.binary()),
    ]
)
PROVISIONAL_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        ("identifier_type", pa.string()),
        ("identifier_value", pa.string()),
        ("customer_id", pa.string()),
        ("linked_at", pa.timestamp("us", tz="UTC")),
    ]
)


class FoldError(RuntimeError):
    """The fold cannot proceed (an unreadable manifest); the message says what to do."""


@dataclass(frozen=True)
class FoldManifest:
    """What has been folded: the last event offset and the last failed-event id."""

    events_offset: int = 0
    failed_id: int = 0
    updated_at: str | None = None


@dataclass
class FoldReport:
    """What one fold did, for the asset's metadata."""

    offset_before: int = 0
    offset_after: int = 0
    head: int = 0
    events_folded: int = 0
    event_rows: int = 0
    price_change_rows: int = 0
    #: catalog events the batch sources have no place for yet (product updates); in the log
    catalog_events_not_folded: int = 0
    price_changes_without_price: int = 0
    failed_events: int = 0
    failed_events_total: int = 0
    provisional_customers: int = 0
    files: list[str] = field(default_factory=list)
    #: seconds between the oldest newly folded event's arrival and the fold (0 when none)
    lag_seconds: float = 0.0

    @property
    def lag_events(self) -> int:
        """Events in the log not folded yet when the fold started."""
        return self.head - self.offset_before


def realtime_dir(lake_dir: Path) -> Path:
    """``lake/_realtime``: the fold's manifest and exports."""
    return lake_dir / REALTIME_DIR


def file_name(prefix: str, first: int, last: int, suffix: str = "jsonl") -> str:
    """The deterministic name of the file holding offsets (or ids) ``first..last``."""
    return f"{prefix}-{first:0{_PAD}d}-{last:0{_PAD}d}.{suffix}"


_RANGE = re.compile(r"^(?P<prefix>[a-z_]+)-(?P<first>\d+)-(?P<last>\d+)\.(jsonl|parquet)$")


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write, fsync, rename over ``path``, fsync the folder: a reader sees all or nothing.

    The file gets ``mode`` when given, else keeps the mode it had (a rewrite of a delivered
    file or a private export must not widen it), else the umask's default. The temporary name
    is unique, so two writers of one folder never share it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None and path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)  # the umask may have narrowed it
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_parquet_atomic(path: Path, table: pa.Table) -> None:
    """:func:`write_atomic` for a Parquet table (zstd; the old file's mode kept)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    write_atomic(path, sink.getvalue().to_pybytes())


def read_manifest(lake_dir: Path) -> FoldManifest:
    """The fold's watermark (zeros before the first fold)."""
    path = realtime_dir(lake_dir) / MANIFEST_NAME
    if not path.is_file():
        return FoldManifest()
    try:
        raw = orjson.loads(path.read_bytes())
        return FoldManifest(
            events_offset=int(raw["events_offset"]),
            failed_id=int(raw["failed_id"]),
            updated_at=raw.get("updated_at"),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise FoldError(
            f"{path}: unreadable fold manifest ({exc}); restore it from a backup, or delete it "
            "to fold the whole log again (the ingest counts re-folded events as duplicates)"
        ) from exc


def write_manifest(lake_dir: Path, manifest: FoldManifest) -> None:
    """Replace the manifest atomically (the fold's commit point)."""
    body = {
        "events_offset": manifest.events_offset,
        "failed_id": manifest.failed_id,
        "updated_at": manifest.updated_at,
    }
    write_atomic(realtime_dir(lake_dir) / MANIFEST_NAME, orjson.dumps(body))


def seed_landing(landing_dir: Path, settings: FoldSettings) -> list[Path]:
    """Write an empty file for each folded source whose folder holds none yet.

    Returns the files written. An empty file is an ordinary delivery (status ``empty``, a
    zero-row part), so a platform that never received an event runs as usual.
    """
    folder = landing_dir / settings.folder
    written: list[Path] = []
    for prefix in (EVENTS_PREFIX, PRICE_PREFIX):
        if any(folder.glob(f"{prefix}-*.jsonl")):
            continue
        path = folder / file_name(prefix, 0, 0)
        write_atomic(path, b"")
        written.append(path)
    return written


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _get(body: Mapping[str, Any], *path: str) -> Any:
    value: Any = body
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def event_rows(event: LoggedEvent, identifiers: IdentifierTypes) -> list[dict[str, Any]]:
    """The events-source rows of one logged event: one per product line (``<id>#<n>`` when
    the event names several), one when it names none. Catalog events give none."""
    if event.kind in CATALOG_KINDS:
        return []
    body = event.body
    user_type, anonymous_type = identifiers.user_id, identifiers.anonymous_id
    base: dict[str, Any] = {
        "event_id": event.message_id,
        "event_type": str(event.kind),
        "event_name": event.event if event.kind == EventKind.CUSTOM else None,
        "occurred_at": _iso(event.occurred_at),
        "received_at": _iso(event.received_at),
        "email": event.identifiers.get("email"),
        "product_id": None,
        "quantity": None,
        "order_id": _text(_get(body, "properties", "order_id")),
        "page_url": _text(_get(body, "properties", "url"))
        or _text(_get(body, "context", "page", "url")),
        "search_query": _text(_get(body, "properties", "query")),
        "utm_source": _text(_get(body, "context", "campaign", "source")),
        "utm_medium": _text(_get(body, "context", "campaign", "medium")),
        "utm_campaign": _text(_get(body, "context", "campaign", "name")),
        "sent_by": event.source,
        "log_offset": event.offset,
        anonymous_type: event.anonymous_id or event.identifiers.get(anonymous_type),
        user_type: event.user_id or event.identifiers.get(user_type),
    }
    if not event.products:
        return [base]
    if len(event.products) == 1:
        line = event.products[0]
        return [{**base, "product_id": line.product_id, "quantity": line.quantity}]
    return [
        {
            **base,
            "event_id": f"{event.message_id}#{number}",
            "product_id": line.product_id,
            "quantity": line.quantity,
        }
        for number, line in enumerate(event.products, start=1)
    ]


def price_change_rows(event: LoggedEvent) -> tuple[list[dict[str, Any]], int]:
    """The price_changes rows of a price-change event, and how many lines had no price."""
    if event.kind != EventKind.PRICE_CHANGE:
        return [], 0
    rows: list[dict[str, Any]] = []
    missing = 0
    several = len(event.products) > 1
    for number, line in enumerate(event.products, start=1):
        if line.price is None:
            missing += 1
            continue
        rows.append(
            {
                "event_id": f"{event.message_id}#{number}" if several else event.message_id,
                "product_id": line.product_id,
                "price": line.price,
                "changed_at": _iso(event.occurred_at),
                "log_offset": event.offset,
            }
        )
    return rows, missing


def folded_ranges(landing_dir: Path, settings: FoldSettings) -> list[tuple[int, int]]:
    """The offset ranges of the events files in the landing folder, in order (seeds excluded)."""
    folder = landing_dir / settings.folder
    ranges: list[tuple[int, int]] = []
    if folder.is_dir():
        for path in folder.glob(f"{EVENTS_PREFIX}-*.jsonl"):
            match = _RANGE.match(path.name)
            if match and match["prefix"] == EVENTS_PREFIX and int(match["last"]) > 0:
                ranges.append((int(match["first"]), int(match["last"])))
    return sorted(ranges)


def coverage_problems(ranges: Sequence[tuple[int, int]], watermark: int) -> list[str]:
    """What breaks "every offset up to the watermark is in exactly one events file": gaps,
    overlaps, and files past the watermark (a fold that crashed before its manifest; the next
    fold rewrites them). Empty when the files tile 1..watermark."""
    problems: list[str] = []
    expected = 1
    for first, last in ranges:
        if first > watermark:
            problems.append(
                f"offsets {first}-{last} are in a file past the watermark {watermark} (a fold "
                "stopped before its manifest; the next fold rewrites that file)"
            )
            continue
        if first > expected:
            problems.append(f"offsets {expected}-{first - 1} are in no events file")
        elif first < expected:
            problems.append(f"offsets {first}-{min(last, expected - 1)} are in two events files")
        expected = max(expected, last + 1)
    if expected <= watermark:
        problems.append(f"offsets {expected}-{watermark} are in no events file")
    return problems


def _jsonl(rows: Sequence[Mapping[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def _pending_last(folder: Path, prefixes: Sequence[str], first: int) -> int | None:
    """The range end of a file written past the watermark by a fold that crashed before its
    manifest (so this fold rewrites that very file)."""
    ends: list[int] = []
    if not folder.is_dir():
        return None
    for path in folder.iterdir():
        match = _RANGE.match(path.name)
        if match and match["prefix"] in prefixes and int(match["first"]) == first:
            ends.append(int(match["last"]))
    return max(ends) if ends else None


def _read_range(log: EventLog, first: int, last: int) -> list[LoggedEvent]:
    events: list[LoggedEvent] = []
    after = first - 1
    while after < last:
        batch = log.read(after, min(10_000, last - after))
        if not batch:
            break
        for event in batch:
            if event.offset > last:
                break
            events.append(event)
        after = batch[-1].offset
    return events


def fold_events(
    log: EventLog,
    landing_dir: Path,
    lake_dir: Path,
    settings: FoldSettings,
    identifiers: IdentifierTypes,
    *,
    now: datetime | None = None,
    chunk: int = DEFAULT_CHUNK,
    report: FoldReport | None = None,
) -> FoldReport:
    """Fold every event after the watermark into landing files, advancing the watermark
    after each range's files are durable."""
    now = now or datetime.now(UTC)
    report = report or FoldReport()
    folder = landing_dir / settings.folder
    seed_landing(landing_dir, settings)
    manifest = read_manifest(lake_dir)
    head = log.head()
    if head < manifest.events_offset:
        # Offsets only grow: a smaller head is another log (deleted, restored from an older
        # backup). Folding on would skip its events up to the watermark without a word.
        raise FoldError(
            f"the event log's head offset ({head}) is behind the fold watermark "
            f"({manifest.events_offset}) in {realtime_dir(lake_dir) / MANIFEST_NAME}: the log "
            "was replaced. Restore the log that was folded, or, to fold the new log from its "
            "start, move the manifest aside and the old realtime/ landing files out of the "
            "landing folder"
        )
    report.offset_before = report.offset_after = manifest.events_offset
    report.head = head
    oldest: datetime | None = None
    while manifest.events_offset < head:
        first = manifest.events_offset + 1
        last = _pending_last(folder, (EVENTS_PREFIX, PRICE_PREFIX), first)
        if last is None or last < first:
            last = min(head, manifest.events_offset + chunk)
        events = _read_range(log, first, last)
        rows: list[dict[str, Any]] = []
        prices: list[dict[str, Any]] = []
        for event in events:
            if oldest is None:
                oldest = event.received_at
            rows.extend(event_rows(event, identifiers))
            price_rows, missing = price_change_rows(event)
            prices.extend(price_rows)
            report.price_changes_without_price += missing
            if event.kind == EventKind.PRODUCT_UPDATE:
                report.catalog_events_not_folded += 1
        # The events file is written even when empty, so the events files tile the folded
        # offsets 1..watermark without a gap (``folded_ranges``; the Dagster check holds it).
        for prefix, content in ((EVENTS_PREFIX, rows), (PRICE_PREFIX, prices)):
            if content or prefix == EVENTS_PREFIX:
                path = folder / file_name(prefix, first, last)
                write_atomic(path, _jsonl(content))
                report.files.append(f"{settings.folder}/{path.name}")
        report.events_folded += len(events)
        report.event_rows += len(rows)
        report.price_change_rows += len(prices)
        manifest = FoldManifest(last, manifest.failed_id, _iso(now))
        write_manifest(lake_dir, manifest)
        report.offset_after = last
    if oldest is not None:
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        report.lag_seconds = max(0.0, (now - oldest).total_seconds())
    return report


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to an SQLite file, or None when it does not exist."""
    if not path.is_file():
        yield None
        return
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    with closing(conn):
        yield conn


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "select 1 from sqlite_master where type = 'table' and name = ?", (name,)
    ).fetchone()
    return row is not None


def _micros_to_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1_000_000, tz=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fold_failed_events(
    log_path: Path, lake_dir: Path, *, report: FoldReport | None = None
) -> FoldReport:
    """Export kept failed events past the watermark to Parquet (one file per id range)."""
    report = report or FoldReport()
    manifest = read_manifest(lake_dir)
    folder = realtime_dir(lake_dir) / FAILED_DIR
    with _read_only(log_path) as conn:
        if conn is None or not _has_table(conn, "failed_events"):
            return report
        report.failed_events_total = conn.execute("select count(*) from failed_events").fetchone()[
            0
        ]
        pending = _pending_last(folder, ("failed",), manifest.failed_id + 1)
        query = (
            "select failed_id, received_at, source, reason, detail, message_id, body "
            "from failed_events where failed_id > ?"
        )
        params: tuple[int, ...] = (manifest.failed_id,)
        if pending is not None:
            query += " and failed_id <= ?"
            params = (manifest.failed_id, pending)
        rows = conn.execute(query + " order by failed_id", params).fetchall()
    if not rows:
        return report
    table = pa.table(
        {
            "failed_id": [r[0] for r in rows],
            "received_at": [_micros_to_datetime(r[1]) for r in rows],
            "source": [r[2] for r in rows],
            "reason": [r[3] for r in rows],
            "detail": [r[4] for r in rows],
            "message_id": [r[5] for r in rows],
            "body": [bytes(r[6]) if r[6] is not None else None for r in rows],
        },
        schema=FAILED_SCHEMA,
    )
    first, last = rows[0][0], rows[-1][0]
    write_parquet_atomic(folder / file_name("failed", first, last, "parquet"), table)
    report.failed_events += len(rows)
    report.files.append(
        f"lake/{REALTIME_DIR}/{FAILED_DIR}/{file_name('failed', first, last, 'parquet')}"
    )
    current = read_manifest(lake_dir)
    write_manifest(lake_dir, FoldManifest(current.events_offset, last, current.updated_at))
    return report


def export_provisional(
    state_path: Path, lake_dir: Path, *, report: FoldReport | None = None
) -> FoldReport:
    """Rewrite ``provisional_customers.parquet`` from the processor's ``live_identities``."""
    report = report or FoldReport()
    rows: list[tuple[Any, ...]] = []
    with _read_only(state_path) as conn:
        if conn is not None and _has_table(conn, "live_identities"):
            rows = conn.execute(
                "select identifier_type, identifier_value, customer_id, linked_at "
                "from live_identities where is_provisional = 1 "
                "order by customer_id, identifier_type, identifier_value"
            ).fetchall()
    table = pa.table(
        {
            "identifier_type": [r[0] for r in rows],
            "identifier_value": [r[1] for r in rows],
            "customer_id": [r[2] for r in rows],
            "linked_at": [_micros_to_datetime(r[3]) for r in rows],
        },
        schema=PROVISIONAL_SCHEMA,
    )
    write_parquet_atomic(realtime_dir(lake_dir) / PROVISIONAL_NAME, table)
    report.provisional_customers = len({r[2] for r in rows})
    return report


def log_path(home: Path) -> Path:
    """``CDP_HOME/events/log.sqlite``: the event log."""
    return home / "events" / "log.sqlite"


def state_path(home: Path) -> Path:
    """``CDP_HOME/events/state.sqlite``: the processor's state and the outbox."""
    return home / "events" / "state.sqlite"


def fold(
    home: Path,
    landing_dir: Path,
    settings: FoldSettings,
    identifiers: IdentifierTypes,
    *,
    now: datetime | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> FoldReport:
    """The whole fold of one CDP_HOME: events and price changes into landing files, failed
    events and provisional customers into ``lake/_realtime``. No log yet: seeds only."""
    lake_dir = home / "lake"
    report = FoldReport()
    path = log_path(home)
    if path.is_file():
        from events.log import SqliteEventLog  # the embedded log; a broker would plug in here

        log = SqliteEventLog(path)
        try:
            fold_events(
                log,
                landing_dir,
                lake_dir,
                settings,
                identifiers,
                now=now,
                chunk=chunk,
                report=report,
            )
        finally:
            log.close()
        fold_failed_events(path, lake_dir, report=report)
    else:
        seed_landing(landing_dir, settings)
        manifest = read_manifest(lake_dir)
        report.offset_before = report.offset_after = report.head = manifest.events_offset
    export_provisional(state_path(home), lake_dir, report=report)
    return report
