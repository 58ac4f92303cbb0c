"""Build a serving snapshot from the warehouse, verify it, and switch the API over to it.

The API must answer point lookups in well under a millisecond and must never hold the dbt
warehouse open, so each publish copies the contract-enforced marts (plus the identity
explanations and alias table the API needs) into a new, read-only SQLite file with an index on
every lookup key. SQLite was chosen over a DuckDB copy by measurement
(``benchmarks/bench_snapshot.py``, 100k customers): an email lookup joined to the customer row
takes 19 us (p50) / 85 us (p99) in SQLite and 23 ms / 84 ms in DuckDB, whose strength (scans)
the API does not need. The price is size: 524 MB against DuckDB's 138 MB.

Steps: copy into ``serving/.build-<id>/`` -> count rows against the warehouse -> integrity check
-> rename to ``serving/<id>/`` -> replace ``serving/CURRENT`` atomically -> delete old snapshots
beyond ``keep`` that no API process still holds (leases). The format itself (manifest, pointer,
leases) is defined by the reader, ``api.snapshot``.
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import duckdb

from api.snapshot import (
    DATABASE_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    NORMALIZATION_SETTINGS,
    SnapshotError,
    SnapshotManifest,
    leased_snapshots,
    list_snapshots,
    read_current,
    read_manifest,
    snapshot_folder,
    write_current,
)
from identity.ids import resolve_alias
from identity.settings import IdentitySettings

logger = logging.getLogger(__name__)

#: Rows moved per batch from DuckDB to SQLite.
BATCH_ROWS: Final[int] = 50_000
#: Seconds to wait for the warehouse while a dbt build still holds its write lock.
WAREHOUSE_LOCK_WAIT_SECONDS: Final[float] = 120.0
PUBLISH_LOCK_FILE: Final[str] = ".publish.lock"
BUILD_PREFIX: Final[str] = ".build-"


class PublishError(RuntimeError):
    """The snapshot could not be built or failed verification; CURRENT was not touched."""


@dataclass(frozen=True)
class TableSpec:
    """One snapshot table: its key, the indexes lookups need, the columns the API reads."""

    name: str
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()
    required: tuple[str, ...] = ()
    without_rowid: bool = False


#: dbt marts copied as they are (contracts enforced in dbt/models/marts/_marts__models.yml).
MART_TABLES: Final[tuple[TableSpec, ...]] = (
    TableSpec(
        "customers",
        ("customer_id",),
        required=(
            "customer_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "is_anonymous",
            "has_email_consent",
            "has_sms_consent",
            "has_push_consent",
        ),
    ),
    TableSpec(
        # clustered by customer: a customer's identifiers are one contiguous range
        "customer_identifiers",
        ("customer_id", "identifier_type", "identifier_value", "source"),
        required=(
            "customer_id",
            "identifier_type",
            "identifier_value",
            "source",
            "first_seen_at",
            "last_seen_at",
        ),
        without_rowid=True,
    ),
    TableSpec("customer_traits", ("customer_id",), required=("customer_id",)),
    TableSpec(
        # clustered by customer and time: a page of a timeline is one contiguous range
        "customer_events",
        ("customer_id", "occurred_at", "event_id"),
        required=("event_id", "customer_id", "occurred_at", "channel", "event_type"),
        without_rowid=True,
    ),
    TableSpec(
        "customer_segments",
        ("segment", "customer_id"),
        indexes=(("customer_id", "segment"),),
        required=("customer_id", "segment", "entered_at"),
        without_rowid=True,
    ),
    TableSpec("segment_membership_history", ("membership_event_id",)),
    TableSpec(
        "segments",
        ("segment",),
        required=("segment", "description", "owner", "member_count"),
    ),
    TableSpec("product_affinity", ("affinity_type", "product_id", "related_product_id")),
    TableSpec("campaign_metrics", ("campaign_id",)),
)

#: Tables derived at publish time for the API's lookups and explanations.
DERIVED_TABLES: Final[tuple[TableSpec, ...]] = (
    TableSpec("identifier_lookup", ("identifier_type", "identifier_value"), without_rowid=True),
    TableSpec("customer_aliases", ("alias_customer_id",), without_rowid=True),
    TableSpec("identity_records", ("record_uid",), indexes=(("customer_id", "source"),)),
    TableSpec("identity_evidence", (), indexes=(("customer_id", "record_uid"),)),
    TableSpec(
        "customer_id_history",
        (),
        indexes=(("customer_id", "occurred_at"), ("related_customer_id", "occurred_at")),
    ),
)

#: dbt models the publish step reads (Dagster dependencies of the publish asset).
MART_NAMES: Final[tuple[str, ...]] = tuple(spec.name for spec in MART_TABLES)

_SPECS: Final[dict[str, TableSpec]] = {s.name: s for s in (*MART_TABLES, *DERIVED_TABLES)}

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
        expr = f"strftime(timezone('UTC', {column}), '%Y-%m-%dT%H:%M:%S.%fZ')"
        return "TEXT", expr, "timestamp"
    if base.startswith("TIMESTAMP"):
        return (
            "TEXT",
            f"strftime(cast({column} as timestamp), '%Y-%m-%dT%H:%M:%S.%fZ')",
            ("timestamp"),
        )
    if base == "DATE":
        return "TEXT", f"strftime({column}, '%Y-%m-%d')", "date"
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


def _warehouse_relation(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The qualified name of a mart, preferring schema ``main``."""
    rows = con.execute(
        "select table_schema from information_schema.tables where table_name = ? "
        "order by table_schema = 'main' desc, table_schema",
        [table],
    ).fetchall()
    if not rows:
        raise PublishError(
            f"the warehouse has no table '{table}'; run the dbt marts (`cdp run`) before publishing"
        )
    return f"{_quote(rows[0][0])}.{_quote(table)}"


class _Builder:
    """Copies query results from DuckDB into the new SQLite file, table by table."""

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

    def copy(self, spec: TableSpec, select_sql: str, params: Sequence[Any] = ()) -> None:
        """Create ``spec.name`` from a DuckDB select, in primary-key order."""
        started = time.perf_counter()
        described = self.con.execute(
            f"describe select * from ({select_sql})", list(params)
        ).fetchall()
        names = [str(row[0]) for row in described]
        missing = [c for c in spec.required if c not in names]
        if missing:
            raise PublishError(
                f"{spec.name}: the warehouse relation lacks columns {missing} that the API reads"
            )
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
        order = f" order by {', '.join(map(_quote, spec.primary_key))}" if spec.primary_key else ""
        self.expected[spec.name] = int(
            self.con.execute(f"select count(*) from ({select_sql})", list(params)).fetchone()[0]
        )
        cursor = self.con.execute(
            f"select {projection} from ({select_sql}) as src{order}", list(params)
        )
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


def _identity_file(identity_dir: Path, name: str, *, required: bool) -> Path | None:
    path = identity_dir / name
    if path.is_file():
        return path
    if required:
        raise PublishError(
            f"{path}: missing identity output; run the identity assets first (`cdp run`)"
        )
    return None


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _edges_sql(edges: Path | None) -> str:
    if edges is not None:
        return f"select * from read_parquet({_sql_path(edges)})"
    return (
        "select cast(null as varchar) as record_uid_l, cast(null as varchar) as record_uid_r, "
        "cast(null as varchar) as evidence_type, cast(null as varchar) as rule, "
        "cast(null as varchar) as identifier_type, cast(null as double) as match_probability, "
        "cast(null as double) as match_weight, cast(null as varchar) as details, "
        "cast(null as boolean) as is_accepted, cast(null as varchar) as rejected_reason "
        "where false"
    )


def _copy_identity(builder: _Builder, identity_dir: Path) -> None:
    """Identity explanations (records, evidence, history) and the resolved alias table."""
    identity_map = _identity_file(identity_dir, "identity_map.parquet", required=True)
    edges = _identity_file(identity_dir, "identity_edges.parquet", required=False)
    aliases = _identity_file(identity_dir, "customer_aliases.parquet", required=False)
    history = _identity_file(identity_dir, "customer_id_history.parquet", required=False)
    assert identity_map is not None
    if edges is None:
        logger.warning(
            "%s: no identity_edges.parquet; customers will have no evidence", identity_dir
        )
    records_sql = (
        "select cast(record_uid as varchar) as record_uid, cast(customer_id as varchar) "
        "as customer_id, cast(source as varchar) as source, cast(record_id as varchar) "
        f"as record_id, cast(cluster_size as bigint) as cluster_size "
        f"from read_parquet({_sql_path(identity_map)})"
    )
    builder.copy(_SPECS["identity_records"], records_sql)
    evidence_sql = f"""
        with records as ({records_sql}),
        edges as ({_edges_sql(edges)}),
        both_directions as (
            select record_uid_l as record_uid, record_uid_r as other_record_uid, * exclude
                (record_uid_l, record_uid_r) from edges
            union all
            select record_uid_r as record_uid, record_uid_l as other_record_uid, * exclude
                (record_uid_l, record_uid_r) from edges
        )
        select
            mine.customer_id,
            both_directions.record_uid,
            both_directions.other_record_uid,
            other.customer_id as other_customer_id,
            other.source as other_source,
            other.record_id as other_record_id,
            cast(evidence_type as varchar) as evidence_type,
            cast(rule as varchar) as rule,
            cast(identifier_type as varchar) as identifier_type,
            cast(match_probability as double) as match_probability,
            cast(match_weight as double) as match_weight,
            cast(details as varchar) as details,
            cast(is_accepted as boolean) as is_accepted,
            cast(rejected_reason as varchar) as rejected_reason
        from both_directions
        inner join records as mine on mine.record_uid = both_directions.record_uid
        left join records as other on other.record_uid = both_directions.other_record_uid
        order by mine.customer_id, both_directions.record_uid
    """
    builder.copy(_SPECS["identity_evidence"], evidence_sql)
    alias_rows: list[tuple[str, str, Any, Any]] = []
    if aliases is not None:
        raw = builder.con.execute(
            "select cast(alias_customer_id as varchar), cast(customer_id as varchar), "
            f"created_at, cast(cause as varchar) from read_parquet({_sql_path(aliases)})"
        ).fetchall()
        chain = {alias: target for alias, target, _, _ in raw}
        alias_rows = [(a, resolve_alias(a, chain), c, why) for a, _, c, why in raw]
    builder.con.execute(
        "create or replace temp table _aliases (alias_customer_id varchar, customer_id varchar, "
        "created_at timestamptz, cause varchar)"
    )
    if alias_rows:
        builder.con.executemany("insert into _aliases values (?, ?, ?, ?)", alias_rows)
    builder.copy(
        _SPECS["customer_aliases"],
        "select * from _aliases where alias_customer_id <> customer_id",
    )
    history_sql = (
        f"select * from read_parquet({_sql_path(history)})"
        if history is not None
        else "select cast(null as timestamptz) as occurred_at, cast(null as varchar) as run_id, "
        "cast(null as varchar) as event_type, cast(null as varchar) as customer_id, "
        "cast(null as varchar) as related_customer_id, cast(null as varchar) as cause "
        "where false"
    )
    builder.copy(_SPECS["customer_id_history"], history_sql)


def _identifier_lookup_sql(customer_identifiers: str) -> str:
    """One owner per (type, value): most records, then most recently seen, then smallest id.

    The same rule as dbt's int_identifiers_deduplicated, so a lookup returns the customer the
    marts attribute the identifier's activity to; ``customer_count`` > 1 flags a shared value.
    """
    return f"""
        with claims as (
            select identifier_type, identifier_value, customer_id,
                sum(record_count) as record_count, max(last_seen_at) as last_seen_at
            from {customer_identifiers}
            group by identifier_type, identifier_value, customer_id
        ),
        ranked as (
            select *,
                count(*) over (partition by identifier_type, identifier_value) as customer_count,
                row_number() over (
                    partition by identifier_type, identifier_value
                    order by record_count desc, last_seen_at desc nulls last, customer_id
                ) as claim_rank
            from claims
        )
        select identifier_type, identifier_value, customer_id, customer_count
        from ranked
        where claim_rank = 1
    """


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
    current = read_current(serving_dir)
    held = leased_snapshots(serving_dir, lease_ttl_seconds)
    published = list_snapshots(serving_dir)
    deleted = []
    for snapshot_id in published[: max(len(published) - keep, 0)]:
        if snapshot_id == current or snapshot_id in held:
            continue
        _delete_snapshot(snapshot_folder(serving_dir, snapshot_id))
        deleted.append(snapshot_id)
    return deleted


def publish_snapshot(
    warehouse: Path,
    serving_dir: Path,
    identity_dir: Path,
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
        identity_dir: ``CDP_HOME/lake/identity`` (identity map, edges, aliases, history).
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
    seconds: dict[str, float] = {}
    with _publish_lock(serving_dir):
        for leftover in serving_dir.glob(f"{BUILD_PREFIX}*"):
            # An interrupted build (the lock is ours, so nobody is writing it): never published.
            shutil.rmtree(leftover, ignore_errors=True)
        _identity_file(Path(identity_dir), "identity_map.parquet", required=True)
        staging = serving_dir / f"{BUILD_PREFIX}{snapshot_id}"
        staging.mkdir(parents=True)
        try:
            database = staging / DATABASE_FILE
            con = _connect_warehouse(Path(warehouse), warehouse_wait_seconds)
            try:
                builder = _Builder(con, database)
                try:
                    for spec in MART_TABLES:
                        builder.copy(spec, f"select * from {_warehouse_relation(con, spec.name)}")
                    builder.copy(
                        _SPECS["identifier_lookup"],
                        _identifier_lookup_sql(_warehouse_relation(con, "customer_identifiers")),
                    )
                    _copy_identity(builder, Path(identity_dir))
                    seconds["copy"] = round(time.perf_counter() - started, 3)
                    for spec in (*MART_TABLES, *DERIVED_TABLES):
                        builder.index(spec)
                    builder.finish()
                except BaseException:
                    builder.sqlite.close()
                    raise
            finally:
                con.close()
            seconds["index"] = round(time.perf_counter() - started - seconds["copy"], 3)
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
            verify_con = sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)
            try:
                identifier_types = [
                    r[0]
                    for r in verify_con.execute(
                        "select distinct identifier_type from customer_identifiers "
                        "order by identifier_type"
                    )
                ]
            finally:
                verify_con.close()
            manifest = SnapshotManifest(
                format_version=FORMAT_VERSION,
                snapshot_id=snapshot_id,
                created_at=created_at,
                as_of=as_of,
                warehouse=str(Path(warehouse).resolve()),
                database=DATABASE_FILE,
                tables=dict(builder.expected),
                columns=builder.columns,
                identifier_types=identifier_types,
                size_bytes=database.stat().st_size,
                build_seconds=round(time.perf_counter() - started, 3),
                identity_settings=settings.model_dump(
                    mode="json", include=set(NORMALIZATION_SETTINGS)
                ),
            )
            (staging / MANIFEST_FILE).write_text(
                manifest.model_dump_json(indent=2), encoding="utf-8"
            )
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
