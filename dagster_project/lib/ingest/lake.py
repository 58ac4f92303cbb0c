"""The lake side of ingest: schemas, atomic part files, the manifest and what is already there.

One Parquet part per ingested landing file, named by the file's checksum, so a file is never
ingested twice and a crash leaves either the whole part or nothing (tmp file + ``os.replace``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from dagster_project.lib.config import FieldType, SourceConfig
from dagster_project.lib.ingest.errors import IngestError
from dagster_project.lib.workspace import Workspace
from identity import IDENTITY_ATTRIBUTES

MANIFEST_NAME = "_manifest.json"
PART_GLOB = "part-*.parquet"
_TMP_MARK = ".tmp-"

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")

#: Arrow type of each logical field type. DECIMAL is float64: no silent rounding to a fixed
#: scale and no overflow at 14 integer digits; dbt casts money to decimal where it sums it.
ARROW_TYPES: dict[FieldType, pa.DataType] = {
    FieldType.TEXT: pa.string(),
    FieldType.TIMESTAMP: UTC_TIMESTAMP,
    FieldType.DATE: pa.date32(),
    FieldType.BOOLEAN: pa.bool_(),
    FieldType.INTEGER: pa.int64(),
    FieldType.DECIMAL: pa.float64(),
}

PASSTHROUGH_TYPE = pa.map_(pa.string(), pa.string())

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("_source_file", pa.string(), nullable=False),
        pa.field("_source_line", pa.int64(), nullable=False),
        pa.field("_file_sha256", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string()),
        pa.field("_quarantined_at", UTC_TIMESTAMP, nullable=False),
    ]
)


def lake_schema(source: SourceConfig) -> pa.Schema:
    """Schema of every part of ``source``: record_id, all canonical fields, identifiers, lineage."""
    fields = [pa.field("record_id", pa.string(), nullable=False)]
    fields += [pa.field(spec.name, ARROW_TYPES[spec.type]) for spec in source.fields]
    fields += [pa.field(name, pa.string()) for name in sorted(source.identifiers)]
    fields += [
        pa.field("passthrough", PASSTHROUGH_TYPE),
        pa.field("_source_file", pa.string(), nullable=False),
        pa.field("_source_line", pa.int64(), nullable=False),
        pa.field("_file_sha256", pa.string(), nullable=False),
        pa.field("_record_hash", pa.string(), nullable=False),
        pa.field("_ingested_at", UTC_TIMESTAMP, nullable=False),
    ]
    return pa.schema(fields)


def dictionary_columns(source: SourceConfig) -> list[str]:
    """Lake columns whose values repeat a lot: lineage constants and categorical text fields."""
    identity = set(IDENTITY_ATTRIBUTES)
    categorical = [
        spec.name
        for spec in source.fields
        if spec.type is FieldType.TEXT
        and spec.name not in identity
        and not spec.name.endswith("_id")
    ]
    return [*categorical, "_source_file", "_file_sha256", "_ingested_at"]


def part_name(sha256: str) -> str:
    """File name of the part (and quarantine file) for a landing file's checksum."""
    return f"part-{sha256[:16]}.parquet"


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}")


def _replace_atomically(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_parquet_atomic(
    table: pa.Table, path: Path, dictionary_columns: list[str] | None = None
) -> None:
    """Readers see the old file or the complete new one, never half a part.

    Dictionary encoding only where values repeat (``dictionary_columns``): building a dictionary
    for ids and hashes costs time and saves nothing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        with tmp.open("wb") as handle:
            pq.write_table(
                table,
                handle,
                compression="zstd",
                compression_level=1,
                use_dictionary=dictionary_columns if dictionary_columns is not None else True,
            )
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _replace_atomically(tmp, path)


def write_json_atomic(payload: Any, path: Path) -> None:
    """Same guarantee as write_parquet_atomic, for the small JSON manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    tmp.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n")
    _replace_atomically(tmp, path)


def remove_stale_tmp(*folders: Path) -> None:
    """Drop temporary files left by an interrupted run (never read: they don't match parts)."""
    for folder in folders:
        if folder.is_dir():
            for path in folder.glob(f".*{_TMP_MARK}*"):
                with contextlib.suppress(OSError):
                    path.unlink()


@dataclass
class Manifest:
    """``lake/<source>/_manifest.json``: which landing files went in, with their counts."""

    path: Path
    source: str
    files: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, folder: Path, source: str) -> Manifest:
        """The manifest in ``folder``, or an empty one."""
        path = folder / MANIFEST_NAME
        if not path.is_file():
            return cls(path=path, source=source)
        try:
            payload = orjson.loads(path.read_bytes())
            files = list(payload["files"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise IngestError(
                f"{path} is damaged ({exc}); delete it (files already ingested are still "
                "recognised by their part files)"
            ) from exc
        return cls(path=path, source=source, files=files)

    def entry(self, sha256: str) -> dict[str, Any] | None:
        """The entry of the file with this checksum, if ingested (unreadable attempts are not).

        A landing file rewritten by erasure or retention is known by its new checksum and by
        the ones it had before (``erasure.previous_sha256``, ``retention.original_sha256``), so
        a re-delivery of an older version is not ingested again.
        """
        ingested = [e for e in self.files if e.get("part")]
        found = next((e for e in ingested if e.get("sha256") == sha256), None)
        if found is not None:
            return found
        return next((e for e in ingested if sha256 in _previous_checksums(e)), None)

    def add(self, entry: dict[str, Any]) -> None:
        """Record one file's outcome and write the manifest atomically.

        An unreadable file is recorded without a part; its previous unreadable attempt, if any,
        is replaced, so retrying a broken file every run does not grow the manifest.
        """
        self.files = [
            e
            for e in self.files
            if e.get("part")
            or (e.get("path"), e.get("sha256")) != (entry.get("path"), entry.get("sha256"))
        ]
        self.files.append(entry)
        write_json_atomic({"source": self.source, "files": self.files}, self.path)

    def save(self) -> None:
        """Write the manifest as it is (after an entry was changed in place)."""
        write_json_atomic({"source": self.source, "files": self.files}, self.path)

    def part_order(self) -> list[str]:
        """Part file names in ingest order."""
        return [e["part"] for e in self.files if e.get("part")]


def _previous_checksums(entry: dict[str, Any]) -> set[str]:
    """Checksums a manifest entry's landing file had before it was rewritten."""
    found: set[str] = set()
    erasure = entry.get("erasure")
    if isinstance(erasure, dict):
        found.update(str(s) for s in erasure.get("previous_sha256") or [])
    retention = entry.get("retention")
    if isinstance(retention, dict) and retention.get("original_sha256"):
        found.add(str(retention["original_sha256"]))
    return found


def part_files(folder: Path) -> list[Path]:
    """Part files of a source (lake or quarantine), in ingest order where the manifest says."""
    if not folder.is_dir():
        return []
    parts = {p.name: p for p in folder.glob(PART_GLOB)}
    manifest_path = folder / MANIFEST_NAME
    order: list[str] = []
    if manifest_path.is_file():
        with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
            files = orjson.loads(manifest_path.read_bytes())["files"]
            order = [e["part"] for e in files if e.get("part") in parts]
    rest = sorted(set(parts) - set(order))
    return [parts[name] for name in [*order, *rest]]


class LakeKeys:
    """(record_id, _record_hash) of every row in the lake, held in DuckDB for anti-joins."""

    def __init__(self, con: duckdb.DuckDBPyConnection, parts: list[Path]) -> None:
        self._con = con
        self._parts: list[Path] | None = parts

    def _load(self) -> None:
        """Read the lake's keys on first use: a run where every file is skipped never pays."""
        if self._parts is None:
            return
        self._con.execute("create or replace temp table lake_keys (record_id varchar, h varchar)")
        if self._parts:
            files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in self._parts)
            self._con.execute(
                f"insert into lake_keys select record_id, _record_hash from read_parquet([{files}])"
            )
        self._parts = None

    def new_rows(self, table: pa.Table) -> pa.Array:
        """Mask of rows whose (record_id, _record_hash) is not in the lake yet."""
        self._load()
        keys = table.select(["record_id", "_record_hash"])
        self._con.register("incoming_keys", keys)
        try:
            mask = self._con.sql(
                "select not exists (select 1 from lake_keys k where k.h = i._record_hash "
                "and k.record_id = i.record_id) as is_new from incoming_keys i"
            ).to_arrow_table()
        finally:
            self._con.unregister("incoming_keys")
        return mask.column("is_new").combine_chunks()

    def add(self, table: pa.Table) -> None:
        """Remember rows just written so a later file in the same run is compared with them."""
        if table.num_rows == 0:
            return
        self._load()
        self._con.register("written_keys", table.select(["record_id", "_record_hash"]))
        try:
            self._con.execute(
                "insert into lake_keys select record_id, _record_hash from written_keys"
            )
        finally:
            self._con.unregister("written_keys")


def _read_parts(paths: list[Path]) -> pa.Table:
    tables = [pq.read_table(p) for p in paths]
    return pa.concat_tables(tables, promote_options="default")


def read_lake(workspace: Workspace, source: str) -> pa.Table:
    """Every ingested row of a source (all parts, in ingest order)."""
    parts = part_files(workspace.source_lake(source))
    if not parts:
        raise IngestError(
            f"source '{source}' has no ingested data in {workspace.source_lake(source)}; "
            "run its ingest first"
        )
    return _read_parts(parts)


def read_quarantine(workspace: Workspace, source: str) -> pa.Table:
    """Every quarantined row of a source; an empty table when nothing was quarantined."""
    parts = part_files(workspace.source_quarantine(source))
    if not parts:
        return QUARANTINE_SCHEMA.empty_table()
    return _read_parts(parts)


def lake_stats(folder: Path) -> tuple[int, int]:
    """(rows, part files) in a source's lake folder, from Parquet footers only."""
    parts = part_files(folder)
    return sum(pq.read_metadata(p).num_rows for p in parts), len(parts)
