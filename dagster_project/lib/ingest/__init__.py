"""Ingest library: landing files in, typed Parquet lake parts and quarantined rows out.

Plain Python (no Dagster imports); the ingest assets call :func:`ingest_source` and turn its
:class:`IngestReport` into metadata and checks.

Semantics in brief:

* every value is read as text first (leading zeros survive), stripped, and empty becomes null;
* canonical fields are typed per their kind: TIMESTAMP -> ``timestamp[us, tz=UTC]`` (naive values
  in the source's time zone), DATE -> ``date32``, BOOLEAN -> ``bool``, INTEGER -> ``int64``,
  DECIMAL -> ``float64`` (no silent rounding; cast to decimal in dbt where money is summed);
* rows that fail (missing key or required field, unparseable value, malformed line, bad bytes,
  duplicate key in a file, a JSON key given twice, a column missing from the file, a value or
  record over the ``ingest:`` limits, a control character) go to ``quarantine/<source>/`` with
  the reason, file and line; nothing is dropped: ``rows_read = ingested + quarantined +
  duplicate``; a CSV quote that never closes is accounted for line by line;
* reasons name the column and the problem, never the value, and the preview masks personal
  columns: both end up in asset metadata (see ``limits.py`` and ``pipeline.preview_shown_columns``);
* one part per landing file, named by its checksum; a file already ingested is skipped, and rows
  already in the lake with identical content are counted as duplicates and not written again.
"""

from __future__ import annotations

from dagster_project.lib.ingest.errors import IngestError
from dagster_project.lib.ingest.lake import (
    QUARANTINE_SCHEMA,
    lake_schema,
    read_lake,
    read_quarantine,
)
from dagster_project.lib.ingest.pipeline import ingest_source
from dagster_project.lib.ingest.report import FileResult, FileStatus, IngestReport

__all__ = [
    "QUARANTINE_SCHEMA",
    "FileResult",
    "FileStatus",
    "IngestError",
    "IngestReport",
    "ingest_source",
    "lake_schema",
    "read_lake",
    "read_quarantine",
]
