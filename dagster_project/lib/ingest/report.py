"""What one ingest run did, in numbers an asset check can hold it to."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FileStatus(StrEnum):
    """Outcome of one landing file in one run."""

    INGESTED = "ingested"
    EMPTY = "empty"  # 0 bytes or header only: an empty part with the full schema is written
    SKIPPED = "skipped"  # same checksum already in the lake; nothing read or written
    UNREADABLE = "unreadable"  # not Parquet, undecodable, or I/O error; retried next run


@dataclass
class FileResult:
    """One landing file's counts; ``reason`` explains a skip or a file-level problem."""

    path: str
    sha256: str
    status: FileStatus
    rows_read: int = 0
    rows_ingested: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    #: records of erased persons (the suppression list), dropped and cut from the landing file
    rows_suppressed: int = 0
    reason: str = ""

    def is_balanced(self) -> bool:
        """Every record read is accounted for."""
        return self.rows_read == (
            self.rows_ingested + self.rows_quarantined + self.rows_duplicate + self.rows_suppressed
        )


@dataclass
class IngestReport:
    """Totals for one source and one run (skipped files contribute no rows)."""

    source: str
    files: list[FileResult] = field(default_factory=list)
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    preview: list[dict[str, Any]] = field(default_factory=list)
    lake_rows_total: int = 0
    lake_files: int = 0

    @property
    def files_seen(self) -> int:
        """Files matching the source's glob."""
        return len(self.files)

    @property
    def files_ingested(self) -> int:
        """Files that got a lake part in this run (including empty ones)."""
        return sum(f.status in (FileStatus.INGESTED, FileStatus.EMPTY) for f in self.files)

    @property
    def files_skipped(self) -> int:
        """Files whose checksum was already ingested."""
        return sum(f.status is FileStatus.SKIPPED for f in self.files)

    @property
    def files_unreadable(self) -> int:
        """Files that could not be read at all (see their reason)."""
        return sum(f.status is FileStatus.UNREADABLE for f in self.files)

    @property
    def rows_read(self) -> int:
        """Records read this run."""
        return sum(f.rows_read for f in self.files)

    @property
    def rows_ingested(self) -> int:
        """Rows written to the lake this run."""
        return sum(f.rows_ingested for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        """Rows written to the quarantine this run."""
        return sum(f.rows_quarantined for f in self.files)

    @property
    def rows_duplicate(self) -> int:
        """Rows already in the lake with identical content, not written again."""
        return sum(f.rows_duplicate for f in self.files)

    @property
    def rows_suppressed(self) -> int:
        """Records of erased persons dropped (and cut from their landing files) this run."""
        return sum(f.rows_suppressed for f in self.files)

    def is_balanced(self) -> bool:
        """rows_read == ingested + quarantined + duplicate + suppressed, for this run."""
        return self.rows_read == (
            self.rows_ingested + self.rows_quarantined + self.rows_duplicate + self.rows_suppressed
        )

    def summary(self) -> dict[str, Any]:
        """JSON-safe figures (for asset metadata and logs)."""
        return {
            "source": self.source,
            "files_seen": self.files_seen,
            "files_ingested": self.files_ingested,
            "files_skipped": self.files_skipped,
            "files_unreadable": self.files_unreadable,
            "rows_read": self.rows_read,
            "rows_ingested": self.rows_ingested,
            "rows_quarantined": self.rows_quarantined,
            "rows_duplicate": self.rows_duplicate,
            "rows_suppressed": self.rows_suppressed,
            "is_balanced": self.is_balanced(),
            "quarantine_reasons": dict(self.quarantine_reasons.most_common()),
            "lake_rows_total": self.lake_rows_total,
            "lake_files": self.lake_files,
            "files": [
                {
                    "path": f.path,
                    "sha256": f.sha256,
                    "status": f.status.value,
                    "rows_read": f.rows_read,
                    "rows_ingested": f.rows_ingested,
                    "rows_quarantined": f.rows_quarantined,
                    "rows_duplicate": f.rows_duplicate,
                    "rows_suppressed": f.rows_suppressed,
                    "reason": f.reason,
                }
                for f in self.files
            ],
        }
