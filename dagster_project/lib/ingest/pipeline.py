"""Ingest one configured source: landing files in, typed lake parts and quarantine files out."""

from __future__ import annotations

import codecs
import hashlib
import logging
import zoneinfo
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from dagster_project.lib.config import IngestLimits, LoadedConfig, SourceConfig
from dagster_project.lib.ingest.errors import IngestError
from dagster_project.lib.ingest.lake import (
    LakeKeys,
    Manifest,
    dictionary_columns,
    lake_stats,
    part_files,
    part_name,
    remove_stale_tmp,
    write_parquet_atomic,
)
from dagster_project.lib.ingest.readers import UnreadableFileError, read_records
from dagster_project.lib.ingest.report import FileResult, FileStatus, IngestReport
from dagster_project.lib.ingest.validate import Lineage, Validated, validate
from dagster_project.lib.workspace import Workspace
from privacy.suppression import Normalize, Suppression

logger = logging.getLogger(__name__)

PREVIEW_ROWS = 10
#: What a preview shows instead of a personal value.
MASK = "***"
#: Lineage columns a preview may show; every other column not known to be impersonal is masked.
_IMPERSONAL_LINEAGE = frozenset({"_source_file", "_source_line", "_file_sha256", "_ingested_at"})

Progress = Callable[[str, int, int], None]


def source_time_zone(loaded: LoadedConfig, source: SourceConfig) -> str:
    """The source's default_timezone if set, else the project default from cdp.yml."""
    if "default_timezone" in source.options.model_fields_set:
        name = source.options.default_timezone
        key = f"sources.{source.name}.options.default_timezone"
    else:
        name, key = loaded.config.defaults.timezone, "defaults.timezone"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise IngestError(
            f"{loaded.path}: {key}: '{name}' is not an IANA time zone (e.g. UTC, Europe/Paris)"
        ) from exc
    return name


def _check_options(loaded: LoadedConfig, source: SourceConfig) -> None:
    options = source.options
    where = f"{loaded.path}: sources.{source.name}.options"
    try:
        codecs.lookup(options.encoding)
    except LookupError as exc:
        raise IngestError(
            f"{where}.encoding: '{options.encoding}' is not a known encoding (e.g. utf-8, latin-1)"
        ) from exc
    if source.format == "csv" and len(options.delimiter) != 1:
        raise IngestError(f"{where}.delimiter: must be one character, got '{options.delimiter}'")
    overlap = {v.lower() for v in options.true_values} & {v.lower() for v in options.false_values}
    if overlap:
        raise IngestError(f"{where}: {sorted(overlap)} listed in both true_values and false_values")


def _display_path(path: Path, landing: Path) -> str:
    """Path relative to the landing folder (absolute if the file lives elsewhere)."""
    try:
        return path.resolve().relative_to(landing.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):  # a map column comes back as a list of (key, value) pairs
        return orjson.dumps(dict(value)).decode()
    return value


def preview_shown_columns(source: SourceConfig) -> frozenset[str]:
    """Lake columns a preview shows as they are: canonical fields not marked personal, lineage.

    Everything else is masked: identity attributes, URLs, searches and user agents (marked
    personal in ``KIND_FIELDS``), ``record_id`` (record keys are often emails or account
    numbers), every named identifier, the passthrough map (unknown columns, so possibly
    anything) and ``_record_hash`` (a hash of personal values). An allowlist, so a field added
    later is masked until someone decides it is not personal.
    """
    shown = {spec.name for spec in source.fields if not spec.is_personal}
    return frozenset(shown - set(source.identifiers)) | _IMPERSONAL_LINEAGE


def _preview(table: pa.Table, source: SourceConfig) -> list[dict[str, Any]]:
    """The first rows for the asset page, personal values replaced by ``***`` (nulls kept)."""
    shown = preview_shown_columns(source)
    rows = table.slice(0, PREVIEW_ROWS).to_pylist()
    return [
        {
            k: _json_safe(v) if k in shown or v is None or v in ("", []) else MASK
            for k, v in r.items()
        }
        for r in rows
    ]


def ingest_source(
    loaded: LoadedConfig,
    source: SourceConfig,
    workspace: Workspace,
    *,
    ingested_at: datetime,
    progress: Progress | None = None,
    run_id: str | None = None,
    suppression: Suppression | None = None,
    normalize: Normalize | None = None,
) -> IngestReport:
    """Ingest every landing file of ``source`` that is not in the lake yet.

    Files are handled in sorted order; each file's quarantine file, part and manifest entry are
    written in that order (the part is the commit point), so an interrupted run resumes cleanly.
    ``progress(path, files_done, files_total)`` is called before each file and once at the end.
    ``run_id`` (the orchestrator's run) is stamped on each manifest entry, so a check can judge
    the files one run brought; unreadable files get an entry too (without a part: retried).

    ``suppression`` (the erased persons, ``privacy.suppression``) drops their records from the
    lake and the quarantine alike, counted as ``rows_suppressed``, and rewrites the landing file
    without them (see :func:`dagster_project.lib.erasure.lake.suppressed_rows`); ``normalize``
    is identity's ``Normalizer.identifier`` the list was built with (identity's defaults if
    None). An empty list costs nothing: no value is hashed.
    """
    if ingested_at.tzinfo is None:
        raise ValueError("ingested_at must be timezone-aware")
    _check_options(loaded, source)
    time_zone = source_time_zone(loaded, source)
    landing = loaded.landing_dir(workspace.home)
    files = loaded.source_files(source, workspace.home)
    if not files:
        folder = loaded.source_folder(source, workspace.home)
        raise IngestError(
            f"source '{source.name}': no file matches '{source.path}' in {folder}; deliver the "
            f"source's files there or fix sources.{source.name}.path in {loaded.path}"
        )

    lake_dir = workspace.source_lake(source.name)
    quarantine_dir = workspace.source_quarantine(source.name)
    lake_dir.mkdir(parents=True, exist_ok=True)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(lake_dir, quarantine_dir)
    report = IngestReport(source=source.name)

    with (
        duckdb.connect(":memory:") as con,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer") as writer,
    ):
        con.execute("set TimeZone = " + "'" + time_zone.replace("'", "''") + "'")
        con.execute("set preserve_insertion_order = true")
        limits = loaded.config.limits_for(source)
        run = _SourceRun(source, con, writer, lake_dir, quarantine_dir, ingested_at, limits, run_id)
        if suppression:
            # Imported here: the erasure library reads landing files with this package.
            from dagster_project.lib.erasure.lake import default_normalize
            from privacy.suppression import memoized

            run.suppression = suppression
            run.normalize = memoized(normalize or default_normalize())
        try:
            for done, path in enumerate(files):
                display = _display_path(path, landing)
                if progress is not None:
                    progress(display, done, len(files))
                outcome = run.ingest_file(path, display)
                report.files.append(outcome.file)
                report.quarantine_reasons.update(outcome.quarantine_kinds)
                if outcome.preview_table is not None and len(report.preview) < PREVIEW_ROWS:
                    room = PREVIEW_ROWS - len(report.preview)
                    report.preview += _preview(outcome.preview_table, source)[:room]
                _log(source.name, outcome.file)
        finally:
            run.flush()
        if progress is not None:
            progress("done", len(files), len(files))

    report.lake_rows_total, report.lake_files = lake_stats(lake_dir)
    if not report.preview:
        parts = part_files(lake_dir)
        if parts:
            report.preview = _preview(pq.read_table(parts[0]), source)
    return report


def _log(source: str, file: FileResult) -> None:
    logger.info(
        "ingest %s %s: %s read=%d ingested=%d quarantined=%d duplicate=%d %s",
        source,
        file.path,
        file.status.value,
        file.rows_read,
        file.rows_ingested,
        file.rows_quarantined,
        file.rows_duplicate,
        file.reason,
    )
    if file.rows_suppressed:
        logger.info(
            "ingest %s %s: %d record(s) of erased persons dropped; landing file rewritten",
            source,
            file.path,
            file.rows_suppressed,
        )


@dataclass
class _FileOutcome:
    file: FileResult
    quarantine_kinds: list[str] = field(default_factory=list)
    preview_table: pa.Table | None = None


class _SourceRun:
    """One source's ingest: reads and validates on the calling thread, writes on another.

    Writing a file's Parquet overlaps with reading the next file. Order is kept: writes run one
    at a time in submission order, and at most one is in flight, so a failure surfaces before
    more work is done and the manifest lists files in ingest order.
    """

    def __init__(
        self,
        source: SourceConfig,
        con: duckdb.DuckDBPyConnection,
        writer: ThreadPoolExecutor,
        lake_dir: Path,
        quarantine_dir: Path,
        ingested_at: datetime,
        limits: IngestLimits,
        run_id: str | None = None,
    ) -> None:
        self.source = source
        self.con = con
        self.writer = writer
        self.lake_dir = lake_dir
        self.quarantine_dir = quarantine_dir
        self.ingested_at = ingested_at
        self.run_id = run_id
        self.limits = limits
        self.manifest = Manifest.load(lake_dir, source.name)
        self.keys = LakeKeys(con, part_files(lake_dir))
        self.dictionary_columns = dictionary_columns(source)
        # Checksums taken this run; the manifest may lag behind while a write is in flight.
        self.taken: dict[str, str] = {}
        self.pending: Future[None] | None = None
        self.suppression: Suppression | None = None
        self.normalize: Normalize | None = None

    def flush(self) -> None:
        """Wait for the write in flight; re-raises its error."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def ingest_file(self, path: Path, display: str) -> _FileOutcome:
        """Read, validate and de-duplicate one landing file, then queue its writes."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            logger.warning("ingest %s: cannot read %s: %s", self.source.name, path, exc)
            reason = f"cannot read the file ({exc.strerror or exc})"
            return self._unreadable(FileResult(display, "", FileStatus.UNREADABLE, reason=reason))
        sha256 = hashlib.sha256(data).hexdigest()
        name = part_name(sha256)
        earlier = self.manifest.entry(sha256)
        if sha256 in self.taken or earlier is not None or (self.lake_dir / name).exists():
            where = self.taken.get(sha256) or (earlier["path"] if earlier else name)
            reason = f"already ingested (same checksum as {where})"
            dropped = 0
            if self.suppression and sha256 not in self.taken:
                dropped = self._clean_skipped(path, display, data, sha256, earlier)
            if dropped:
                reason += f"; {dropped} record(s) of erased persons removed from the landing file"
            return _FileOutcome(
                FileResult(
                    display,
                    sha256,
                    FileStatus.SKIPPED,
                    rows_read=dropped,
                    rows_suppressed=dropped,
                    reason=reason,
                )
            )

        source = self.source
        try:
            batch = read_records(
                data, source.format, source.options, self.con, source.mapped_columns(), self.limits
            )
        except UnreadableFileError as exc:
            logger.warning("ingest %s: %s is unreadable: %s", source.name, display, exc)
            file = FileResult(display, sha256, FileStatus.UNREADABLE, reason=str(exc))
            return self._unreadable(file)
        lineage = Lineage(display, sha256, self.ingested_at)
        validated = validate(batch, source, self.con, lineage, self.limits)
        suppressed = 0
        written_sha256 = sha256
        if self.suppression:
            validated, suppressed, written_sha256 = self._suppress(
                path, display, data, sha256, validated
            )
        is_new = self.keys.new_rows(validated.table)
        table = validated.table if is_new.false_count == 0 else validated.table.filter(is_new)
        self.keys.add(table)
        self.taken[sha256] = display

        status = FileStatus.EMPTY if batch.rows_read == 0 else FileStatus.INGESTED
        file = FileResult(
            path=display,
            sha256=sha256,
            status=status,
            rows_read=batch.rows_read,
            rows_ingested=table.num_rows,
            rows_quarantined=validated.quarantine.num_rows,
            rows_duplicate=validated.table.num_rows - table.num_rows,
            rows_suppressed=suppressed,
            reason=validated.problem,
        )
        if not file.is_balanced():  # a bug, not bad data: say so loudly rather than lose rows
            logger.error("ingest %s %s: counts do not balance: %s", source.name, display, file)
        entry = self._entry(file, part=name)
        entry["quarantine"] = name if validated.quarantine.num_rows else None
        if written_sha256 != sha256:  # the part keeps the original's name: both are known
            from dagster_project.lib.erasure.lake import record_rewrite

            record_rewrite(entry, sha256, written_sha256, suppressed)
        self.flush()
        self.pending = self.writer.submit(self._commit, table, validated.quarantine, entry)
        preview = table if table.num_rows else None
        return _FileOutcome(file, validated.quarantine_kinds, preview)

    def _entry(self, file: FileResult, part: str | None) -> dict[str, Any]:
        """The manifest entry of one file in this run."""
        return {
            "path": file.path,
            "sha256": file.sha256,
            "status": file.status.value,
            "rows_read": file.rows_read,
            "rows_ingested": file.rows_ingested,
            "rows_quarantined": file.rows_quarantined,
            "rows_duplicate": file.rows_duplicate,
            "rows_suppressed": file.rows_suppressed,
            "part": part,
            "quarantine": None,
            "reason": file.reason,
            "ingested_at": self.ingested_at.isoformat(),
            "run_id": self.run_id,
        }

    def _clean_skipped(
        self,
        path: Path,
        display: str,
        data: bytes,
        sha256: str,
        earlier: dict[str, Any] | None,
    ) -> int:
        """A file already in the lake delivered again may be an older version that held an
        erased person (the lake and the landing copy were rewritten without them): its records
        stay out of the lake (it is skipped), and the landing file loses them too, so no store
        holds them. The cleaned file's checksum joins the entry's known ones. Returns the
        records removed (0 when the file names no erased person: nothing is rewritten)."""
        source = self.source
        try:
            batch = read_records(
                data, source.format, source.options, self.con, source.mapped_columns(), self.limits
            )
        except UnreadableFileError:
            return 0
        lineage = Lineage(display, sha256, self.ingested_at)
        validated = validate(batch, source, self.con, lineage, self.limits)
        _, dropped, new_sha256 = self._suppress(path, display, data, sha256, validated)
        if dropped and earlier is not None and new_sha256 != earlier.get("sha256"):
            from dagster_project.lib.erasure.lake import record_rewrite

            current = str(earlier.get("sha256"))
            record_rewrite(earlier, new_sha256, current, 0)  # known, the entry's file unchanged
            self.flush()
            self.manifest.save()
        return dropped

    def _suppress(
        self, path: Path, display: str, data: bytes, sha256: str, validated: Validated
    ) -> tuple[Validated, int, str]:
        """Drop the records of erased persons (lake and quarantine rows alike) and rewrite the
        landing file without them, before anything is written: a crash later re-reads the
        rewritten file. Returns (kept rows, records dropped, checksum of the file now)."""
        from dagster_project.lib.erasure.lake import (
            removed_lines,
            renumber,
            replace_file,
            sha256_of,
            suppressed_rows,
            without_lines,
        )

        assert self.suppression is not None
        found = suppressed_rows(validated, self.source, self.suppression, self.normalize, data)
        if not found.total:
            return validated, 0, sha256
        kept, dropped = found.kept()
        gone = removed_lines(data, self.source, found.records())
        content = without_lines(data, self.source, gone)
        try:
            replace_file(path, content)
        except OSError as exc:  # a read-only delivery folder: the lake is still kept clean
            logger.warning(
                "ingest %s %s: cannot rewrite the landing file without erased persons' records "
                "(%s); the erasure check will report it",
                self.source.name,
                display,
                exc.strerror or exc,
            )
            return kept, dropped, sha256
        new_sha256 = sha256_of(content)
        kept = Validated(
            renumber(kept.table, gone, new_sha256),
            renumber(kept.quarantine, gone, new_sha256),
            kept.quarantine_kinds,
            kept.problem,
        )
        return kept, dropped, new_sha256

    def _unreadable(self, file: FileResult) -> _FileOutcome:
        """Record the attempt (no part, so the file is retried) for the checks to judge."""
        self.flush()
        self.pending = self.writer.submit(self.manifest.add, self._entry(file, part=None))
        return _FileOutcome(file)

    def _commit(self, table: pa.Table, quarantine: pa.Table, entry: dict[str, Any]) -> None:
        """Quarantine first, then the part (the commit point), then the manifest."""
        name = entry["part"]
        if quarantine.num_rows:
            write_parquet_atomic(quarantine, self.quarantine_dir / name)
        write_parquet_atomic(table, self.lake_dir / name, self.dictionary_columns)
        self.manifest.add(entry)
