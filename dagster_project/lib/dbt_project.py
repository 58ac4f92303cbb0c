"""The dbt project as the platform sees it: where it is and what it is told.

Everything dbt needs from the platform crosses here, once: the lake globs and trust order from
cdp.yml, the as-of date, the list of segment models, and the warehouse and lake paths (as the
environment variables ``profiles.yml`` and the source YAML read). Dagster's dbt assets and
``cdp dbt env|vars`` (used by ``make dbt-build``) call the same functions, so a hand-run build
sees exactly what a Dagster run sees. No Dagster here: the orchestration side (DbtProject,
parsing the manifest) is ``dagster_project.defs.dbt.project``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from dagster_project.lib.config import CdpConfig, SourceKind
from dagster_project.lib.workspace import Workspace

#: The dbt project shipped with the platform (``<repo>/dbt``).
DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt"

#: Folder (under the lake) for Parquet the platform computes outside dbt, e.g. clusters. The
#: leading underscore keeps it apart from source folders (source names start with a letter).
COMPUTED_SEGMENTS_FOLDER = "_segments"
BEHAVIOURAL_CLUSTERS_FILE = "behavioural_clusters.parquet"
#: Folder (under the lake) and file of the customer models' scores (dbt source models.*).
COMPUTED_MODELS_FOLDER = "_models"
CUSTOMER_SCORES_FILE = "customer_scores.parquet"
#: Folder (under the lake) of the decision log's Parquet export (dbt source decisions.*).
DECISION_LOG_FOLDER = "_decisions"

_IGNORED_DIRS = {"target", "logs", "dbt_packages", "__pycache__"}


def dbt_executable() -> str:
    """The dbt CLI of this Python environment (works when the venv is not on PATH)."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


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
        "cdp_models": model_vars(config),
    }


def model_vars(config: CdpConfig) -> dict[str, int]:
    """cdp.yml ``models:`` as the features macro reads it (macros/customer_features.sql)."""
    models = config.models
    return {
        "purchase_horizon_days": models.purchase_propensity.horizon_days,
        "churn_horizon_days": models.churn.horizon_days,
        "clv_horizon_days": models.clv.horizon_days,
        "training_cutoffs": models.training_cutoffs,
        "cutoff_step_days": models.cutoff_step_days,
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


def customer_scores_path(workspace: Workspace) -> Path:
    """Where the customer models asset writes and dbt's ``models`` source reads."""
    return workspace.lake / COMPUTED_MODELS_FOLDER / CUSTOMER_SCORES_FILE


def decision_log_dir(workspace: Workspace) -> Path:
    """Where the decision_log asset exports the log and dbt's ``decisions`` source reads."""
    return workspace.lake / DECISION_LOG_FOLDER


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


def environment_exports(workspace: Workspace) -> str:
    """``export`` lines for a shell, one per variable of ``dbt_environment``."""
    variables = dbt_environment(workspace)
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in variables.items())


def vars_json(config: CdpConfig, workspace: Workspace, as_of: date) -> str:
    """The JSON a hand-run ``dbt build --vars`` needs."""
    return json.dumps(dbt_vars(config, workspace, as_of))
