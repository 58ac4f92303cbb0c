"""The dbt project as the orchestrator sees it: where it is, what it is told, how it is parsed.

Everything dbt needs from the platform crosses here, once: the lake globs and trust order from
cdp.yml, the as-of date, the list of segment models, and the warehouse and lake paths (as the
environment variables ``profiles.yml`` and the source YAML read). ``make dbt-build`` uses the
same functions (``python -m dagster_project.defs.dbt.project``), so a hand-run build sees exactly
what a Dagster run sees.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliResource, DbtProject

from dagster_project.lib.config import CdpConfig, SourceKind, load_config
from dagster_project.lib.settings import PlatformSettings
from dagster_project.lib.workspace import Workspace

logger = logging.getLogger(__name__)

#: The dbt project shipped with the platform (``<repo>/dbt``).
DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt"

#: Folder (under the lake) for Parquet the platform computes outside dbt, e.g. clusters. The
#: leading underscore keeps it apart from source folders (source names start with a letter).
COMPUTED_SEGMENTS_FOLDER = "_segments"
BEHAVIOURAL_CLUSTERS_FILE = "behavioural_clusters.parquet"

_FINGERPRINT_FILE = "cdp_manifest_fingerprint.txt"
_IGNORED_DIRS = {"target", "logs", "dbt_packages", "__pycache__"}


def dbt_executable() -> str:
    """The dbt CLI of this Python environment (works when the venv is not on PATH)."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def dbt_project(project_dir: Path = DBT_PROJECT_DIR) -> DbtProject:
    """A DbtProject whose profiles.yml lives in the project folder."""
    return DbtProject(project_dir=project_dir, profiles_dir=project_dir)


def segment_model_names(project_dir: Path = DBT_PROJECT_DIR) -> list[str]:
    """Models in ``models/segments/``: adding a SQL file there adds a segment."""
    folder = project_dir / "models" / "segments"
    return sorted(p.stem for p in folder.rglob("*.sql")) if folder.is_dir() else []


def lake_globs(config: CdpConfig, lake_dir: Path) -> dict[str, list[str]]:
    """Parquet globs per source kind (every kind present, empty when no source has it)."""
    if "'" in str(lake_dir):
        raise ValueError(
            f"{lake_dir}: the lake path contains a single quote, which dbt's read_parquet "
            "globs cannot hold; move CDP_HOME to a path without one"
        )
    globs: dict[str, list[str]] = {kind.value: [] for kind in SourceKind}
    for source in config.sources:
        globs[source.kind.value].append(str(lake_dir / source.name / "*.parquet"))
    return globs


def dbt_vars(
    config: CdpConfig,
    workspace: Workspace,
    as_of: date,
    project_dir: Path = DBT_PROJECT_DIR,
) -> dict[str, Any]:
    """The ``--vars`` of a build: what cdp.yml and the run say, in the names the models use."""
    return {
        "as_of": as_of.isoformat(),
        "cdp_lake_globs": lake_globs(config, workspace.lake),
        "cdp_source_trust": {source.name: source.trust for source in config.sources},
        "cdp_segment_models": segment_model_names(project_dir),
    }


def dbt_environment(workspace: Workspace) -> dict[str, str]:
    """Environment variables profiles.yml and the source YAML read (absolute paths)."""
    return {
        "CDP_HOME": str(workspace.home.resolve()),
        "CDP_WAREHOUSE_PATH": str(workspace.warehouse.resolve()),
        "CDP_LAKE_PATH": str(workspace.lake.resolve()),
    }


def behavioural_clusters_path(workspace: Workspace) -> Path:
    """Where the clustering asset writes and dbt's ``clusters`` source reads."""
    return workspace.lake / COMPUTED_SEGMENTS_FOLDER / BEHAVIOURAL_CLUSTERS_FILE


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for a dbt subprocess started inside the block, then restore.

    DbtCliResource passes ``os.environ`` to dbt and has no per-call env parameter, so this is
    the edge where the run's paths reach the subprocess.
    """
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def reuse_partial_parse(run_dir: Path, target: Path) -> None:
    """Seed a dbt target folder with the newest partial parse an earlier build left.

    The run's first stage leaves one that the second stage can use as is (same vars); a later
    run with the same as-of date (same vars) can reuse the last run's. dbt checks validity
    itself (vars, profile, file hashes) and parses in full when it does not match.
    """
    destination = target / "partial_parse.msgpack"
    if destination.exists():
        return
    for pattern_root in (run_dir, run_dir.parent):
        if not pattern_root.is_dir():
            continue
        pattern = (
            "*/partial_parse.msgpack" if pattern_root == run_dir else "*/*/partial_parse.msgpack"
        )
        candidates = sorted(
            pattern_root.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True
        )
        if candidates:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(candidates[0], destination)
            return


def project_fingerprint(project_dir: Path, parse_vars: Mapping[str, Any]) -> str:
    """Changes whenever a file of the project (or the parse vars) changes."""
    digest = hashlib.sha256(json.dumps(parse_vars, sort_keys=True).encode())
    for path in sorted(project_dir.rglob("*")):
        relative = path.relative_to(project_dir)
        if relative.parts and relative.parts[0] in _IGNORED_DIRS:
            continue
        if path.is_file():
            stat = path.stat()
            digest.update(f"{relative}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def prepare_manifest(project: DbtProject) -> Path:
    """Parse the project when its manifest is missing or stale; return the manifest path.

    Runs at definition load, so a fresh clone (no ``target/``) and a newly added segment file
    both load without a manual ``dbt parse``. Parsing sees only the segment list: the asset
    graph does not depend on paths or dates, which the build passes later.
    """
    parse_vars = {"cdp_segment_models": segment_model_names(project.project_dir)}
    fingerprint = project_fingerprint(project.project_dir, parse_vars)
    marker = project.project_dir / project.target_path / _FINGERPRINT_FILE
    if project.manifest_path.exists() and marker.exists():
        # A hand-run dbt command rewrites manifest.json (with its own vars): parse again then.
        stamp = f"{fingerprint}:{project.manifest_path.stat().st_mtime_ns}"
        if marker.read_text(encoding="utf-8") == stamp:
            return project.manifest_path
    logger.info("parsing dbt project %s (manifest missing or stale)", project.project_dir)
    invocation = DbtCliResource(project_dir=project, dbt_executable=dbt_executable()).cli(
        ["parse", "--quiet", "--vars", json.dumps(parse_vars)],
        target_path=project.target_path,
        raise_on_error=False,
    )
    error = invocation.wait().get_error()
    if error is not None or not project.manifest_path.exists():
        raise RuntimeError(
            f"dbt parse of {project.project_dir} failed; fix the dbt project and reload: {error}"
        )
    stamp = f"{fingerprint}:{project.manifest_path.stat().st_mtime_ns}"
    marker.write_text(stamp, encoding="utf-8")
    return project.manifest_path


def main(argv: list[str] | None = None) -> int:
    """``python -m dagster_project.defs.dbt.project [env|vars]`` for ``make dbt-build``.

    ``env`` writes ``export`` lines for the environment, ``vars`` the JSON of ``--vars``, both
    from the CDP_* settings (CDP_HOME, CDP_CONFIG, CDP_AS_OF).
    """
    args = sys.argv[1:] if argv is None else argv
    what = args[0] if args else "vars"
    settings = PlatformSettings()
    workspace = Workspace(settings.home.resolve())
    if what == "env":
        variables = dbt_environment(workspace)
        lines = [f"export {key}={shlex.quote(value)}" for key, value in variables.items()]
        sys.stdout.write("\n".join(lines) + "\n")
        return 0
    if what == "vars":
        config = load_config(settings.config_path).config
        as_of = settings.as_of or datetime.now(UTC).date()
        sys.stdout.write(json.dumps(dbt_vars(config, workspace, as_of)) + "\n")
        return 0
    sys.stderr.write(f"unknown command {what!r}; use 'env' or 'vars'\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
