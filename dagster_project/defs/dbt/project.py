"""The dbt project as the orchestrator sees it: a DbtProject, and its manifest kept fresh.

What dbt is told (vars, environment, paths) is the platform library's
(``dagster_project.lib.dbt_project``); this module adds only what needs dagster-dbt.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from dagster_project.lib.dbt_project import (
    DBT_PROJECT_DIR,
    dbt_executable,
    project_fingerprint,
    segment_model_names,
)

logger = logging.getLogger(__name__)

_FINGERPRINT_FILE = "cdp_manifest_fingerprint.txt"


def dbt_project(project_dir: Path = DBT_PROJECT_DIR) -> DbtProject:
    """A DbtProject whose profiles.yml lives in the project folder."""
    return DbtProject(project_dir=project_dir, profiles_dir=project_dir)


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
