"""Build a serving snapshot from the warehouse, verify it, and switch the API over to it.

The API must answer point lookups in well under a millisecond and must never hold the dbt
warehouse open, so each publish copies the tables the snapshot format declares
(``snapshots.TABLES``: every one a contract-enforced dbt mart of the same name) into a new,
read-only SQLite file with an index on every lookup key. Publishing derives nothing: what the
API reads is computed, tested and as-of-filtered in dbt. SQLite was chosen over a DuckDB copy
by measurement (``benchmarks/bench_snapshot.py``, 100k customers): an email lookup joined to
the customer row takes 19 us (p50) / 85 us (p99) in SQLite and 23 ms / 84 ms in DuckDB, whose
strength (scans) the API does not need. The price is size: 524 MB against DuckDB's 138 MB.

Steps: check the warehouse has every declared table and column -> copy into
``serving/.build-<id>/`` -> count rows against the warehouse -> integrity check -> rename to
``serving/<id>/`` -> replace ``serving/CURRENT`` atomically -> delete old snapshots beyond
``keep`` that no API process still holds (leases). The format itself (layout, manifest,
tables, pointer, leases) is the ``snapshots`` package.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import sqlite3
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import duckdb

from identity import IdentitySettings
from snapshots import (
    BUILD_PREFIX,
    DATABASE_FILE,
    DATE_TEXT_FORMAT,
    FORMAT_VERSION,
    NORMALIZATION_SETTINGS,
    PUBLISH_LOCK_FILE,
    TABLE_NAMES,
    TABLES,
    TIMESTAMP_TEXT_FORMAT,
    SnapshotError,
    SnapshotManifest,
    TableSpec,
    list_snapshots,
    prunable_snapshots,
    read_manifest,
    snapshot_folder,
    write_current,
    write_manifest,
)

logger = logging.getLogger(__name__)

#: Rows moved per batch from DuckDB to SQLite.
BATCH_ROWS: Final[int] = 50_000
#: Seconds to wait for the warehouse while a dbt build still holds its write lock.
WAREHOUSE_LOCK_WAIT_SECONDS: Final[float] = 120.0
#: dbt models the publish step reads (Dagster dependencies of the publish asset): every
#: snapshot table is the mart of the same name.
MART_NAMES: Final[tuple[str, ...]] = TABLE_NAMES


class PublishError(RuntimeError):
    """The snapshot could not be built or failed verification; CURRENT was not touched."""


_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}


@dataclass
class PublishResult:
    """What a publish produced, for asset metadata and logs."""

    snapshot_id: str
    folder: Path
    manifest: SnapshotManifest
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def new_snapshot_id(now: datetime | None = None) -> str:
    """A sortable, unique id: UTC time to the microsecond plus a random suffix."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_plan(name: str, duck_type: str) -> tuple[str, str, str]:
    """(SQLite declared type, DuckDB select expression, logical type) for one column.

    Timestamps become ISO 8601 UTC text with a fixed width (so text order is time order),
    dates ISO text, booleans 0/1; nested types are kept as their text form.
    """
    column = _quote(name)
    base = duck_type.upper()
    if base == "TIMESTAMP WITH TIME ZONE":
        expr = f"strftime(timezone('UTC', {column}), '{TIMESTAMP_TEXT_FORMAT}')"
        return "TEXT", expr, "timestamp"
    if base.startswith("TIMESTAMP"):
        return (
            "TEXT",
            f"strftime(cast({column} as timestamp), '{TIMESTAMP_TEXT_FORMAT}')",
            "timestamp",
        )
    if base == "DATE":
        return "TEXT", f"strftime({column}, '{DATE_TEXT_FORMAT}')", "date"
    if base == "BOOLEAN":
        return "INTEGER", f"cast({column} as integer)", "boolean"
    if base in _INTEGER_TYPES:
        return "INTEGER", f"cast({column} as bigint)", "integer"
    if base in _FLOAT_TYPES or base.startswith("DECIMAL"):
        return "REAL", f"cast({column} as double)", "float"
    if base == "VARCHAR":
        return "TEXT", column, "text"
    return "TEXT", f"cast({column} as varchar)", "text"


@contextlib.contextmanager
def _publish_lock(serving_dir: Path) -> Iterator[None]:
    """One publish at a time per serving folder (a second one waits)."""
    serving_dir.mkdir(parents=True, exist_ok=True)
    with open(serving_dir / PUBLISH_LOCK_FILE, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _connect_warehouse(warehouse: Path, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    """Open the warehouse read-only, waiting while a dbt build holds its write lock."""
    if not warehouse.is_file():
        raise PublishError(
            f"{warehouse}: no warehouse; run the dbt assets first (`cdp run`) so the marts exist"
        )
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return duckdb.connect(str(warehouse), read_only=True)
        except duckdb.IOException as exc:
            if time.monotonic() >= deadline:
                raise PublishError(
                    f"{warehouse}: still locked after {wait_seconds:.0f}s ({exc}); is a dbt "
                    "build running? Publish again when it has finished"
                ) from exc
            time.sleep(0.5)


def _warehouse_columns(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, list[str]] | None:
    """(qualified relation, column names) of a mart, preferring schema ``main``; None if absent."""
    rows = con.execute(
        "select table_schema from information_schema.tables where table_name = ? "
        "order by table_schema = 'main' desc, table_schema",
        [table],
    ).fetchall()
    if not rows:
        return None
    relation = f"{_quote(rows[0][0])}.{_quote(table)}"
    columns = [str(row[0]) for row in con.execute(f"describe {relation}").fetchall()]
    return relation, columns


def _declared_relations(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The warehouse relation of every declared table; PublishError lists everything missing.

    Checked before anything is copied, so one message names every table and column the dbt
    project has yet to build, instead of failing on them one publish at a time.
    """
    relations: dict[str, str] = {}
    problems: list[str] = []
    for spec in TABLES:
        found = _warehouse_columns(con, spec.name)
        if found is None:
            problems.append(f"the warehouse has no table '{spec.name}'")
            continue
        relation, columns = found
        declared = [*spec.required, *spec.primary_key, *spec.order_by]
        declared += [column for index in spec.indexes for column in index]
        missing = list(dict.fromkeys(c for c in declared if c not in columns))
        if missing:
            problems.append(
                f"{spec.name}: the warehouse relation lacks columns {missing} that the "
                "snapshot declares (columns the API reads, keys or indexes)"
            )
        relations[spec.name] = relation
    if problems:
        raise PublishError(
            "; ".join(problems) + "; run the dbt marts (`cdp run`) of this platform version "
            "before publishing (snapshots.TABLES declares what the snapshot holds)"
        )
    return relations


class _Builder:
    """Copies warehouse tables from DuckDB into the new SQLite file, table by table."""

    def __init__(self, con: duckdb.DuckDBPyConnection, sqlite_path: Path) -> None:
        self.con = con
        self.sqlite = sqlite3.connect(sqlite_path, isolation_level=None)
        for pragma in (
            "journal_mode = off",
            "synchronous = off",
            "locking_mode = exclusive",
            "temp_store = memory",
            "cache_size = -262144",
            "page_size = 4096",
        ):
            self.sqlite.execute(f"pragma {pragma}")
        self.counts: dict[str, int] = {}
        self.expected: dict[str, int] = {}
        self.columns: dict[str, dict[str, str]] = {}
        self.seconds: dict[str, float] = {}

    def copy(self, spec: TableSpec, relation: str) -> None:
        """Create ``spec.name`` from a warehouse relation, in ``spec.copy_order``."""
        started = time.perf_counter()
        described = self.con.execute(f"describe {relation}").fetchall()
        names = [str(row[0]) for row in described]
        plans = [
            _column_plan(name, str(row[1])) for name, row in zip(names, described, strict=True)
        ]
        self.columns[spec.name] = {n: p[2] for n, p in zip(names, plans, strict=True)}
        definitions = [f"{_quote(n)} {p[0]}" for n, p in zip(names, plans, strict=True)]
        if spec.primary_key:
            definitions.append(f"primary key ({', '.join(map(_quote, spec.primary_key))})")
        suffix = " without rowid" if spec.without_rowid else ""
        self.sqlite.execute(f"create table {_quote(spec.name)} ({', '.join(definitions)}){suffix}")
        projection = ", ".join(f"{p[1]} as {_quote(n)}" for n, p in zip(names, plans, strict=True))
        order = f" order by {', '.join(map(_quote, spec.copy_order))}" if spec.copy_order else ""
        self.expected[spec.name] = int(
            self.con.execute(f"select count(*) from {relation}").fetchone()[0]
        )
        cursor = self.con.execute(f"select {projection} from {relation}{order}")
        insert = f"insert into {_quote(spec.name)} values ({', '.join('?' for _ in names)})"
        copied = 0
        self.sqlite.execute("begin")
        try:
            while batch := cursor.fetchmany(BATCH_ROWS):
                self.sqlite.executemany(insert, batch)
                copied += len(batch)
        except sqlite3.IntegrityError as exc:
            self.sqlite.execute("rollback")
            raise PublishError(
                f"{spec.name}: {exc} (the key {list(spec.primary_key)} must be unique and not "
                "null in the warehouse; the dbt tests of this model should be failing)"
            ) from exc
        self.sqlite.execute("commit")
        self.counts[spec.name] = copied
        self.seconds[spec.name] = round(time.perf_counter() - started, 3)

    def index(self, spec: TableSpec) -> None:
        """Create the secondary indexes of ``spec``."""
        for position, columns in enumerate(spec.indexes):
            name = _quote(f"{spec.name}_ix{position}")
            self.sqlite.execute(
                f"create index {name} on {_quote(spec.name)} ({', '.join(map(_quote, columns))})"
            )

    def finish(self) -> None:
        """Planner statistics, then close."""
        self.sqlite.execute("analyze")
        self.sqlite.close()


def _verify(path: Path, expected: Mapping[str, int], *, integrity: bool) -> None:
    """Reopen the finished file read-only and compare every table's rows with the source."""
    con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        if integrity:
            result = con.execute("pragma quick_check").fetchone()[0]
            if result != "ok":
                raise PublishError(f"{path}: SQLite quick_check failed: {result}")
        problems = []
        for table, rows in expected.items():
            found = con.execute(f"select count(*) from {_quote(table)}").fetchone()[0]
            if found != rows:
                problems.append(f"{table}: {found} rows in the snapshot, {rows} in the source")
        if problems:
            raise PublishError("snapshot verification failed: " + "; ".join(problems))
    finally:
        con.close()


def _make_read_only(folder: Path) -> None:
    read_only = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
    for path in folder.iterdir():
        path.chmod(read_only)


def _delete_snapshot(folder: Path) -> None:
    # Files are read-only; the folder is writable, which is all rmtree needs on POSIX.
    shutil.rmtree(folder)


def prune_snapshots(serving_dir: Path, *, keep: int, lease_ttl_seconds: float) -> list[str]:
    """Delete snapshots beyond the newest ``keep`` unless CURRENT or a live lease names them."""
    serving_dir = Path(serving_dir)
    deleted = []
    for snapshot_id in prunable_snapshots(
        serving_dir, keep=keep, lease_ttl_seconds=lease_ttl_seconds
    ):
        _delete_snapshot(snapshot_folder(serving_dir, snapshot_id))
        deleted.append(snapshot_id)
    return deleted


def _identifier_types(database: Path) -> list[str]:
    con = sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return [
            row[0]
            for row in con.execute(
                "select distinct identifier_type from customer_identifiers order by identifier_type"
            )
        ]
    finally:
        con.close()


def _build(
    warehouse: Path, database: Path, *, wait_seconds: float, started: float
) -> tuple[_Builder, dict[str, float]]:
    """Copy and index every declared table into ``database``; the builder holds the counts."""
    seconds: dict[str, float] = {}
    con = _connect_warehouse(warehouse, wait_seconds)
    try:
        relations = _declared_relations(con)
        builder = _Builder(con, database)
        try:
            for spec in TABLES:
                builder.copy(spec, relations[spec.name])
            seconds["copy"] = round(time.perf_counter() - started, 3)
            for spec in TABLES:
                builder.index(spec)
            builder.finish()
        except BaseException:
            builder.sqlite.close()
            raise
    finally:
        con.close()
    seconds["index"] = round(time.perf_counter() - started - seconds["copy"], 3)
    return builder, seconds


def publish_snapshot(
    warehouse: Path,
    serving_dir: Path,
    *,
    identity_settings: IdentitySettings | None = None,
    as_of: date | None = None,
    keep: int = 3,
    lease_ttl_seconds: float = 120.0,
    verify_integrity: bool = True,
    now: datetime | None = None,
    warehouse_wait_seconds: float = WAREHOUSE_LOCK_WAIT_SECONDS,
) -> PublishResult:
    """Build, verify and switch to a new snapshot; CURRENT changes only if all checks pass.

    Args:
        warehouse: the dbt DuckDB file (opened read-only).
        serving_dir: ``CDP_HOME/serving``.
        identity_settings: the settings identity ran with; the API normalizes lookups with
            the same phone region and blocklist.
        as_of: the run's as-of date, recorded in the manifest.
        keep: snapshots to keep (CURRENT included); older unleased ones are deleted.
        lease_ttl_seconds: how long an API's lease protects a snapshot it holds.
        verify_integrity: run SQLite's quick_check on the finished file.
        now: the publish time (tests pin it).
        warehouse_wait_seconds: how long to wait for a dbt build's write lock.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1 (the current snapshot)")
    started = time.perf_counter()
    created_at = (now or datetime.now(UTC)).astimezone(UTC)
    snapshot_id = new_snapshot_id(created_at)
    serving_dir = Path(serving_dir)
    settings = identity_settings or IdentitySettings()
    with _publish_lock(serving_dir):
        for leftover in serving_dir.glob(f"{BUILD_PREFIX}*"):
            # An interrupted build (the lock is ours, so nobody is writing it): never published.
            shutil.rmtree(leftover, ignore_errors=True)
        staging = serving_dir / f"{BUILD_PREFIX}{snapshot_id}"
        staging.mkdir(parents=True)
        try:
            database = staging / DATABASE_FILE
            builder, seconds = _build(
                Path(warehouse), database, wait_seconds=warehouse_wait_seconds, started=started
            )
            mismatched = {
                t: (builder.counts[t], n)
                for t, n in builder.expected.items()
                if builder.counts.get(t) != n
            }
            if mismatched:
                raise PublishError(f"rows copied differ from the source: {mismatched}")
            check_started = time.perf_counter()
            _verify(database, builder.expected, integrity=verify_integrity)
            seconds["verify"] = round(time.perf_counter() - check_started, 3)
            manifest = SnapshotManifest(
                format_version=FORMAT_VERSION,
                snapshot_id=snapshot_id,
                created_at=created_at,
                as_of=as_of,
                warehouse=str(Path(warehouse).resolve()),
                database=DATABASE_FILE,
                tables=dict(builder.expected),
                columns=builder.columns,
                identifier_types=_identifier_types(database),
                size_bytes=database.stat().st_size,
                build_seconds=round(time.perf_counter() - started, 3),
                identity_settings=settings.model_dump(
                    mode="json", include=set(NORMALIZATION_SETTINGS)
                ),
            )
            write_manifest(staging, manifest)
            _make_read_only(staging)
            folder = snapshot_folder(serving_dir, snapshot_id)
            os.rename(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            read_manifest(folder)
        except SnapshotError as exc:
            raise PublishError(f"the new snapshot's manifest does not read back: {exc}") from exc
        write_current(serving_dir, snapshot_id)
        deleted = prune_snapshots(serving_dir, keep=keep, lease_ttl_seconds=lease_ttl_seconds)
    seconds["total"] = round(time.perf_counter() - started, 3)
    seconds.update({f"copy_{table}": value for table, value in builder.seconds.items()})
    logger.info(
        "published snapshot %s (%s MB, %.1fs); deleted %s",
        snapshot_id,
        round(manifest.size_bytes / 1e6, 1),
        seconds["total"],
        deleted or "nothing",
    )
    return PublishResult(
        snapshot_id=snapshot_id,
        folder=folder,
        manifest=manifest,
        deleted=deleted,
        kept=list_snapshots(serving_dir),
        seconds=seconds,
    )
