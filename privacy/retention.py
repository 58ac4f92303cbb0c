"""Retention: event and decision data older than the configured days leave every store.

``privacy.retention`` in cdp.yml gives the days (:mod:`privacy.config`); :func:`apply_retention`
removes, relative to ``now`` (the run's as-of):

- the event log (``CDP_HOME/events/log.sqlite``): events received before the events cutoff and
  kept failed events, except events the stream processor (``consumer_offsets``) or the fold (its
  watermark) have not consumed yet, and failed events the fold has not exported: those are
  counted as kept and go on a later run;
- the live state (``state.sqlite``): recent events, product views and poison events older than
  the cutoff, and outbox messages delivered or dead-lettered before it (pending ones stay);
- the real-time lake: the folded ``events-*.jsonl`` landing files, the lake part and quarantine
  file each was ingested into, and the exported failed events. A file that straddles the cutoff
  is rewritten without its old lines (atomic replace); its part keeps its name and loses the
  same records, and its manifest entry takes the new file's checksum, so the ingest recognises
  the rewritten file and never ingests the removed records again. A file left with no line
  stays as an empty file: the folded files must tile the log's offsets (``offsets_accounted_for``);
- the decision log (``decisions.sqlite``, :meth:`DecisionStore.purge_before`) and its lake
  export (``lake/_decisions/<table>/<day>.parquet``, :meth:`DecisionStore.purge_export`).

What stays although old, and why: consent events (the record of consent; missing means no);
the folded price changes (no personal data, and the batch's current price of a product is its
latest change); the newest row of each SQLite table whose integer key is a rowid (the event
log's offsets, failed ids, the decision log's export watermarks, outbox ids): SQLite numbers a
new row after the largest one left, so emptying a table would reuse numbers readers have passed.

Too short a retention is refused (:func:`retention_problems`): the decision log must keep what
caps and the adaptive frequency count (the widest cap window, the 90-day engagement look-back,
the longest placement period) and the events what the live profile looks back over.

Files shrink: a database that lost rows is switched once to ``auto_vacuum = incremental`` (one
VACUUM), later runs release the freed pages with ``incremental_vacuum``. Every step is
idempotent: a second run with the same ``now`` removes nothing and writes nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from decisions.policy import DecisionsPolicy, duration_seconds
from decisions.service import ENGAGEMENT_LOOKBACK
from decisions.store import DecisionStore, default_store_path
from events.config import FoldSettings, PriceDropTrigger, RealtimeConfig
from events.fold import (
    EVENTS_PREFIX,
    FAILED_DIR,
    log_path,
    read_manifest,
    realtime_dir,
    state_path,
    write_atomic,
    write_parquet_atomic,
)
from events.outbox import DEAD, DELIVERED, to_micros, transaction
from privacy.config import PrivacyConfig, RetentionSettings

logger = logging.getLogger(__name__)

#: Rows deleted per write transaction of the event log, so intake never waits long.
DELETE_CHUNK: Final[int] = 5_000
#: The lake manifest of a source (``dagster_project/lib/ingest/lake.py`` writes it).
LAKE_MANIFEST: Final[str] = "_manifest.json"
_DAY_SECONDS: Final[float] = 86_400.0
_AUTO_VACUUM_INCREMENTAL: Final[int] = 2


class RetentionError(ValueError):
    """A retention that cannot be applied (too short for what the platform still counts)."""


@dataclass
class StoreReport:
    """What retention did to one store: rows (or records) removed, files, bytes."""

    store: str
    rows_removed: dict[str, int] = field(default_factory=dict)
    files_removed: int = 0
    files_rewritten: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    #: old rows kept on purpose (unconsumed events, the newest row of a table), by reason
    kept: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        """Bytes the store's files shrank by (0 when they grew)."""
        return max(0, self.bytes_before - self.bytes_after)

    @property
    def total_removed(self) -> int:
        """Rows removed over all of the store's tables."""
        return sum(self.rows_removed.values())


@dataclass
class RetentionReport:
    """One retention run: the cutoffs and each store's report."""

    now: datetime
    events_cutoff: datetime | None
    decisions_cutoff: datetime | None
    stores: list[StoreReport] = field(default_factory=list)

    @property
    def rows_removed(self) -> int:
        """Rows removed over every store."""
        return sum(s.total_removed for s in self.stores)

    @property
    def bytes_freed(self) -> int:
        """Bytes freed over every store."""
        return sum(s.bytes_freed for s in self.stores)


# --- settings -------------------------------------------------------------------------------


def minimum_decisions_days(policy: DecisionsPolicy) -> tuple[float, str]:
    """The shortest decision retention the policy allows, in days, and what sets it."""
    needs: list[tuple[float, str]] = [
        (ENGAGEMENT_LOOKBACK.total_seconds(), "the adaptive frequency's engagement look-back")
    ]
    needs += [
        (duration_seconds(c.window), f"cap '{c.name}' (window {c.window})") for c in policy.caps
    ]
    if policy.frequency.enabled:
        needs.append(
            (
                duration_seconds(policy.frequency.window),
                f"frequency.window {policy.frequency.window}",
            )
        )
    needs += [
        (p.period_seconds, f"placement '{name}' (period {p.period})")
        for name, p in policy.placements.items()
    ]
    seconds, reason = max(needs, key=lambda need: need[0])
    return seconds / _DAY_SECONDS, reason


def minimum_events_days(realtime: RealtimeConfig) -> tuple[float, str]:
    """The shortest event retention the real-time settings allow, in days, and what sets it."""
    needs: list[tuple[float, str]] = [
        (realtime.live.view_retention_days, "realtime.live.view_retention_days")
    ]
    needs += [
        (t.viewed_within_days, f"trigger '{t.name}' (viewed_within_days)")
        for t in realtime.triggers
        if isinstance(t, PriceDropTrigger)
    ]
    return max(needs, key=lambda need: need[0])


def retention_problems(
    privacy: PrivacyConfig, realtime: RealtimeConfig, policy: DecisionsPolicy
) -> list[str]:
    """``privacy.retention.<key>: problem`` lines; empty when the retention can be applied."""
    problems: list[str] = []
    settings = privacy.retention
    if settings.decisions_days is not None:
        days, reason = minimum_decisions_days(policy)
        if settings.decisions_days < days:
            problems.append(
                f"privacy.retention.decisions_days: {settings.decisions_days} days is shorter "
                f"than the decision log must keep for {reason}: {days:g} days; raise it to at "
                "least that"
            )
    if settings.events_days is not None:
        days, reason = minimum_events_days(realtime)
        if settings.events_days < days:
            problems.append(
                f"privacy.retention.events_days: {settings.events_days} days is shorter than "
                f"the live profile looks back ({reason}: {days:g} days); raise events_days or "
                "lower that setting"
            )
    return problems


def cutoffs(settings: RetentionSettings, now: datetime) -> tuple[datetime | None, datetime | None]:
    """(events cutoff, decisions cutoff): data before them goes; None keeps everything."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    events = None if settings.events_days is None else now - timedelta(days=settings.events_days)
    decisions = (
        None if settings.decisions_days is None else now - timedelta(days=settings.decisions_days)
    )
    return events, decisions


# --- SQLite helpers -------------------------------------------------------------------------


def _bytes(*paths: Path) -> int:
    """Size of SQLite files with their WAL (missing files count 0)."""
    total = 0
    for path in paths:
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(f"{path}{suffix}")
    return total


def _folder_bytes(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.execute("pragma busy_timeout = 30000")
    return conn


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "select 1 from sqlite_master where type = 'table' and name = ?", (name,)
    ).fetchone()
    return row is not None


@contextlib.contextmanager
def _no_lock() -> Iterator[None]:
    yield


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """The event log's writer lock (``events.log``): intake writers queue on it, not poll."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _delete_chunked(
    conn: sqlite3.Connection,
    table: str,
    key: str,
    where: str,
    params: Sequence[Any],
    lock: Callable[[], contextlib.AbstractContextManager[None]],
) -> int:
    """Delete ``where`` rows in chunks of DELETE_CHUNK, one short write transaction each."""
    removed = 0
    while True:
        with lock(), transaction(conn):
            count = conn.execute(
                f"delete from {table} where {key} in (select {key} from {table} "
                f"where {where} order by {key} limit {DELETE_CHUNK})",
                tuple(params),
            ).rowcount
        removed += count
        if count < DELETE_CHUNK:
            return removed


def _shrink(
    conn: sqlite3.Connection, lock: Callable[[], contextlib.AbstractContextManager[None]]
) -> None:
    """Give freed pages back to the file system.

    The first time a file lost rows it is switched to ``auto_vacuum = incremental`` (which
    takes one VACUUM, rewriting the file); from then on ``incremental_vacuum`` only moves the
    free pages, a short write. The WAL is checkpointed and truncated after.
    """
    mode = int(conn.execute("pragma auto_vacuum").fetchone()[0])
    free = int(conn.execute("pragma freelist_count").fetchone()[0])
    if mode == _AUTO_VACUUM_INCREMENTAL and free == 0:
        return
    with lock():
        if mode != _AUTO_VACUUM_INCREMENTAL:
            conn.execute("pragma auto_vacuum = incremental")
            conn.execute("vacuum")
        else:
            # sqlite3_exec steps it to the end; execute() would free one page per call
            conn.executescript("pragma incremental_vacuum;")
    conn.execute("pragma wal_checkpoint(truncate)")


# --- the event log --------------------------------------------------------------------------


def consumed_offset(home: Path, lake_dir: Path) -> tuple[int, str]:
    """The last offset every reader of the log has consumed, and which reader lags most.

    The lower of the fold's watermark and the stream processor's committed offsets (no state
    file, or no offset yet: 0, nothing consumed).
    """
    fold = read_manifest(lake_dir).events_offset
    processor = 0
    path = state_path(home)
    if path.is_file():
        conn = _connect(path)
        try:
            if _has_table(conn, "consumer_offsets"):
                row = conn.execute("select min(offset) from consumer_offsets").fetchone()
                processor = int(row[0] or 0)
        finally:
            conn.close()
    if processor < fold:
        return processor, "the stream processor"
    return fold, "the fold"


def purge_event_log(home: Path, lake_dir: Path, cutoff: datetime) -> StoreReport:
    """Remove consumed events and exported failed events received before ``cutoff``."""
    report = StoreReport("event_log")
    path = log_path(home)
    if not path.is_file():
        report.notes.append("no event log yet")
        return report
    report.bytes_before = _bytes(path)
    consumed, laggard = consumed_offset(home, lake_dir)
    exported_failed = read_manifest(lake_dir).failed_id
    before = to_micros(cutoff)
    lock_path = path.with_name(path.name + ".writer-lock")

    def lock() -> contextlib.AbstractContextManager[None]:
        return _flock(lock_path)

    conn = _connect(path)
    try:
        conn.execute("pragma journal_mode = wal")
        if not _has_table(conn, "events"):
            report.notes.append("the event log has no events table yet")
            return report
        head = int(conn.execute("select coalesce(max(offset), 0) from events").fetchone()[0])
        safe = min(consumed, head - 1)
        report.rows_removed["events"] = _delete_chunked(
            conn, "events", "offset", "received_at < ? and offset <= ?", (before, safe), lock
        )
        unconsumed = conn.execute(
            "select count(*) from events where received_at < ? and offset > ?",
            (before, consumed),
        ).fetchone()[0]
        newest = conn.execute(
            "select count(*) from events where received_at < ? and offset = ? and offset <= ?",
            (before, head, consumed),
        ).fetchone()[0]
        last_failed = int(
            conn.execute("select coalesce(max(failed_id), 0) from failed_events").fetchone()[0]
        )
        safe_failed = min(exported_failed, last_failed - 1)
        report.rows_removed["failed_events"] = _delete_chunked(
            conn,
            "failed_events",
            "failed_id",
            "received_at < ? and failed_id <= ?",
            (before, safe_failed),
            lock,
        )
        unexported = conn.execute(
            "select count(*) from failed_events where received_at < ? and failed_id > ?",
            (before, exported_failed),
        ).fetchone()[0]
        report.kept = {
            "events_not_consumed": int(unconsumed),
            "newest_event": int(newest),
            "failed_events_not_exported": int(unexported),
        }
        if unconsumed:
            report.notes.append(
                f"{unconsumed} old event(s) kept: {laggard} has consumed up to offset {consumed}"
            )
        if unexported:
            report.notes.append(f"{unexported} old failed event(s) kept: not exported by the fold")
        if report.total_removed:
            _shrink(conn, lock)
    finally:
        conn.close()
    report.bytes_after = _bytes(path)
    return report


# --- the live state and the outbox ------------------------------------------------------------


def purge_state(home: Path, cutoff: datetime) -> StoreReport:
    """Remove the live state's time-based rows and finished outbox messages before ``cutoff``."""
    report = StoreReport("live_state")
    path = state_path(home)
    if not path.is_file():
        report.notes.append("no live state yet")
        return report
    report.bytes_before = _bytes(path)
    before = to_micros(cutoff)
    plan = (
        ("live_events", "occurred_at < ?", (before,)),
        ("live_product_views", "viewed_at < ?", (before,)),
        ("dead_events", "failed_at < ?", (before,)),
        (
            "outbox",
            "status in (?, ?) and created_at < ? "
            "and message_id < (select max(message_id) from outbox)",
            (DELIVERED, DEAD, before),
        ),
    )
    conn = _connect(path)
    try:
        conn.execute("pragma journal_mode = wal")
        with transaction(conn):
            for table, where, params in plan:
                if _has_table(conn, table):
                    count = conn.execute(f"delete from {table} where {where}", params).rowcount
                    report.rows_removed[table] = count
        if report.total_removed:
            _shrink(conn, _no_lock)
    finally:
        conn.close()
    report.bytes_after = _bytes(path)
    return report


# --- the decision log ---------------------------------------------------------------------------


def purge_decisions(home: Path, export_dir: Path, cutoff: datetime) -> StoreReport:
    """Purge the decision log before ``cutoff`` and bring its lake export in line."""
    report = StoreReport("decision_log")
    path = default_store_path(home)
    if not path.is_file():
        report.notes.append("no decision log yet")
        return report
    report.bytes_before = _bytes(path) + _folder_bytes(export_dir)
    with DecisionStore.open(path) as store:
        report.rows_removed = store.purge_before(cutoff)
        files = store.purge_export(export_dir, cutoff)
    report.files_rewritten = sum(files.values())
    conn = _connect(path)
    try:
        if report.total_removed:
            _shrink(conn, _no_lock)
    finally:
        conn.close()
    report.bytes_after = _bytes(path) + _folder_bytes(export_dir)
    report.notes.append("consent events are kept: they are the record of consent")
    return report


# --- the real-time lake ---------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _received_before(line: bytes, before: datetime) -> bool:
    """Whether a folded line is an event received before ``before`` (unreadable lines stay)."""
    try:
        row = orjson.loads(line)
        received = datetime.fromisoformat(str(row["received_at"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return False
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    return received < before


def _record_id(line: bytes, key_columns: Sequence[str]) -> str | None:
    """The record id the ingest gives a line (key columns, stripped, joined by ``|``)."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(row, dict):
        return None
    parts: list[str] = []
    for column in key_columns:
        value = row.get(column)
        if value is None or not str(value).strip():
            return None
        parts.append(str(value).strip())
    return "|".join(parts)


@dataclass(frozen=True)
class _Rewrite:
    """A landing file without its old lines: content, checksums, which records went."""

    data: bytes
    old_sha256: str
    new_sha256: str
    removed_lines: int
    kept_lines: int
    removed_ids: frozenset[str]
    #: record id -> its line number in the rewritten file
    new_line: dict[str, int]


def _plan_rewrite(data: bytes, before: datetime, key_columns: Sequence[str]) -> _Rewrite | None:
    """The file without lines received before ``before``; None when no line is that old."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    kept: list[bytes] = []
    removed_ids: set[str] = set()
    new_line: dict[str, int] = {}
    removed = 0
    for line in lines:
        if line.strip() and _received_before(line, before):
            removed += 1
            record = _record_id(line, key_columns)
            if record is not None:
                removed_ids.add(record)
            continue
        kept.append(line)
        record = _record_id(line, key_columns)
        if record is not None:
            new_line[record] = len(kept)
    if not removed:
        return None
    content = b"".join(line + b"\n" for line in kept)
    return _Rewrite(
        data=content,
        old_sha256=_sha256(data),
        new_sha256=_sha256(content),
        removed_lines=removed,
        kept_lines=sum(1 for line in kept if line.strip()),
        removed_ids=frozenset(removed_ids),
        new_line=new_line,
    )


def _write_table_atomic(table: pa.Table, path: Path) -> None:
    """Readers see the old part or the new one (:func:`events.fold.write_parquet_atomic`)."""
    write_parquet_atomic(path, table)


def _filter_part(path: Path, rewrite: _Rewrite) -> tuple[int, int]:
    """Drop the removed records from a lake part and renumber the kept ones' lines; (rows
    removed, rows left). A part already rewritten (its lineage names the new file) is left."""
    table = pq.read_table(path)
    done = table.num_rows and pc.all(pc.equal(table["_file_sha256"], rewrite.new_sha256)).as_py()
    if table.num_rows == 0 or done:
        return 0, table.num_rows
    ids = table["record_id"].to_pylist()
    keep = [record not in rewrite.removed_ids for record in ids]
    kept = table.filter(pa.array(keep, pa.bool_()))
    lines = [
        rewrite.new_line.get(record, line)
        for record, line in zip(
            kept["record_id"].to_pylist(), kept["_source_line"].to_pylist(), strict=True
        )
    ]
    kept = kept.set_column(
        kept.schema.get_field_index("_source_line"),
        kept.schema.field("_source_line"),
        pa.array(lines, pa.int64()),
    )
    kept = kept.set_column(
        kept.schema.get_field_index("_file_sha256"),
        kept.schema.field("_file_sha256"),
        pa.array([rewrite.new_sha256] * kept.num_rows, pa.string()),
    )
    _write_table_atomic(kept, path)
    return table.num_rows - kept.num_rows, kept.num_rows


def _filter_quarantine(path: Path, rewrite: _Rewrite, before: datetime) -> tuple[int, int]:
    """Drop quarantined old lines (judged by their raw text) from a quarantine file; (rows
    removed, rows left)."""
    table = pq.read_table(path)
    if table.num_rows == 0:
        return 0, 0
    raws = table["raw"].to_pylist()
    keep = [raw is None or not _received_before(raw.encode(), before) for raw in raws]
    if all(keep):
        return 0, table.num_rows
    kept = table.filter(pa.array(keep, pa.bool_()))
    kept = kept.set_column(
        kept.schema.get_field_index("_file_sha256"),
        kept.schema.field("_file_sha256"),
        pa.array([rewrite.new_sha256] * kept.num_rows, pa.string()),
    )
    _write_table_atomic(kept, path)
    return table.num_rows - kept.num_rows, kept.num_rows


def _load_manifest(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        manifest = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        return None
    return manifest


def _write_manifest(manifest: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.retention-{os.getpid()}")
    tmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, path)


def _manifest_entry(manifest: dict[str, Any], display: str, rewrite: _Rewrite) -> Any:
    """The lake manifest's entry of a landing file: by its path and old checksum, or its new
    one (a run that stopped after the manifest), else any entry of the old checksum. Never by
    the new checksum alone: an emptied file has the checksum of every empty file."""
    ingested = [e for e in manifest["files"] if e.get("part")]
    for sha in (rewrite.old_sha256, rewrite.new_sha256):
        for entry in ingested:
            if entry.get("path") == display and entry.get("sha256") == sha:
                return entry
    return next((e for e in ingested if e.get("sha256") == rewrite.old_sha256), None)


def purge_realtime_lake(
    landing_dir: Path,
    lake_dir: Path,
    quarantine_dir: Path,
    fold: FoldSettings,
    key_columns: Sequence[str],
    cutoff: datetime,
    *,
    now: datetime,
) -> StoreReport:
    """Remove events received before ``cutoff`` from the folded landing files, their lake parts
    and quarantine, and the exported failed events.

    Per landing file, in an order where a crash at any point leaves nothing to re-ingest: the
    part (same name) without the removed records, the quarantine file, the manifest entry with
    the new checksum, then the landing file (atomic replace). A crash before the manifest
    leaves the old file, still known by its checksum; after it, the part's name still matches
    the old file. The next run finishes the file.
    """
    report = StoreReport("realtime_lake")
    folder = landing_dir / fold.folder
    source_lake = lake_dir / fold.events_source
    source_quarantine = quarantine_dir / fold.events_source
    report.bytes_before = (
        _folder_bytes(folder)
        + _folder_bytes(source_lake)
        + _folder_bytes(source_quarantine)
        + _folder_bytes(realtime_dir(lake_dir) / FAILED_DIR)
    )
    manifest_path = source_lake / LAKE_MANIFEST
    manifest = _load_manifest(manifest_path)
    if manifest_path.is_file() and manifest is None:
        report.notes.append(f"{manifest_path} is unreadable: landing files rewritten only")
    removed = {"landing_lines": 0, "lake_rows": 0, "quarantine_rows": 0, "failed_events": 0}
    emptied = 0
    files = sorted(folder.glob(f"{EVENTS_PREFIX}-*.jsonl")) if folder.is_dir() else []
    for path in files:
        data = path.read_bytes()
        rewrite = _plan_rewrite(data, cutoff, key_columns)
        if rewrite is None:
            continue
        entry = None
        if manifest is not None:
            entry = _manifest_entry(manifest, path.relative_to(landing_dir).as_posix(), rewrite)
        if entry is not None:
            part = source_lake / str(entry["part"])
            left = 0
            if part.is_file():
                gone, left = _filter_part(part, rewrite)
                removed["lake_rows"] += gone
            quarantined = 0
            if entry.get("quarantine"):
                qpath = source_quarantine / str(entry["quarantine"])
                if qpath.is_file():
                    gone, quarantined = _filter_quarantine(qpath, rewrite, cutoff)
                    removed["quarantine_rows"] += gone
            history = entry.get("retention") or {}
            entry["retention"] = {
                "original_sha256": history.get("original_sha256", entry["sha256"]),
                "lines_removed": int(history.get("lines_removed", 0)) + rewrite.removed_lines,
                "removed_at": now.isoformat(),
            }
            entry["sha256"] = rewrite.new_sha256
            entry["rows_read"] = rewrite.kept_lines
            entry["rows_ingested"] = left
            entry["rows_quarantined"] = quarantined
            entry["rows_duplicate"] = max(0, rewrite.kept_lines - left - quarantined)
            assert manifest is not None
            _write_manifest(manifest, manifest_path)
        write_atomic(path, rewrite.data)
        removed["landing_lines"] += rewrite.removed_lines
        report.files_rewritten += 1
        emptied += int(rewrite.kept_lines == 0)
    failed_folder = realtime_dir(lake_dir) / FAILED_DIR
    if failed_folder.is_dir():
        for path in sorted(failed_folder.glob("*.parquet")):
            if path.name.startswith("."):
                continue
            table = pq.read_table(path)
            old = pc.less(table["received_at"], pa.scalar(cutoff, pa.timestamp("us", tz="UTC")))
            count = int(pc.sum(old).as_py() or 0)
            if not count:
                continue
            removed["failed_events"] += count
            if count == table.num_rows:
                path.unlink()
                report.files_removed += 1
            else:
                _write_table_atomic(table.filter(pc.invert(old)), path)
                report.files_rewritten += 1
    report.rows_removed = removed
    if emptied:
        report.kept["empty_landing_files"] = emptied
    report.notes.append(
        "folded price changes are kept: no personal data, and a product's current price is its "
        "latest change"
    )
    report.bytes_after = (
        _folder_bytes(folder)
        + _folder_bytes(source_lake)
        + _folder_bytes(source_quarantine)
        + _folder_bytes(failed_folder)
    )
    return report


# --- the whole run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionPaths:
    """Where the stores are: CDP_HOME and the folders the pipeline configures."""

    home: Path
    landing_dir: Path
    lake_dir: Path
    quarantine_dir: Path
    #: the decision log's lake export (``lake/_decisions``)
    decision_export_dir: Path


def apply_retention(
    paths: RetentionPaths,
    privacy: PrivacyConfig,
    realtime: RealtimeConfig,
    policy: DecisionsPolicy,
    *,
    events_key_columns: Sequence[str],
    now: datetime,
) -> RetentionReport:
    """Remove event and decision data older than the retention, store by store.

    RetentionError (naming the key) when the retention is too short for what caps, the
    adaptive frequency or the live profile still count; nothing is removed then.
    """
    problems = retention_problems(privacy, realtime, policy)
    if problems:
        raise RetentionError("; ".join(problems))
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    events_cutoff, decisions_cutoff = cutoffs(privacy.retention, now)
    report = RetentionReport(now, events_cutoff, decisions_cutoff)
    if events_cutoff is not None:
        report.stores.append(purge_event_log(paths.home, paths.lake_dir, events_cutoff))
        report.stores.append(purge_state(paths.home, events_cutoff))
        report.stores.append(
            purge_realtime_lake(
                paths.landing_dir,
                paths.lake_dir,
                paths.quarantine_dir,
                realtime.fold,
                events_key_columns,
                events_cutoff,
                now=now,
            )
        )
    if decisions_cutoff is not None:
        report.stores.append(
            purge_decisions(paths.home, paths.decision_export_dir, decisions_cutoff)
        )
    for store in report.stores:
        logger.info(
            "retention %s: removed %s, %d bytes freed",
            store.store,
            store.rows_removed,
            store.bytes_freed,
        )
    return report
