"""Headless materialization of the same asset graph the UI shows (``cdp run``).

Runs go into the Dagster instance under CDP_HOME, so the UI started by ``make demo`` lists them
with all their metadata and check results.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.storage.dagster_run import make_new_run_id

from dagster_project.definitions import build_definitions
from dagster_project.defs.schedules import FULL_REFRESH_JOB
from dagster_project.lib.settings import PlatformSettings
from dagster_project.lib.workspace import Workspace

# The CLI shows its own progress; Dagster's per-event console log would drown it.
_QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

_DAGSTER_YAML = """\
# Written by cdp: local instance shared by `cdp run` and the Dagster UI.
telemetry:
  enabled: false
"""


@dataclass
class StepOutcome:
    """One asset or check as the run left it."""

    name: str
    kind: str  # "asset" or "check"
    ok: bool
    detail: str = ""
    is_warning: bool = False  # a failed check of WARN severity: shown, but the run still passes


@dataclass
class RunOutcome:
    """Summary of a ``cdp run`` for the CLI and for tests."""

    run_id: str
    success: bool
    steps: list[StepOutcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def prepare_instance(workspace: Workspace) -> dg.DagsterInstance:
    """The persistent instance under CDP_HOME (DAGSTER_HOME is how Dagster finds it)."""
    home = workspace.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(_DAGSTER_YAML, encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home.resolve())
    return dg.DagsterInstance.get()


def _selected_keys(defs: dg.Definitions, select: Sequence[str]) -> list[dg.AssetKey] | None:
    if not select:
        return None
    graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.from_coercible(list(select)).resolve(graph)
    if not keys:
        raise ValueError(f"--select {list(select)} matches no asset")
    return sorted(keys, key=lambda k: k.to_user_string())


def run_pipeline(
    settings: PlatformSettings,
    *,
    select: Sequence[str] = (),
    on_event: Callable[[str, int, int], None] | None = None,
    poll_seconds: float = 0.5,
) -> RunOutcome:
    """Materialize the graph (or a selection); ``on_event(label, done, total)`` reports steps."""
    workspace = Workspace(Path(settings.home).resolve()).ensure()
    instance = prepare_instance(workspace)
    defs = build_definitions(settings)
    job = defs.resolve_job_def(FULL_REFRESH_JOB)
    asset_selection = _selected_keys(defs, select)
    run_id = make_new_run_id()
    holder: dict[str, dg.ExecuteInProcessResult | BaseException] = {}

    def _execute() -> None:
        try:
            holder["result"] = job.execute_in_process(
                instance=instance,
                run_id=run_id,
                asset_selection=asset_selection,
                raise_on_error=False,
                run_config=_QUIET_CONSOLE,
                tags={"cdp/as_of": settings.as_of.isoformat() if settings.as_of else "now"},
            )
        except BaseException as exc:  # surfaced below, after the thread ends
            holder["error"] = exc

    worker = threading.Thread(target=_execute, name=f"cdp-run-{run_id[:8]}")
    worker.start()
    done_steps: set[str] = set()
    total = 0
    while worker.is_alive():
        worker.join(poll_seconds)
        if on_event is None:
            continue
        records = instance.all_logs(run_id)
        planned = {
            r.dagster_event.step_key
            for r in records
            if r.dagster_event and r.dagster_event.event_type == dg.DagsterEventType.STEP_START
        }
        finished = [
            r.dagster_event.step_key
            for r in records
            if r.dagster_event
            and r.dagster_event.event_type
            in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)
        ]
        total = max(total, len(job.nodes) if asset_selection is None else len(planned))
        for step in finished:
            if step and step not in done_steps:
                done_steps.add(step)
                on_event(step, len(done_steps), max(total, len(done_steps)))
    if "error" in holder:
        raise holder["error"]  # type: ignore[misc]
    result = holder["result"]
    assert isinstance(result, dg.ExecuteInProcessResult)
    return summarize(result)


def summarize(result: dg.ExecuteInProcessResult) -> RunOutcome:
    """Turn Dagster's event stream into what a person wants to read after a run."""
    outcome = RunOutcome(run_id=result.run_id, success=result.success)
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        rows = mat.metadata.get("dagster/row_count")
        detail = f"{rows.value} rows" if rows is not None else ""
        outcome.steps.append(StepOutcome(mat.asset_key.to_user_string(), "asset", True, detail))
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        desc = evaluation.description or ""
        is_warning = evaluation.severity == dg.AssetCheckSeverity.WARN
        outcome.steps.append(StepOutcome(name, "check", evaluation.passed, desc, is_warning))
    for failure in result.get_step_failure_events():
        data = failure.step_failure_data
        message = data.user_failure_data.description if data.user_failure_data else None
        if not message and data.error is not None:
            message = data.error.message.strip()
        outcome.failures.append(f"{failure.step_key}: {message}")
    return outcome
