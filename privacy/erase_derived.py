"""Erasure in the derived stores: serving snapshots, the warehouse, the decision log, the PII
audit log, exports and run artefacts, and (scan only) Dagster's instance storage.

Each class here is a :class:`privacy.stores.Eraser`. They know the person only as a
:class:`Suppression`: every store is read for the distinct values of its identifier columns
(``identifier_columns``: ``email``, ``phone``, ``account_id``, ``customer_id``,
``related_customer_id``, ... and (``identifier_type``, ``identifier_value``) pairs), which are
normalized as identity normalized them and hashed; the rows whose values are in the list go.

Why each store is handled the way it is:

- serving snapshots are immutable (the API holds them open read-only and caches per snapshot),
  so erasure publishes a *new* snapshot: a copy without the person's rows (deleted under
  ``secure_delete``, so their bytes leave the file), its manifest marked ``derived_from`` the
  old one; then CURRENT moves
  and every older snapshot that holds the person is deleted once the API's leases let go of it
  (or after ``lease_wait_seconds``: a lease holder is a request in flight). Aggregate tables
  (``segments.member_count``, ``campaign_metrics``) keep counting the person until the next
  pipeline run rebuilds them from the erased lake;
- the warehouse (DuckDB) frees deleted rows' blocks without zeroing them, so after deleting the
  database is copied into a fresh file (``COPY FROM DATABASE``) that replaces the old one;
- the decision log keeps counts (caps, experiment tallies, placement counts): its rows are
  pseudonymized, ``erased:<16 hex>`` per customer id (the digest of that id's keyed hash, so
  the same id always gets the same pseudonym), never deleted; so is its Parquet export;
- the PII audit log must keep *that* a person's data was revealed, not who: their
  ``customer_id`` becomes its keyed hash;
- exports and run artefacts are files for other systems: matching records are dropped;
- Dagster's storage is scanned only (the ingest assets mask previews; runs are Dagster's).

Nothing here logs or returns a personal value: outcomes hold counts and file or table names.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from decisions.store import EXPORT_TABLES, DecisionStore, default_store_path
from events.fold import fsync_dir, write_atomic, write_parquet_atomic
from events.outbox import transaction
from privacy.stores import EraseOutcome, Eraser, ScanOutcome
from privacy.suppression import (
    CUSTOMER_ID_TYPE,
    PSEUDONYM_PREFIX,
    Normalize,
    Suppression,
    identifier_columns,
    memoized,
    store_normalizer,
)
from snapshots import (
    ALIAS_IDENTIFIER_TYPE,
    BUILD_PREFIX,
    DATABASE_FILE,
    PUBLISH_LOCK_FILE,
    SnapshotError,
    SnapshotManifest,
    leased_snapshots,
    list_snapshots,
    read_current,
    read_manifest,
    snapshot_folder,
    write_current,
    write_manifest,
)

logger = logging.getLogger(__name__)

#: How long erasure waits for API processes to release an old snapshot before deleting it.
LEASE_WAIT_SECONDS: Final[float] = 30.0
#: How old a lease may be and still protect a snapshot (the publisher's default).
LEASE_TTL_SECONDS: Final[float] = 120.0
#: How long the warehouse eraser waits for a pipeline run's write lock.
WAREHOUSE_WAIT_SECONDS: Final[float] = 120.0
#: Where the decision log's Parquet export lives under CDP_HOME.
DECISION_EXPORT_DIR: Final[str] = "lake/_decisions"
#: Text files an exports/runs eraser reads line by line.
TEXT_SUFFIXES: Final[frozenset[str]] = frozenset(
    {".csv", ".jsonl", ".ndjson", ".json", ".txt", ".log", ".tsv", ".sql", ".yml", ".yaml"}
)
#: Values per ``in (...)`` list in SQLite statements (below its variable limit).
_CHUNK: Final[int] = 500
#: The (type, value) column pair of identifier tables (snapshot and warehouse alike).
_PAIR: Final[tuple[str, str]] = ("identifier_type", "identifier_value")


class ErasureStoreError(RuntimeError):
    """A store could not be erased (locked, unreadable); the message says what to do."""


# --- shared helpers -------------------------------------------------------------------------


def _literal(text: str) -> str:
    """A SQL string literal (ATTACH takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _normalize_for(kind: str, normalize: Normalize) -> Normalize | None:
    """Customer ids are hashed as stored (stripped); everything else as identity normalizes."""
    return None if kind in (CUSTOMER_ID_TYPE, ALIAS_IDENTIFIER_TYPE) else normalize


def _pair_matches(person: Suppression, kind: Any, value: Any, normalize: Normalize) -> bool:
    """Whether an (identifier_type, identifier_value) pair names the person."""
    if kind is None or value is None:
        return False
    kind, text = str(kind), str(value)
    if kind == ALIAS_IDENTIFIER_TYPE:
        return person.matches(CUSTOMER_ID_TYPE, text.strip())
    if person.matches(kind, text):
        return True
    normalized = normalize(kind, text)[0] if kind in person.types else None
    return normalized is not None and person.matches(kind, str(normalized))


class _ValueMatcher:
    """Which raw values name the person, each distinct (type, value) normalized and hashed
    once per erasure: the same customer ids and identifiers repeat in dozens of tables, and
    set algebra across them keeps the per-value Python work to the new values (measured on the
    100k warehouse: the scan went from 64 s, hashing per table, to the time DuckDB needs)."""

    def __init__(self, person: Suppression, normalize: Normalize) -> None:
        self.person = person
        self.normalize = normalize
        self.seen: dict[str, set[Any]] = {}
        self.hit: dict[str, set[Any]] = {}
        self.pairs_seen: set[tuple[Any, Any]] = set()
        self.pairs_hit: set[tuple[Any, Any]] = set()

    def values(self, kind: str, values: Iterable[Any]) -> set[Any]:
        """The values (as given) of type ``kind`` that name the person."""
        given = set(values)
        given.discard(None)
        seen = self.seen.setdefault(kind, set())
        hit = self.hit.setdefault(kind, set())
        new = given - seen
        if new:
            hit |= self.person.matching_values(kind, new, _normalize_for(kind, self.normalize))
            seen |= new
        return given & hit

    def pairs(self, pairs: Iterable[tuple[Any, Any]]) -> set[tuple[Any, Any]]:
        """The (identifier_type, identifier_value) pairs that name the person."""
        given = set(pairs)
        new = given - self.pairs_seen
        if new:
            self.pairs_hit |= {
                pair for pair in new if _pair_matches(self.person, pair[0], pair[1], self.normalize)
            }
            self.pairs_seen |= new
        return given & self.pairs_hit


def table_mask(table: pa.Table, person: Suppression, normalize: Normalize) -> pa.BooleanArray:
    """Rows of an Arrow table that name the person: identifier columns (customer ids as
    stored, other types normalized) and (identifier_type, identifier_value) pairs."""
    columns = identifier_columns(table.column_names, person.types)
    mask = person.row_mask(
        table,
        {c: k for c, k in columns.items() if k != CUSTOMER_ID_TYPE},
        normalize,
    )
    ids = {c: k for c, k in columns.items() if k == CUSTOMER_ID_TYPE}
    if ids:
        mask = pc.or_(mask, person.row_mask(table, ids, None))
    if all(name in table.column_names for name in _PAIR) and table.num_rows:
        kinds = table.column(_PAIR[0]).to_pylist()
        values = table.column(_PAIR[1]).to_pylist()
        pairs = {
            pair
            for pair in set(zip(kinds, values, strict=True))
            if _pair_matches(person, pair[0], pair[1], normalize)
        }
        if pairs:
            hit = pa.array([pair in pairs for pair in zip(kinds, values, strict=True)])
            mask = pc.or_(mask, hit)
    return mask


# --- serving snapshots ----------------------------------------------------------------------


@contextlib.contextmanager
def _publish_lock(serving_dir: Path) -> Iterator[None]:
    """The publisher's lock (``dagster_project.lib.publish``): one writer of serving/ at a time,
    so a pipeline publish and an erasure never race for CURRENT."""
    serving_dir.mkdir(parents=True, exist_ok=True)
    with open(serving_dir / PUBLISH_LOCK_FILE, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _new_snapshot_id(now: datetime) -> str:
    """The publisher's id format (sortable time, random suffix): newest sorts last."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    return [
        str(r[0])
        for r in conn.execute(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' "
            "order by name"
        ).fetchall()
    ]


def _sqlite_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f"pragma table_info({_quote(table)})").fetchall()]


@dataclass(frozen=True)
class _Where:
    """One condition selecting a person's rows: ``sql`` with its parameters."""

    sql: str
    params: tuple[Any, ...]


def _sqlite_person_rows(
    conn: sqlite3.Connection, table: str, matcher: _ValueMatcher
) -> list[_Where]:
    """Conditions matching the person's rows of one SQLite table (empty: none)."""
    columns = _sqlite_columns(conn, table)
    found: list[_Where] = []
    for column, kind in identifier_columns(columns, matcher.person.types).items():
        values = [
            r[0]
            for r in conn.execute(
                f"select distinct {_quote(column)} from {_quote(table)} "
                f"where {_quote(column)} is not null"
            ).fetchall()
        ]
        hits = sorted(matcher.values(kind, values), key=str)
        for chunk in _chunks(hits):
            found.append(
                _Where(f"{_quote(column)} in ({', '.join('?' * len(chunk))})", tuple(chunk))
            )
    if all(name in columns for name in _PAIR):
        pairs = conn.execute(
            f"select distinct identifier_type, identifier_value from {_quote(table)}"
        ).fetchall()
        for kind, value in sorted(matcher.pairs(pairs), key=str):
            found.append(_Where("identifier_type = ? and identifier_value = ?", (kind, value)))
    return found


def _sqlite_count(conn: sqlite3.Connection, table: str, wheres: Sequence[_Where]) -> int:
    if not wheres:
        return 0
    sql = " or ".join(f"({w.sql})" for w in wheres)
    params = [p for w in wheres for p in w.params]
    if len(params) > 30_000:  # one count per condition, rows may be counted twice: an upper bound
        return sum(
            int(
                conn.execute(
                    f"select count(*) from {_quote(table)} where {w.sql}", w.params
                ).fetchone()[0]
            )
            for w in wheres
        )
    return int(
        conn.execute(f"select count(*) from {_quote(table)} where {sql}", params).fetchone()[0]
    )


def _snapshot_conditions(database: Path, matcher: _ValueMatcher) -> dict[str, list[_Where]]:
    """Per table of one snapshot database, the conditions selecting the person's rows."""
    conn = sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        found = {}
        for table in _sqlite_tables(conn):
            wheres = _sqlite_person_rows(conn, table, matcher)
            if wheres:
                found[table] = wheres
        return found
    finally:
        conn.close()


def _scan_snapshot(database: Path, matcher: _ValueMatcher) -> dict[str, int]:
    """Rows per table of one snapshot database that name the person."""
    conditions = _snapshot_conditions(database, matcher)
    if not conditions:
        return {}
    conn = sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        counts = {table: _sqlite_count(conn, table, w) for table, w in conditions.items()}
        return {table: count for table, count in counts.items() if count}
    finally:
        conn.close()


class ServingEraser:
    """Every serving snapshot: publish a copy without the person, then delete the old ones."""

    name = "serving"

    def __init__(
        self,
        home: Path,
        normalize: Normalize | None = None,
        *,
        lease_wait_seconds: float = LEASE_WAIT_SECONDS,
        lease_ttl_seconds: float = LEASE_TTL_SECONDS,
    ) -> None:
        self.home = Path(home)
        self.serving_dir = self.home / "serving"
        self.normalize = memoized(normalize or store_normalizer(self.home))
        self.lease_wait_seconds = lease_wait_seconds
        self.lease_ttl_seconds = lease_ttl_seconds

    def related(self, person: Suppression) -> dict[str, str]:
        """Nothing: the snapshot's ids and identifiers come from identity, which names them."""
        return {}

    def _database(self, snapshot_id: str) -> Path:
        folder = snapshot_folder(self.serving_dir, snapshot_id)
        return folder / read_manifest(folder).database

    def scan(self, suppression: Suppression) -> ScanOutcome:
        """Rows naming the list in every published snapshot (old ones count: they must go)."""
        remaining = 0
        where: list[str] = []
        if not suppression:
            return ScanOutcome()
        matcher = _ValueMatcher(suppression, self.normalize)
        for snapshot_id in list_snapshots(self.serving_dir):
            try:
                counts = _scan_snapshot(self._database(snapshot_id), matcher)
            except (OSError, SnapshotError, sqlite3.Error) as exc:
                raise ErasureStoreError(f"snapshot {snapshot_id} unreadable: {exc}") from exc
            for table, count in counts.items():
                remaining += count
                where.append(f"serving/{snapshot_id}:{table}")
        return ScanOutcome(remaining, tuple(where))

    def erase(self, person: Suppression) -> EraseOutcome:
        """A new snapshot without the person, CURRENT switched to it, older ones deleted."""
        if read_current(self.serving_dir) is None:
            return EraseOutcome(absent=True, notes=("no snapshot published",))
        if not person:
            return EraseOutcome()
        removed: dict[str, int] = {}
        notes: list[str] = []
        with _publish_lock(self.serving_dir):
            for leftover in self.serving_dir.glob(f"{BUILD_PREFIX}*"):
                shutil.rmtree(leftover, ignore_errors=True)  # an abandoned build: the lock is ours
            current = read_current(self.serving_dir)
            assert current is not None
            matcher = _ValueMatcher(person, self.normalize)
            # the copy holds the same rows: the conditions found here delete them there
            conditions = _snapshot_conditions(self._database(current), matcher)
            if conditions:
                new_id, removed = self._derive(current, conditions)
                notes.append(f"published snapshot {new_id} derived from {current}")
                notes.append(
                    "aggregate tables (segments.member_count, campaign_metrics) count the person "
                    "until the next pipeline run rebuilds them"
                )
                current = new_id
            stale = []
            for snapshot_id in list_snapshots(self.serving_dir):
                if snapshot_id == current:
                    continue
                try:
                    held = _scan_snapshot(self._database(snapshot_id), matcher)
                except (OSError, SnapshotError, sqlite3.Error):
                    held = {"unreadable": 1}  # cannot prove it clean: it goes too
                if held:
                    stale.append(snapshot_id)
            if stale:
                waited = self._wait_for_leases(stale)
                for snapshot_id in stale:
                    shutil.rmtree(snapshot_folder(self.serving_dir, snapshot_id))
                removed["snapshots deleted"] = len(stale)
                notes.append(
                    f"deleted {len(stale)} older snapshot(s)"
                    + (f" after waiting {waited:.1f}s for readers" if waited else "")
                )
        return EraseOutcome(removed=removed, notes=tuple(notes))

    def _wait_for_leases(self, snapshot_ids: Collection[str]) -> float:
        """Wait until no live lease names ``snapshot_ids`` (API processes move to the new
        CURRENT and let the old one go when its last request ends), at most the wait."""
        started = time.monotonic()
        wanted = set(snapshot_ids)
        while wanted & leased_snapshots(self.serving_dir, self.lease_ttl_seconds):
            if time.monotonic() - started >= self.lease_wait_seconds:
                logger.warning(
                    "serving erasure: readers still hold %s old snapshot(s) after %.0fs; "
                    "deleting them anyway (their open requests keep reading the unlinked file)",
                    len(wanted & leased_snapshots(self.serving_dir, self.lease_ttl_seconds)),
                    self.lease_wait_seconds,
                )
                break
            time.sleep(0.1)
        return round(time.monotonic() - started, 2) if wanted else 0.0

    def _derive(
        self, source_id: str, conditions: dict[str, list[_Where]]
    ) -> tuple[str, dict[str, int]]:
        """Copy ``source_id`` without the person's rows, publish it, point CURRENT at it."""
        started = time.perf_counter()
        source_folder = snapshot_folder(self.serving_dir, source_id)
        manifest = read_manifest(source_folder)
        created_at = datetime.now(UTC)
        new_id = _new_snapshot_id(created_at)
        staging = self.serving_dir / f"{BUILD_PREFIX}{new_id}"
        staging.mkdir(parents=True)
        removed: dict[str, int] = {}
        try:
            database = staging / DATABASE_FILE
            shutil.copyfile(source_folder / manifest.database, database)
            database.chmod(0o600)
            conn = sqlite3.connect(database, isolation_level=None)
            try:
                # secure_delete zeroes deleted cells and freed pages, so the person's bytes
                # leave the file without a VACUUM (which rewrites all of it: 40 s on the 100k
                # world's 1.6 GB snapshot); no journal: a failed copy is thrown away whole
                conn.execute("pragma secure_delete = on")
                conn.execute("pragma journal_mode = off")
                with transaction(conn):
                    for table, wheres in conditions.items():
                        deleted = 0
                        for where in wheres:
                            deleted += conn.execute(
                                f"delete from {_quote(table)} where {where.sql}", where.params
                            ).rowcount
                        if deleted:
                            removed[table] = deleted
                # the publisher counted the source; the copy lacks exactly what was deleted
                tables = {
                    table: rows - removed.get(table, 0) for table, rows in manifest.tables.items()
                }
                types = [
                    kind
                    for kind in manifest.identifier_types
                    if "customer_identifiers" not in manifest.tables
                    or conn.execute(
                        "select 1 from customer_identifiers where identifier_type = ? limit 1",
                        (kind,),
                    ).fetchone()
                    is not None
                ]
            finally:
                conn.close()
            derived = SnapshotManifest.model_validate(
                {
                    **manifest.model_dump(),
                    "snapshot_id": new_id,
                    "created_at": created_at,
                    "tables": tables,
                    "identifier_types": types,
                    "size_bytes": database.stat().st_size,
                    "build_seconds": round(time.perf_counter() - started, 3),
                    "derived_from": source_id,
                    "derivation": "erasure",
                }
            )
            write_manifest(staging, derived)
            with open(database, "rb") as handle:
                os.fsync(handle.fileno())
            for path in staging.iterdir():
                path.chmod(0o444)
            folder = snapshot_folder(self.serving_dir, new_id)
            os.rename(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        read_manifest(folder)
        write_current(self.serving_dir, new_id)
        logger.info(
            "erasure: published snapshot %s derived from %s (%s rows removed)",
            new_id,
            source_id,
            sum(removed.values()),
        )
        return new_id, removed


# --- the warehouse --------------------------------------------------------------------------


def _duck_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """(catalog, schema, table) of every base table of the warehouse (views skipped)."""
    rows = con.execute(
        "select table_catalog, table_schema, table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and table_catalog = current_database() "
        "order by table_schema, table_name"
    ).fetchall()
    return [(str(c), str(s), str(t)) for c, s, t in rows]


def _duck_person_rows(
    con: duckdb.DuckDBPyConnection, relation: str, matcher: _ValueMatcher
) -> list[_Where]:
    """Conditions matching the person's rows of one warehouse table (empty: none)."""
    columns = [str(r[0]) for r in con.execute(f"describe {relation}").fetchall()]
    found: list[_Where] = []
    for column, kind in identifier_columns(columns, matcher.person.types).items():
        values = [
            r[0]
            for r in con.execute(
                f"select distinct cast({_quote(column)} as varchar) from {relation} "
                f"where {_quote(column)} is not null"
            ).fetchall()
        ]
        hits = sorted(matcher.values(kind, values))
        if hits:
            found.append(
                _Where(f"cast({_quote(column)} as varchar) in (select unnest(?))", (hits,))
            )
    if all(name in columns for name in _PAIR):
        pairs = con.execute(
            f"select distinct cast(identifier_type as varchar), cast(identifier_value as varchar) "
            f"from {relation}"
        ).fetchall()
        for kind, value in sorted(matcher.pairs(pairs)):
            found.append(
                _Where(
                    "cast(identifier_type as varchar) = ? "
                    "and cast(identifier_value as varchar) = ?",
                    (kind, value),
                )
            )
    return found


class WarehouseEraser:
    """``CDP_HOME/warehouse.duckdb``: delete the person's rows from every table, then rewrite
    the file so the freed blocks (which DuckDB does not zero) leave it."""

    name = "warehouse"

    def __init__(
        self,
        home: Path,
        normalize: Normalize | None = None,
        *,
        wait_seconds: float = WAREHOUSE_WAIT_SECONDS,
    ) -> None:
        self.home = Path(home)
        self.path = self.home / "warehouse.duckdb"
        self.normalize = memoized(normalize or store_normalizer(self.home))
        self.wait_seconds = wait_seconds

    def related(self, person: Suppression) -> dict[str, str]:
        """Nothing beyond what the lake links (orders are the lake's)."""
        return {}

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():  # a damaged file: waiting will not help
                    raise ErasureStoreError(f"{self.path}: cannot be opened: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise ErasureStoreError(
                        f"{self.path}: still locked after {self.wait_seconds:.0f}s ({exc}); a "
                        "pipeline run (dbt) holds it: erase again when the run has finished"
                    ) from exc
                time.sleep(0.5)

    def scan(self, suppression: Suppression) -> ScanOutcome:
        """Rows naming the list in every warehouse table."""
        if not self.path.is_file() or not suppression:
            return ScanOutcome()
        con = self._connect(read_only=True)
        try:
            remaining = 0
            where: list[str] = []
            matcher = _ValueMatcher(suppression, self.normalize)
            for _catalog, schema, table in _duck_tables(con):
                relation = f"{_quote(schema)}.{_quote(table)}"
                conditions = _duck_person_rows(con, relation, matcher)
                if not conditions:
                    continue
                count = int(
                    con.execute(
                        f"select count(*) from {relation} where "
                        + " or ".join(f"({c.sql})" for c in conditions),
                        [p for c in conditions for p in c.params],
                    ).fetchone()[0]
                )
                if count:
                    remaining += count
                    where.append(f"warehouse:{schema}.{table}")
            return ScanOutcome(remaining, tuple(where))
        finally:
            con.close()

    def erase(self, person: Suppression) -> EraseOutcome:
        """Delete every row naming the person; then copy the database into a fresh file."""
        if not self.path.is_file():
            return EraseOutcome(absent=True)
        if not person:
            return EraseOutcome()
        removed: dict[str, int] = {}
        con = self._connect(read_only=False)
        try:
            matcher = _ValueMatcher(person, self.normalize)
            con.execute("begin transaction")
            try:
                for _catalog, schema, table in _duck_tables(con):
                    relation = f"{_quote(schema)}.{_quote(table)}"
                    deleted = 0
                    for condition in _duck_person_rows(con, relation, matcher):
                        row = con.execute(
                            f"delete from {relation} where {condition.sql}",
                            list(condition.params),
                        ).fetchone()
                        deleted += int(row[0]) if row else 0
                    if deleted:
                        removed[f"{schema}.{table}"] = deleted
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
            con.execute("checkpoint")
        finally:
            con.close()
        notes: tuple[str, ...] = ()
        if removed:
            self._compact()
            notes = ("warehouse rewritten into a fresh file (freed blocks dropped)",)
        return EraseOutcome(removed=removed, notes=notes)

    def _compact(self) -> None:
        """``COPY FROM DATABASE`` into a new file beside it, then replace the old file."""
        fresh = self.path.with_name(f".{self.path.name}.erase-{os.getpid()}")
        for stale in (fresh, fresh.with_name(fresh.name + ".wal")):
            stale.unlink(missing_ok=True)
        con = self._connect(read_only=False)
        try:
            con.execute("attach " + _literal(str(fresh)) + " as erased_copy")
            try:
                source = str(con.execute("select current_database()").fetchone()[0])
                con.execute(f"copy from database {_quote(source)} to erased_copy")
                con.execute("checkpoint erased_copy")
            finally:
                con.execute("detach erased_copy")
            mode = self.path.stat().st_mode & 0o777
            os.chmod(fresh, mode)
            with open(fresh, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(fresh, self.path)
            self.path.with_name(self.path.name + ".wal").unlink(missing_ok=True)
            fsync_dir(self.path.parent)
        except BaseException:
            fresh.unlink(missing_ok=True)
            raise
        finally:
            con.close()


# --- the decision log -----------------------------------------------------------------------

_DECISION_TABLES: Final[tuple[str, ...]] = ("choices", "deliveries", "outcomes", "consent_events")


class DecisionsEraser:
    """The decision log and its Parquet export: the person's rows pseudonymized, so every
    count (caps, experiment arms, placements) survives without naming them."""

    name = "decisions"

    def __init__(self, home: Path, normalize: Normalize | None = None) -> None:
        self.home = Path(home)
        self.path = default_store_path(self.home)
        self.export_dir = self.home / DECISION_EXPORT_DIR
        self.normalize = memoized(normalize or store_normalizer(self.home))

    def related(self, person: Suppression) -> dict[str, str]:
        """Nothing: the log is keyed by customer ids only."""
        return {}

    def _log_ids(self, store: DecisionStore) -> set[str]:
        ids: set[str] = set()
        for table in _DECISION_TABLES:
            ids.update(
                str(r[0])
                for r in store.conn.execute(f"select distinct customer_id from {table}").fetchall()
            )
        return {i for i in ids if not i.startswith(PSEUDONYM_PREFIX)}

    def _export_hits(self, person: Suppression) -> dict[str, dict[str, int]]:
        """Per exported table and day, the rows of its file under one of the person's ids
        (an unreadable file counts 1: it is rewritten from the log, which repairs it)."""
        hits: dict[str, dict[str, int]] = {}
        for table in EXPORT_TABLES:
            folder = self.export_dir / table
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.parquet")):
                if path.name.startswith("."):
                    continue
                try:
                    ids = pq.read_table(path, columns=["customer_id"]).column(0)
                except (OSError, pa.ArrowInvalid, KeyError):
                    hits.setdefault(table, {})[path.stem] = 1
                    continue
                values = [v for v in pc.unique(ids).to_pylist() if v]
                found = person.matching_values(CUSTOMER_ID_TYPE, values)
                if found:
                    rows = pc.sum(pc.is_in(ids, pa.array(sorted(found)))).as_py()
                    hits.setdefault(table, {})[path.stem] = int(rows or 0)
        return hits

    def scan(self, suppression: Suppression) -> ScanOutcome:
        """Log rows and export rows under one of the list's customer ids."""
        if not suppression:
            return ScanOutcome()
        remaining = 0
        where: list[str] = []
        if self.path.is_file():
            with DecisionStore.open(self.path) as store:
                ids = sorted(suppression.matching_values(CUSTOMER_ID_TYPE, self._log_ids(store)))
                for table in _DECISION_TABLES:
                    count = 0
                    for chunk in _chunks(ids):
                        count += int(
                            store.conn.execute(
                                f"select count(*) from {table} where customer_id in "
                                f"({', '.join('?' * len(chunk))})",
                                list(chunk),
                            ).fetchone()[0]
                        )
                    if count:
                        remaining += count
                        where.append(f"decision log:{table}")
        for table, days in self._export_hits(suppression).items():
            for day, rows in sorted(days.items()):
                remaining += rows
                where.append(f"{DECISION_EXPORT_DIR}/{table}/{day}.parquet")
        return ScanOutcome(remaining, tuple(where))

    def erase(self, person: Suppression) -> EraseOutcome:
        """Pseudonymize the person's rows in one transaction, then their export days."""
        if not self.path.is_file():
            return EraseOutcome(absent=True)
        if not person:
            return EraseOutcome()
        with DecisionStore.open(self.path) as store:
            pseudonyms = {}
            for customer_id in self._log_ids(store):
                alias = person.pseudonym(customer_id)
                if alias is not None:
                    pseudonyms[customer_id] = alias
            changed, days = store.pseudonymize(pseudonyms)
            for table, found in self._export_hits(person).items():
                days.setdefault(table, set()).update(found)
            files = store.rewrite_export_days(self.export_dir, days) if days else 0
        removed = {f"{table} pseudonymized": n for table, n in changed.items() if n}
        if files:
            removed["export files rewritten"] = files
        return EraseOutcome(removed=removed)


# --- the PII audit log ----------------------------------------------------------------------


def _rewrite_lines(
    path: Path, process: Callable[[bytes], tuple[bytes | None, bool]]
) -> tuple[int, int]:
    """Rewrite a line file through ``process`` (a line -> its replacement or None to drop,
    and whether it changed), atomically; (lines changed, lines appended while rewriting).

    Writers append with O_APPEND: lines written between the read and the rename land in the
    old inode, so the old file is held open, and what was appended to it after the read is
    processed too and added to the new file before the rename.
    """
    with open(path, "rb") as old:
        data = old.read()
        end = len(data)
        lines = data.splitlines(keepends=True)
        out: list[bytes] = []
        changed = 0
        for line in lines:
            replacement, did = process(line)
            changed += did
            if replacement is not None:
                out.append(replacement)
        if not changed:
            return 0, 0
        mode = path.stat().st_mode & 0o777
        temp = path.with_name(f".{path.name}.erase-{os.getpid()}-{secrets.token_hex(4)}")
        late = 0
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"".join(out))
                # catch up with lines appended since the read (repeat until quiet)
                while True:
                    old.seek(end)
                    extra = old.read()
                    if not extra:
                        break
                    end += len(extra)
                    for line in extra.splitlines(keepends=True):
                        late += 1
                        replacement, did = process(line)
                        changed += did
                        if replacement is not None:
                            handle.write(replacement)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        fsync_dir(path.parent)
        return changed, late


class AuditEraser:
    """``audit/pii-*.jsonl``: a line about the person keeps the keyed hash of their customer
    id instead of the id, so *that* their data was revealed stays on record."""

    name = "audit"

    def __init__(
        self, home: Path, normalize: Normalize | None = None, *, folder: Path | None = None
    ) -> None:
        self.home = Path(home)
        self.folder = folder or self.home / "audit"
        self.normalize = memoized(normalize or store_normalizer(self.home))

    def related(self, person: Suppression) -> dict[str, str]:
        """Nothing: audit lines name customer ids only."""
        return {}

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("pii-*.jsonl") if p.is_file())

    def _process(self, person: Suppression) -> Callable[[bytes], tuple[bytes | None, bool]]:
        def process(line: bytes) -> tuple[bytes | None, bool]:
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                # a torn or foreign line: dropped if it names the person, kept otherwise
                text = line.decode("utf-8", errors="replace")
                return (None, True) if person.text_matches(text, self.normalize) else (line, False)
            if not isinstance(entry, dict):
                return line, False
            customer = entry.get("customer_id")
            found = (
                person.matched_hash(CUSTOMER_ID_TYPE, str(customer).strip())
                if isinstance(customer, str)
                else None
            )
            if found is None:
                return line, False
            entry["customer_id"] = found
            return orjson.dumps(entry) + b"\n", True

        return process

    def scan(self, suppression: Suppression) -> ScanOutcome:
        """Lines whose customer id (or any identifier in their text) is in the list."""
        remaining = 0
        where: list[str] = []
        if not suppression:
            return ScanOutcome()
        process = self._process(suppression)
        for path in self._files():
            count = 0
            with open(path, "rb") as handle:
                for line in handle:
                    if process(line)[1] or suppression.text_matches(
                        line.decode("utf-8", errors="replace"), self.normalize
                    ):
                        count += 1
            if count:
                remaining += count
                where.append(f"audit/{path.name}")
        return ScanOutcome(remaining, tuple(where))

    def erase(self, person: Suppression) -> EraseOutcome:
        """Replace the person's customer id by its keyed hash in every audit file."""
        files = self._files()
        if not files:
            return EraseOutcome(absent=not self.folder.is_dir())
        if not person:
            return EraseOutcome()
        changed = 0
        rewritten = 0
        late = 0
        for path in files:
            lines, appended = _rewrite_lines(path, self._process(person))
            changed += lines
            late += appended
            rewritten += bool(lines)
        removed = {"lines hashed": changed} if changed else {}
        if rewritten:
            removed["files rewritten"] = rewritten
        notes = (f"{late} line(s) appended during the rewrite were processed too",) if late else ()
        return EraseOutcome(removed=removed, notes=notes)


def text_names(text: str, person: Suppression, normalize: Normalize) -> bool:
    """Whether free text names the person (:meth:`Suppression.text_names`, the fast form)."""
    return person.text_names(text, normalize)


# --- exports and run artefacts --------------------------------------------------------------


def _text_file(path: Path) -> bool:
    return path.suffix.lower() in TEXT_SUFFIXES


class _FileTreeEraser:
    """Files under some folders of CDP_HOME: records naming the person are dropped.

    Text files (CSV, JSON lines, logs) by line, keeping a CSV's header line; a ``.json`` file
    that is one document cannot lose a line, so it is deleted when it names the person;
    Parquet files by row (identifier columns); other files are read as text and deleted when
    they name the person (they cannot be rewritten record by record).
    """

    name = "files"
    folders: tuple[str, ...] = ()

    def __init__(self, home: Path, normalize: Normalize | None = None) -> None:
        self.home = Path(home)
        self.normalize = memoized(normalize or store_normalizer(self.home))

    def related(self, person: Suppression) -> dict[str, str]:
        """Nothing: exports repeat identifiers the other stores hold."""
        return {}

    def _roots(self) -> list[Path]:
        return [self.home / f for f in self.folders if (self.home / f).is_dir()]

    def _files(self) -> Iterator[Path]:
        for root in self._roots():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink() and ".erase-" not in path.name:
                    yield path

    def _where(self, path: Path) -> str:
        return str(path.relative_to(self.home))

    def _file_hits(self, path: Path, person: Suppression) -> tuple[int, bool]:
        """(records naming the person, whether the file is line-rewritable)."""
        if path.suffix == ".parquet":
            try:
                table = pq.read_table(path)
            except (OSError, pa.ArrowInvalid):
                return self._raw_hits(path, person), False
            return int(pc.sum(table_mask(table, person, self.normalize)).as_py() or 0), True
        text = path.read_bytes().decode("utf-8", errors="replace")
        if not text_names(text, person, self.normalize):
            return 0, _text_file(path) and path.suffix != ".json"
        if _text_file(path) and path.suffix != ".json":
            count = sum(
                1 for line in text.splitlines() if person.text_matches(line, self.normalize)
            )
            return count, True
        return person.text_matches(text, self.normalize), False

    def _raw_hits(self, path: Path, person: Suppression) -> int:
        text = path.read_bytes().decode("utf-8", errors="replace")
        return person.text_matches(text, self.normalize)

    def scan(self, suppression: Suppression) -> ScanOutcome:
        """Records (lines, rows, or matches in a whole file) naming the list."""
        if not suppression:
            return ScanOutcome()
        remaining = 0
        where: list[str] = []
        for path in self._files():
            count, _ = self._file_hits(path, suppression)
            if count:
                remaining += count
                where.append(self._where(path))
        return ScanOutcome(remaining, tuple(where))

    def erase(self, person: Suppression) -> EraseOutcome:
        """Drop the person's records from every file (atomic rewrites)."""
        roots = self._roots()
        if not roots:
            return EraseOutcome(absent=True)
        if not person:
            return EraseOutcome()
        removed: dict[str, int] = {}
        deleted = rewritten = 0
        for path in self._files():
            count, rewritable = self._file_hits(path, person)
            if not count:
                continue
            if not rewritable:
                path.unlink()
                deleted += 1
                removed["files deleted"] = deleted
                continue
            if path.suffix == ".parquet":
                table = pq.read_table(path)
                mask = table_mask(table, person, self.normalize)
                write_parquet_atomic(path, table.filter(pc.invert(mask)))
                dropped = int(pc.sum(mask).as_py() or 0)
            else:
                dropped = self._rewrite_text(path, person)
            rewritten += 1
            removed["records dropped"] = removed.get("records dropped", 0) + dropped
        if rewritten:
            removed["files rewritten"] = rewritten
        return EraseOutcome(removed=removed)

    def _rewrite_text(self, path: Path, person: Suppression) -> int:
        """Drop matching lines (a CSV keeps its header; a record spanning lines in a quoted
        field is dropped with every line of it)."""
        data = path.read_bytes()
        if path.suffix.lower() in (".csv", ".tsv"):
            records = _csv_records(data)
        else:
            records = data.splitlines(keepends=True)
        kept: list[bytes] = []
        dropped = 0
        for index, record in enumerate(records):
            text = record.decode("utf-8", errors="replace")
            is_header = index == 0 and path.suffix.lower() in (".csv", ".tsv")
            if not is_header and person.text_matches(text, self.normalize):
                dropped += 1
                continue
            kept.append(record)
        write_atomic(path, b"".join(kept))
        return dropped


def _csv_records(data: bytes) -> list[bytes]:
    """A CSV file's records as raw byte spans (a quoted field may hold line breaks)."""
    records: list[bytes] = []
    start = 0
    quoted = False
    index = 0
    length = len(data)
    while index < length:
        byte = data[index]
        if byte == 0x22:  # "
            quoted = not quoted
        elif byte == 0x0A and not quoted:
            records.append(data[start : index + 1])
            start = index + 1
        index += 1
    if start < length:
        records.append(data[start:])
    return records


class ExportsEraser(_FileTreeEraser):
    """``exports/`` (batch decision exports for channels, the demo webhook receiver's files)
    and ``runs/`` (per-run artefacts: dbt results, identity evaluation files)."""

    name = "exports"
    folders = ("exports", "runs")


# --- Dagster's instance storage -------------------------------------------------------------


class DagsterStorageScan:
    """``CDP_HOME/dagster/``: run and event-log storage, scanned but never rewritten.

    Dagster's storage is Dagster's (an event log rewrite would corrupt run history); the
    ingest assets keep identifiers out of metadata and logs, and this scan proves it.
    """

    name = "dagster"
    #: erasing cannot fix what this scan finds (an asset that records values must change)
    scan_only = True

    def __init__(self, home: Path, normalize: Normalize | None = None) -> None:
        self.home = Path(home)
        self.folder = self.home / "dagster"
        self.normalize = memoized(normalize or store_normalizer(self.home))

    def related(self, person: Suppression) -> dict[str, str]:
        """Nothing."""
        return {}

    def erase(self, person: Suppression) -> EraseOutcome:
        """Removes nothing (scan only), and says so."""
        if not self.folder.is_dir():
            return EraseOutcome(absent=True)
        return EraseOutcome(notes=("scan only: Dagster's run storage is not rewritten",))

    def _sqlite_hits(self, path: Path, suppression: Suppression) -> dict[str, int]:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=10)
        try:
            found: dict[str, int] = {}
            for table in _sqlite_tables(conn):
                cursor = conn.execute(f"select * from {_quote(table)}")
                count = 0
                while rows := cursor.fetchmany(1_000):
                    for row in rows:
                        text = " ".join(
                            v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v
                            for v in row
                            if isinstance(v, (str, bytes))
                        )
                        if text and suppression.text_matches(text, self.normalize):
                            count += 1
                if count:
                    found[table] = count
            return found
        finally:
            conn.close()

    def scan(self, suppression: Suppression) -> ScanOutcome:
        """Entries (event log rows, run rows, lines of other files) naming the list."""
        if not suppression or not self.folder.is_dir():
            return ScanOutcome()
        remaining = 0
        where: list[str] = []
        for path in sorted(self.folder.rglob("*")):
            if not path.is_file():
                continue
            name = str(path.relative_to(self.home))
            with open(path, "rb") as handle:
                is_sqlite = handle.read(16) == b"SQLite format 3\x00"
            if is_sqlite:
                try:
                    hits = self._sqlite_hits(path, suppression)
                except sqlite3.Error:
                    hits = {}
                    is_sqlite = False
                for table, count in hits.items():
                    remaining += count
                    where.append(f"{name}:{table}")
            if not is_sqlite:
                count = suppression.text_matches(
                    path.read_bytes().decode("utf-8", errors="replace"), self.normalize
                )
                if count:
                    remaining += count
                    where.append(name)
        return ScanOutcome(remaining, tuple(where))


def derived_erasers(
    home: Path, normalize: Normalize | None = None, *, audit_dir: Path | None = None
) -> list[Eraser]:
    """The erasers of this module for one CDP_HOME, in the order erasure runs them.

    ``audit_dir`` is the API's audit folder when its settings move it (``CDP_API_AUDIT_DIR``);
    by default ``CDP_HOME/audit``.
    """
    normalize = memoized(normalize or store_normalizer(home))
    return [
        WarehouseEraser(home, normalize),
        ServingEraser(home, normalize),
        DecisionsEraser(home, normalize),
        AuditEraser(home, normalize, folder=audit_dir),
        ExportsEraser(home, normalize),
        DagsterStorageScan(home, normalize),
    ]
