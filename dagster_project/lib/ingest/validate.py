"""Map text columns onto a kind's canonical fields, type them, split rows into lake or quarantine.

Work is done a whole column at a time (pyarrow for cleaning, one DuckDB query for joins, casts
and hashes); Python only loops over the rows that fail, to write their reasons.

Reasons name the column or field and the problem, never the value: they are counted into asset
metadata, checks and logs, and a value may be an email or a name. The raw record is kept next
to its reason in the quarantine file, which is as private as the lake.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dagster_project.lib.config import (
    ColumnRef,
    FieldSpec,
    FieldType,
    IngestLimits,
    SourceConfig,
)
from dagster_project.lib.ingest.lake import (
    QUARANTINE_SCHEMA,
    UTC_TIMESTAMP,
    lake_schema,
)
from dagster_project.lib.ingest.limits import RECORD_TOO_LARGE, field_problems
from dagster_project.lib.ingest.readers import DEFAULT_LIMITS, DUPLICATE_COLUMN, RawBatch


@dataclass(frozen=True)
class Lineage:
    """Where a batch came from; stamped on every lake and quarantine row."""

    source_file: str
    sha256: str
    ingested_at: datetime


@dataclass(frozen=True)
class Validated:
    """Rows ready for the lake and rows for the quarantine (with one reason kind each)."""

    table: pa.Table
    quarantine: pa.Table
    quarantine_kinds: list[str]
    problem: str = ""  # a file-level problem that quarantined every row


def _quote_sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _columns_of(ref: ColumnRef) -> list[str]:
    return [ref] if isinstance(ref, str) else list(ref)


def _describe_columns(columns: list[str]) -> str:
    if len(columns) == 1:
        return f"column '{columns[0]}' is empty"
    return "columns " + ", ".join(f"'{c}'" for c in columns) + " are empty"


def clean(array: pa.Array) -> pa.Array:
    """Strip whitespace; an empty or all-whitespace value is null."""
    if array.type != pa.string():
        array = array.cast(pa.string())
    trimmed = pc.utf8_trim_whitespace(array)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def _missing_columns(batch: RawBatch, source: SourceConfig) -> tuple[str, str] | None:
    """Files with a header or schema must have every column the config names."""
    if not batch.fixed_columns:
        return None  # JSON lines: an absent key is a null value, not a missing column
    present = set(batch.columns)
    problems = [
        f"missing column '{column}' (record key)"
        for column in source.record_key_columns
        if column not in present
    ]
    for target, ref in source.mapping.items():
        problems += [
            f"missing column '{column}' (mapped to field '{target}')"
            for column in _columns_of(ref)
            if column not in present
        ]
    problems += [
        f"missing column '{column}' (mapped to identifier '{name}')"
        for name, column in source.identifiers.items()
        if column not in present
    ]
    if not problems:
        return None
    unique = list(dict.fromkeys(problems))
    return "; ".join(unique), "; ".join(unique)


def _typed_sql(spec: FieldSpec, text: str, source: SourceConfig) -> str:
    options = source.options
    if spec.type is FieldType.TIMESTAMP:
        if options.timestamp_format:
            return (
                f"cast(try_strptime({text}, {_quote_sql(options.timestamp_format)}) as timestamptz)"
            )
        return f"try_cast({text} as timestamptz)"
    if spec.type is FieldType.DATE:
        return f"try_cast({text} as date)"
    if spec.type is FieldType.INTEGER:
        # try_cast alone would round '1.5' to 2 and read '0x10' as 16.
        return (
            f"case when regexp_full_match({text}, '[+-]?[0-9]+(\\.0*)?') "
            f"then try_cast({text} as bigint) end"
        )
    if spec.type is FieldType.DECIMAL:
        return f"case when isfinite(try_cast({text} as double)) then try_cast({text} as double) end"
    if spec.type is FieldType.BOOLEAN:
        trues = ", ".join(_quote_sql(v.lower()) for v in options.true_values)
        falses = ", ".join(_quote_sql(v.lower()) for v in options.false_values)
        return (
            f"case when lower({text}) in ({trues}) then true "
            f"when lower({text}) in ({falses}) then false end"
        )
    raise ValueError(f"no cast for {spec.type}")


def _unparseable_reason(spec: FieldSpec, source: SourceConfig) -> str:
    options = source.options
    if spec.type is FieldType.TIMESTAMP and options.timestamp_format:
        return f" (expected format '{options.timestamp_format}')"
    if spec.type is FieldType.TIMESTAMP:
        return " (expected ISO 8601, e.g. 2024-05-01T09:30:00Z)"
    if spec.type is FieldType.BOOLEAN:
        return f" (expected one of {', '.join(options.true_values + options.false_values)})"
    return ""


def _passthrough(columns: dict[str, pa.Array], n: int) -> pa.Array:
    """map<string,string> of the columns the config does not name; empty values left out."""
    if not columns:
        return pa.MapArray.from_arrays(
            pa.array(np.zeros(n + 1, dtype=np.int32)),
            pa.array([], pa.string()),
            pa.array([], pa.string()),
        )
    names = list(columns)
    arrays = list(columns.values())
    present = np.stack([pc.is_valid(a).to_numpy(zero_copy_only=False) for a in arrays], axis=1)
    rows, cols = np.nonzero(present)  # row-major: row by row, columns in file order
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(present.sum(axis=1), out=offsets[1:])
    keys = pa.array(names, pa.string()).take(pa.array(cols))
    items = pa.concat_arrays(arrays).take(pa.array(cols.astype(np.int64) * n + rows))
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items)


def _repeats(
    candidates: np.ndarray, key_hash: np.ndarray, record_id: pa.Array
) -> list[tuple[int, int]]:
    """(row, first row with the same record id) for every repeat among ``candidates``.

    A hash table over 64-bit hashes finds the repeats without a Python object per row; each
    repeat is then confirmed on the ids themselves, so a collision never quarantines a good row.
    """
    if len(candidates) == 0:
        return []
    hashes = key_hash[candidates]
    repeated = pd.Series(hashes).duplicated(keep=False).to_numpy()  # a hash table, O(n)
    if not repeated.any():
        return []
    group_rows = np.flatnonzero(repeated)
    first_seen: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    for local in group_rows:  # only rows whose hash repeats; in ascending order
        row = int(candidates[local])
        key = record_id[row].as_py()
        if key in first_seen:
            repeats.append((row, first_seen[key]))
        else:
            first_seen[key] = row
    return repeats


class _Failures:
    """Reasons per failing row; each reason has a kind (its counter key) and full text."""

    def __init__(self, n: int) -> None:
        self.mask = np.zeros(n, dtype=bool)
        self.reasons: dict[int, list[tuple[str, str]]] = {}

    def add(self, row: int, kind: str, reason: str) -> None:
        self.mask[row] = True
        self.reasons.setdefault(row, []).append((kind, reason))


def _quarantine_table(
    entries: list[tuple[int, str, str, str]], lineage: Lineage
) -> tuple[pa.Table, list[str]]:
    entries.sort(key=lambda e: e[0])
    n = len(entries)
    table = pa.Table.from_arrays(
        [
            pa.array([lineage.source_file] * n, pa.string()),
            pa.array([e[0] for e in entries], pa.int64()),
            pa.array([lineage.sha256] * n, pa.string()),
            pa.array([e[2] for e in entries], pa.string()),
            pa.array([e[3] for e in entries], pa.string()),
            pa.array([lineage.ingested_at] * n, UTC_TIMESTAMP),
        ],
        schema=QUARANTINE_SCHEMA,
    )
    return table, [e[1] for e in entries]


def _constant(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], pa.string())
    ).cast(pa.string())


def validate(
    batch: RawBatch,
    source: SourceConfig,
    con: duckdb.DuckDBPyConnection,
    lineage: Lineage,
    limits: IngestLimits = DEFAULT_LIMITS,
) -> Validated:
    """Split a batch into typed lake rows and quarantined rows with reasons.

    ``con`` must have its TimeZone set to the source's default time zone: naive timestamps are
    read in it. Every column, mapped or passthrough, is held to ``limits``.
    """
    n = batch.num_rows
    schema = lake_schema(source)
    entries: list[tuple[int, str, str, str]] = [
        (r.line, r.kind, r.reason, r.raw) for r in batch.rejected
    ]
    missing = _missing_columns(batch, source)
    problem = batch.problem or missing
    no_key = any(column not in batch.columns for column in source.record_key_columns)
    if missing and no_key and problem[0] == DUPLICATE_COLUMN:
        # Likely no header row at all: the duplicated "name" would be a value, so keep it out
        # of the reason (it reaches metadata) and say which columns are missing instead.
        problem = missing
    if problem is not None or n == 0:
        if problem is not None:  # a file-level problem: every row, so the counts still balance
            kind, reason = problem
            entries += [(int(batch.lines[i]), kind, reason, batch.raw(i)) for i in range(n)]
        quarantine, kinds = _quarantine_table(entries, lineage)
        return Validated(schema.empty_table(), quarantine, kinds, problem[1] if problem else "")

    referenced = sorted(source.mapped_columns())
    cleaned = {
        name: clean(batch.columns[name]) if name in batch.columns else pa.nulls(n, pa.string())
        for name in referenced
    }
    alias = {name: f"c{i}" for i, name in enumerate(referenced)}

    def text_sql(ref: ColumnRef) -> str:
        if isinstance(ref, str):
            return alias[ref]
        return "nullif(concat_ws(' ', " + ", ".join(alias[c] for c in ref) + "), '')"

    key_columns = source.record_key_columns
    record_id_sql = " || '|' || ".join(alias[c] for c in key_columns)
    specs = {spec.name: spec for spec in source.fields}
    select = [f"{record_id_sql} as record_id"]
    hash_parts = [record_id_sql]
    named_refs: list[tuple[str, ColumnRef]] = [*source.mapping.items()]
    named_refs += list(source.identifiers.items())
    for name, ref in sorted(named_refs):
        hash_parts.append(f"{_quote_sql(name)} || chr(30) || {text_sql(ref)}")
    for i, (target, ref) in enumerate(source.mapping.items()):
        if not isinstance(ref, str):
            select.append(f"{text_sql(ref)} as t{i}")
        if specs[target].type is not FieldType.TEXT:
            select.append(f"{_typed_sql(specs[target], text_sql(ref), source)} as v{i}")
    select.append(f"md5(concat_ws(chr(31), {', '.join(hash_parts)})) as record_hash")
    select.append(f"hash({record_id_sql}) as key_hash")  # only to find repeats; verified below
    con.register("incoming", pa.table({alias[name]: cleaned[name] for name in referenced}))
    try:
        result = con.sql(f"select {', '.join(select)} from incoming").to_arrow_table()
    finally:
        con.unregister("incoming")
    result = result.combine_chunks()

    failures = _Failures(n)
    too_large: set[int] = set()
    for row, errors in batch.row_errors.items():
        for kind, reason in errors:
            failures.add(row, kind, reason)
            if kind == RECORD_TOO_LARGE:
                too_large.add(row)
    named = source.mapped_columns()
    for row, problems in sorted(field_problems(batch.columns, limits, named).items()):
        for kind, reason in problems:
            if row not in too_large or not kind.endswith("value too long"):
                failures.add(row, kind, reason)
    record_id = (
        result.column("record_id").chunk(0) if result.num_rows else pa.array([], pa.string())
    )
    for row in np.nonzero(pc.is_null(record_id).to_numpy(zero_copy_only=False))[0]:
        empty = [c for c in key_columns if not cleaned[c][row].is_valid]
        failures.add(
            int(row), "record key missing", f"record key missing: {_describe_columns(empty)}"
        )

    texts: dict[str, pa.Array] = {}
    typed: dict[str, pa.Array] = {}
    for i, (target, ref) in enumerate(source.mapping.items()):
        text = cleaned[ref] if isinstance(ref, str) else result.column(f"t{i}").chunk(0)
        texts[target] = text
        spec = specs[target]
        if spec.required:
            missing = pc.is_null(text).to_numpy(zero_copy_only=False)
            for row in np.nonzero(missing)[0]:
                failures.add(
                    int(row),
                    f"{target}: required field missing",
                    f"{target}: required field missing ({_describe_columns(_columns_of(ref))})",
                )
        if spec.type is FieldType.TEXT:
            continue
        value = result.column(f"v{i}").chunk(0)
        if spec.type is FieldType.TIMESTAMP:
            value = value.cast(UTC_TIMESTAMP)
        typed[target] = value
        bad = pc.and_(pc.is_valid(text), pc.is_null(value)).to_numpy(zero_copy_only=False)
        hint = _unparseable_reason(spec, source)
        for row in np.nonzero(bad)[0]:
            failures.add(
                int(row),
                f"{target}: unparseable {spec.type.value}",
                f"{target}: unparseable {spec.type.value}{hint}",
            )

    # A record key seen twice in one file: the later occurrence is the suspicious one.
    candidates = np.flatnonzero(~failures.mask)
    key_hash = result.column("key_hash").chunk(0).to_numpy(zero_copy_only=False)
    for row, first in _repeats(candidates, key_hash, record_id):
        failures.add(
            row,
            "duplicate record key",
            f"duplicate record key (first seen on line {int(batch.lines[first])})",
        )

    for row in sorted(failures.reasons):
        reasons = failures.reasons[row]
        entries.append(
            (
                int(batch.lines[row]),
                "; ".join(k for k, _ in reasons),
                "; ".join(r for _, r in reasons),
                batch.raw(row),
            )
        )
    quarantine, kinds = _quarantine_table(entries, lineage)

    keep = pa.array(~failures.mask)
    mapped = set(referenced)
    passthrough = _passthrough(
        {name: clean(col) for name, col in batch.columns.items() if name not in mapped}, n
    )
    arrays: list[pa.Array] = [record_id]
    for spec in source.fields:
        if spec.name in typed:
            arrays.append(typed[spec.name])
        elif spec.name in texts:
            arrays.append(texts[spec.name])
        else:
            arrays.append(pa.nulls(n, schema.field(spec.name).type))
    arrays += [cleaned[source.identifiers[name]] for name in sorted(source.identifiers)]
    ingested_at = pa.array([lineage.ingested_at], UTC_TIMESTAMP)
    arrays += [
        passthrough,
        _constant(lineage.source_file, n),
        pa.array(batch.lines, pa.int64()),
        _constant(lineage.sha256, n),
        result.column("record_hash").chunk(0),
        ingested_at.take(pa.array(np.zeros(n, dtype=np.int64))),
    ]
    table = pa.Table.from_arrays(arrays, schema=schema)
    if failures.mask.any():
        table = table.filter(keep)
    return Validated(table, quarantine, kinds)
