"""The folders under CDP_HOME, named once so every writer and reader agrees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    """Paths below one CDP_HOME. Creating it makes the folders."""

    home: Path

    @property
    def lake(self) -> Path:
        """Typed Parquet, one folder per source, plus ``identity/``."""
        return self.home / "lake"

    @property
    def quarantine(self) -> Path:
        """Rows that failed validation, with the reason, file and line."""
        return self.home / "quarantine"

    @property
    def warehouse(self) -> Path:
        """The dbt target database, written only by the pipeline."""
        return self.home / "warehouse.duckdb"

    @property
    def serving(self) -> Path:
        """Published read-only snapshots for the API."""
        return self.home / "serving"

    @property
    def dagster_home(self) -> Path:
        """Dagster instance storage, shared by ``cdp run`` and the UI."""
        return self.home / "dagster"

    @property
    def runs(self) -> Path:
        """Per-run artefacts (trained models, reports)."""
        return self.home / "runs"

    def source_lake(self, source: str) -> Path:
        """Folder of one source's Parquet parts."""
        return self.lake / source

    def source_quarantine(self, source: str) -> Path:
        """Folder of one source's quarantined rows."""
        return self.quarantine / source

    @property
    def identity(self) -> Path:
        """identity_map, identity_edges, customer_id_history Parquet."""
        return self.lake / "identity"

    def ensure(self) -> Workspace:
        """Create the folders (idempotent) and return self."""
        for folder in (self.lake, self.quarantine, self.serving, self.dagster_home, self.runs):
            folder.mkdir(parents=True, exist_ok=True)
        return self
