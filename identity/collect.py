"""Identity records from ingested source tables (web stitching included).

One *record* is one thing a source says about a person:

- a ``people`` row: its latest version per ``record_id`` (by ``_ingested_at``, then
  ``updated_at``), observed at ``coalesce(updated_at, signed_up_at)``;
- an ``events`` source: one record per distinct anonymous identifier (``cookie_id`` ...), whose
  ``record_id`` is ``cookie:<value>``; it carries every identifier seen with it (the
  ``account_id`` of login/purchase events, an ``email``) with first/last seen times. Events
  without an anonymous id group by their first identifier instead (``account:<value>``). A cookie
  seen with several accounts (a shared computer) keeps them all here; the rules then refuse to
  link it through any of them (``shared_device:account_id``), so it never merges two accounts;
- an ``email_events`` source: one record per distinct address as written (``email:<address>``);
  the deterministic rules join case variants through the normalized email.

Other kinds (orders, consents, catalog) produce no records: they reach customers through
``identity_identifiers`` (orders join on ``account_id``). ``as_of`` drops rows observed after it
so a backtest sees only what was known then.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final, NamedTuple

import duckdb
import pandas as pd
import pyarrow as pa

from identity._frames import arrow_frame
from identity.vocabulary import IDENTIFIER_COLUMNS, IDENTITY_ATTRIBUTES, RECORD_COLUMNS

logger = logging.getLogger(__name__)

PERSON_KINDS: Final[frozenset[str]] = frozenset({"people", "events", "email_events"})
DEFAULT_ANONYMOUS_TYPES: Final[tuple[str, ...]] = ("cookie_id", "device_id", "anonymous_id")


class Collected(NamedTuple):
    """Raw identity records and their named identifiers (long form)."""

    records: pd.DataFrame
    identifiers: pd.DataFrame


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _col(columns: set[str], name: str, cast: str = "varchar") -> str:
    return f"cast({_quote(name)} as {cast})" if name in columns else f"cast(null as {cast})"


def _as_arrow(table: pa.Table | pd.DataFrame) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    return pa.Table.from_pandas(table, preserve_index=False)


def _register_source(
    con: duckdb.DuckDBPyConnection, table: pa.Table | pd.DataFrame | Path
) -> set[str]:
    """Make ``table`` the view ``src``; return its column names."""
    if isinstance(table, Path):
        parts = sorted(str(p) for p in table.glob("*.parquet"))
        if not parts:
            raise FileNotFoundError(f"no Parquet files in {table}")
        files = ", ".join("'" + p.replace("'", "''") + "'" for p in parts)
        con.execute(
            "create or replace temp view src as "
            f"select * from read_parquet([{files}], union_by_name = true)"
        ).fetchall()
        return {row[0] for row in con.execute("describe src").fetchall()}
    arrow = _as_arrow(table)
    con.register("src", arrow)
    return set(arrow.column_names)


def _prefix(identifier_type: str) -> str:
    return identifier_type.removesuffix("_id") or identifier_type


def _people_sql(columns: set[str], identifiers: Sequence[str], as_of: bool) -> tuple[str, str]:
    observed = (
        f"coalesce({_col(columns, 'updated_at', 'timestamptz')}, "
        f"{_col(columns, 'signed_up_at', 'timestamptz')})"
    )
    first_seen = (
        f"coalesce({_col(columns, 'signed_up_at', 'timestamptz')}, "
        f"{_col(columns, 'updated_at', 'timestamptz')})"
    )
    where = f"where {observed} is null or {observed} <= $as_of" if as_of else ""
    order = (
        f"{_col(columns, '_ingested_at', 'timestamptz')} desc nulls last, "
        f"{_col(columns, 'updated_at', 'timestamptz')} desc nulls last, "
        f"{_col(columns, '_source_line', 'bigint')} desc nulls last"
    )
    attributes = ", ".join(f"{_col(columns, a)} as {a}" for a in IDENTITY_ATTRIBUTES)
    ident_cols = "".join(f", {_col(columns, i)} as {_quote('id__' + i)}" for i in identifiers)
    latest = f"""
        create or replace temp table latest as
        select cast(record_id as varchar) as record_id, {attributes},
               {observed} as observed_at, {first_seen} as first_seen_at {ident_cols}
        from src {where}
        qualify row_number() over (partition by record_id order by {order}) = 1
    """
    long = (
        " union all ".join(
            f"select record_id, '{i}' as identifier_type, {_quote('id__' + i)} as "
            f"identifier_value, first_seen_at, observed_at as last_seen_at from latest "
            f"where {_quote('id__' + i)} is not null"
            for i in identifiers
        )
        or None
    )
    return latest, long or ""


def _events_sql(
    columns: set[str], identifiers: Sequence[str], anonymous: Sequence[str], as_of: bool
) -> tuple[str, str]:
    # the anchor is the first anonymous id present, else the first other identifier, else email
    ordered = [i for i in anonymous if i in identifiers] + [
        i for i in identifiers if i not in anonymous
    ]
    has_email = "email" in columns
    anchors = [(i, _col(columns, i)) for i in ordered]
    if has_email:
        anchors.append(("email", f"nullif(trim({_col(columns, 'email')}), '')"))
    if not anchors:
        return "", ""
    anchor_type = "case " + " ".join(f"when {expr} is not null then '{t}'" for t, expr in anchors)
    anchor_type += " end"
    anchor_value = "coalesce(" + ", ".join(expr for _, expr in anchors) + ")"
    anchor_prefix = "case " + " ".join(
        f"when {expr} is not null then '{_prefix(t)}'" for t, expr in anchors
    )
    anchor_prefix += " end"
    where = "where occurred_at <= $as_of" if as_of else ""
    occurred = _col(columns, "occurred_at", "timestamptz")
    id_cols = "".join(f", {expr} as {_quote('id__' + t)}" for t, expr in anchors)
    staged = f"""
        create or replace temp table latest as
        select * from (
            select {anchor_prefix} || ':' || {anchor_value} as record_id,
                   {occurred} as occurred_at {id_cols}
            from src
        ) {where}
    """
    long = " union all ".join(
        f"select record_id, '{t}' as identifier_type, {_quote('id__' + t)} as identifier_value, "
        f"min(occurred_at) as first_seen_at, max(occurred_at) as last_seen_at from latest "
        f"where record_id is not null and {_quote('id__' + t)} is not null group by all"
        for t, _ in anchors
    )
    return staged, long


def collect_records(
    tables: Mapping[str, tuple[str, pa.Table | pd.DataFrame | Path]],
    identifiers_by_source: Mapping[str, Sequence[str]],
    as_of: datetime | None = None,
    *,
    anonymous_types: Sequence[str] = DEFAULT_ANONYMOUS_TYPES,
) -> Collected:
    """Build raw identity records and the long identifier frame from source tables.

    ``tables`` maps a source name to (kind, table), where a table is Arrow, pandas, or a
    folder of Parquet parts (read by DuckDB directly: only the needed columns, in parallel);
    kinds other than people, events and email_events are skipped. ``identifiers_by_source``
    names each source's identifier columns (cdp.yml ``identifiers`` keys).
    """
    record_frames: list[pd.DataFrame] = []
    id_frames: list[pd.DataFrame] = []
    params = {"as_of": pd.Timestamp(as_of)} if as_of is not None else {}
    for source, (kind, table) in tables.items():
        kind = str(kind)
        if kind not in PERSON_KINDS:
            continue
        con = duckdb.connect()
        try:
            columns = _register_source(con, table)
            identifiers = [i for i in identifiers_by_source.get(source, ()) if i in columns]
            if kind == "people":
                records, long = _collect_people(con, columns, identifiers, params)
            elif kind == "events":
                records, long = _collect_events(con, columns, identifiers, anonymous_types, params)
            else:
                records, long = _collect_email_events(con, columns, identifiers, params)
        finally:
            con.close()
        records.insert(0, "source", source)
        records.insert(2, "source_kind", kind)
        records.insert(0, "record_uid", source + ":" + records["record_id"])
        record_frames.append(records)
        if not long.empty:
            long.insert(0, "record_uid", source + ":" + long.pop("record_id"))
            id_frames.append(long)
        logger.info("collect: %s (%s) -> %d records", source, kind, len(records))
    return Collected(
        records=_finish(record_frames, RECORD_COLUMNS), identifiers=_finish_ids(id_frames)
    )


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, object]) -> pd.DataFrame:
    used = {k: v for k, v in params.items() if f"${k}" in sql}
    return arrow_frame(con.sql(sql, params=used or None).to_arrow_table())


def _collect_people(
    con: duckdb.DuckDBPyConnection,
    columns: set[str],
    identifiers: Sequence[str],
    params: Mapping[str, object],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    latest, long = _people_sql(columns, identifiers, bool(params))
    con.execute(latest, {k: v for k, v in params.items() if f"${k}" in latest}).fetchall()
    records = _fetch(
        con,
        "select record_id, "
        + ", ".join(IDENTITY_ATTRIBUTES)
        + ", observed_at from latest order by record_id",
        params,
    )
    ids = _fetch(con, long, params) if long else pd.DataFrame()
    return records, ids


def _collect_events(
    con: duckdb.DuckDBPyConnection,
    columns: set[str],
    identifiers: Sequence[str],
    anonymous: Sequence[str],
    params: Mapping[str, object],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    staged, long = _events_sql(columns, identifiers, anonymous, bool(params))
    if not staged:
        return pd.DataFrame({"record_id": pd.Series(dtype="str")}), pd.DataFrame()
    con.execute(staged, {k: v for k, v in params.items() if f"${k}" in staged}).fetchall()
    records = _fetch(
        con,
        "select record_id, max(occurred_at) as observed_at from latest "
        "where record_id is not null group by record_id order by record_id",
        params,
    )
    return records, _fetch(con, long, params)


def _collect_email_events(
    con: duckdb.DuckDBPyConnection,
    columns: set[str],
    identifiers: Sequence[str],
    params: Mapping[str, object],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if "email" not in columns:
        return pd.DataFrame({"record_id": pd.Series(dtype="str")}), pd.DataFrame()
    where = "and occurred_at <= $as_of" if params else ""
    occurred = _col(columns, "occurred_at", "timestamptz")
    id_cols = "".join(f", {_col(columns, i)} as {_quote('id__' + i)}" for i in identifiers)
    con.execute(
        f"""
        create or replace temp table latest as
        select * from (
            select 'email:' || trim(cast(email as varchar)) as record_id,
                   trim(cast(email as varchar)) as email, {occurred} as occurred_at {id_cols}
            from src where nullif(trim(cast(email as varchar)), '') is not null
        ) where true {where}
        """,
        dict(params),
    ).fetchall()
    records = _fetch(
        con,
        "select record_id, any_value(email) as email, max(occurred_at) as observed_at "
        "from latest group by record_id order by record_id",
        params,
    )
    long = " union all ".join(
        f"select record_id, '{i}' as identifier_type, {_quote('id__' + i)} as identifier_value, "
        f"min(occurred_at) as first_seen_at, max(occurred_at) as last_seen_at from latest "
        f"where {_quote('id__' + i)} is not null group by all"
        for i in identifiers
    )
    return records, (_fetch(con, long, params) if long else pd.DataFrame())


def _utc(series: pd.Series) -> pd.Series:
    values = pd.to_datetime(series, utc=True, errors="coerce")
    return values.astype("datetime64[us, UTC]")


def _finish(frames: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for column in columns:
        if column not in frame:
            frame[column] = pd.Series([None] * len(frame), dtype="str")
    frame = frame[list(columns)]
    frame["observed_at"] = _utc(frame["observed_at"])
    text = [c for c in columns if c != "observed_at"]
    return frame.astype({c: "str" for c in text}).reset_index(drop=True)


def _finish_ids(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(
            {
                "record_uid": pd.Series(dtype="str"),
                "identifier_type": pd.Series(dtype="str"),
                "identifier_value": pd.Series(dtype="str"),
                "first_seen_at": pd.Series(dtype="datetime64[us, UTC]"),
                "last_seen_at": pd.Series(dtype="datetime64[us, UTC]"),
            }
        )
    frame = pd.concat(frames, ignore_index=True)[list(IDENTIFIER_COLUMNS)]
    for column in ("first_seen_at", "last_seen_at"):
        frame[column] = _utc(frame[column])
    return frame.astype(
        {"record_uid": "str", "identifier_type": "str", "identifier_value": "str"}
    ).reset_index(drop=True)


def read_parquet_folder(folder: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Every Parquet part in a folder (only ``columns`` that exist), as one Arrow table."""
    parts = sorted(folder.glob("*.parquet"))
    if not parts:
        raise FileNotFoundError(f"no Parquet files in {folder}")
    con = duckdb.connect()
    try:
        available = {
            row[0]
            for row in con.execute(
                "select name from parquet_schema(?) where name is not null",
                [[str(p) for p in parts]],
            ).fetchall()
        }
        wanted = [c for c in (columns or sorted(available)) if c in available]
        select = ", ".join(_quote(c) for c in wanted) or "*"
        return con.sql(
            f"select {select} from read_parquet($files, union_by_name = true)",
            params={"files": [str(p) for p in parts]},
        ).to_arrow_table()
    finally:
        con.close()
