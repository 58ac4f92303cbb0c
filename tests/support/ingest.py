"""One-source CDP homes for ingest tests: landing files, a cdp.yml, the ingest, the balance."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from dagster_project.lib.config import LoadedConfig, SourceConfig, load_config
from dagster_project.lib.ingest import IngestReport, ingest_source
from dagster_project.lib.workspace import Workspace

#: The ingestion time ingest tests pass (reproducible lake parts and versions).
AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def write_landing(home: Path, files: dict[str, bytes | str]) -> None:
    """Write ``files`` (path under landing/ -> content) as delivered."""
    for relative, content in files.items():
        path = home / "landing" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)


def setup(
    tmp_path: Path, source: dict[str, Any], files: dict[str, bytes | str], **top: Any
) -> tuple[LoadedConfig, SourceConfig, Workspace]:
    """A CDP_HOME with a landing folder holding ``files`` and a cdp.yml for one source.

    ``top`` adds top-level cdp.yml keys (e.g. ``ingest={...}``).
    """
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    write_landing(home, files)
    config = {"version": 1, "landing": "landing", "sources": [source], **top}
    (home / "cdp.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    loaded = load_config(home / "cdp.yml")
    return loaded, loaded.config.sources[0], Workspace(home)


def ingest(
    loaded: LoadedConfig, source: SourceConfig, workspace: Workspace, at: datetime = AT
) -> IngestReport:
    """Ingest the source and hold the run to "nothing lost" (per run and per file)."""
    report = ingest_source(loaded, source, workspace, ingested_at=at)
    assert report.is_balanced(), report.summary()
    assert all(f.is_balanced() for f in report.files)
    return report
