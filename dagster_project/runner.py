"""Headless materialization of the same asset graph the UI shows (``cdp run``).

Runs go into the Dagster instance under CDP_HOME, so the UI started by ``make demo`` lists them
with all their metadata and check results.

What the run says goes through Python logging, so the caller picks what reaches a terminal:
Dagster's console logger is silenced and the run's event log is replayed instead, each entry at
its own level on the ``dagster_project.runner.events`` logger (step start/success are DEBUG,
``context.log.info`` INFO, ...); what the run prints on stdout (dagster-dbt echoes dbt's log,
which dbt also keeps in ``runs/<run_id>/<op>/dbt.log``) becomes DEBUG records of
``dagster_project.runner.stdout``. Warnings and failures are also kept in the :class:`RunOutcome`
for the summary.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.storage.dagster_run import make_new_run_id

from dagster_project.definitions import build_definitions, run_console_config
from dagster_project.defs import RUN_NOTE_KEY
from dagster_project.defs.schedules import FULL_REFRESH_JOB
from dagster_project.lib.settings import PlatformSettings
from dagster_project.lib.workspace import Workspace
from privacy.erasure import home_lock

EVENTS_LOGGER = logging.getLogger("dagster_project.runner.events")
STDOUT_LOGGER = logging.getLogger("dagster_project.runner.stdout")

# Dagster's console logger writes to the terminal past Python logging: silence it, and replay
# the event log instead (the instance keeps every event at every level for the UI either way).
_SILENT_CONSOLE = run_console_config(logging.CRITICAL)
_STEP_DONE = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)

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
    #: What the run's code logged at WARNING or above (``step: message``); failed steps are
    #: in ``failures``.
    warnings: list[str] = field(default_factory=list)
    #: Lines assets asked the summary to show (``RUN_NOTE_KEY`` metadata), e.g. that identity
    #: resolved without its probabilistic model.
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


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


class _LogLines(io.TextIOBase):
    """A text stream whose lines become log records (no ``fileno``: Dagster leaves it be)."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        super().__init__()
        self._logger = logger
        self._level = level
        self._pending = ""

    def writable(self) -> bool:
        """A stream to write to."""
        return True

    def write(self, text: str) -> int:
        """Log each complete line; keep the rest for the next write."""
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            if line.strip():
                self._logger.log(self._level, "%s", line.rstrip())
        return len(text)

    def flush(self) -> None:
        """Log what is left of an unfinished line."""
        if self._pending.strip():
            self._logger.log(self._level, "%s", self._pending.rstrip())
        self._pending = ""


@contextmanager
def _run_output_as_logs() -> Iterator[None]:
    """While the run runs, what it prints goes to ``STDOUT_LOGGER`` (dbt's echo, mainly), and
    ``dagster.builtin`` records stop at Dagster's capture: they come back from the event log."""
    original, stream = sys.stdout, _LogLines(STDOUT_LOGGER, logging.DEBUG)
    builtin = logging.getLogger("dagster.builtin")
    propagate = builtin.propagate
    sys.stdout, builtin.propagate = stream, False
    try:
        yield
    finally:
        stream.flush()
        sys.stdout, builtin.propagate = original, propagate


class _EventReplay:
    """Reads a run's new event-log entries: logs them, tracks steps, keeps the warnings."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str) -> None:
        self._instance = instance
        self._run_id = run_id
        self._cursor: str | None = None
        self.started: set[str] = set()
        self.finished: list[str] = []
        self.warnings: list[str] = []

    def read(self) -> None:
        """Take in everything logged since the last read."""
        while True:
            page = self._instance.get_records_for_run(self._run_id, cursor=self._cursor)
            self._cursor = page.cursor
            for record in page.records:
                self._take(record.event_log_entry)
            if not page.has_more:
                return

    def _take(self, entry: dg.EventLogEntry) -> None:
        event = entry.dagster_event
        step = entry.step_key or "run"
        if event is not None and event.step_key:
            if event.event_type == dg.DagsterEventType.STEP_START:
                self.started.add(event.step_key)
            elif event.event_type in _STEP_DONE and event.step_key not in self.finished:
                self.finished.append(event.step_key)
        message = entry.message
        if entry.level >= logging.WARNING and event is None:
            self.warnings.append(f"{step}: {message}")
        if EVENTS_LOGGER.isEnabledFor(entry.level):
            if entry.error_info is not None and EVENTS_LOGGER.isEnabledFor(logging.DEBUG):
                message = f"{message}\n{entry.error_info.to_string()}"
            EVENTS_LOGGER.log(entry.level, "%s: %s", step, message)


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
                run_config=_SILENT_CONSOLE,
                tags={"cdp/as_of": settings.as_of.isoformat() if settings.as_of else "now"},
            )
        except BaseException as exc:  # surfaced below, after the thread ends
            holder["error"] = exc

    started = time.perf_counter()
    replay = _EventReplay(instance, run_id)
    reported = 0
    # an erasure and a run exclude each other: neither sees the other's stores half written
    waiting = (lambda: on_event("waiting for an erasure in progress", 0, 0)) if on_event else None
    with home_lock(workspace.home, on_wait=waiting), _run_output_as_logs():
        worker = threading.Thread(target=_execute, name=f"cdp-run-{run_id[:8]}")
        worker.start()
        alive = True
        while alive:
            worker.join(poll_seconds)
            alive = worker.is_alive()
            replay.read()
            total = len(job.nodes) if asset_selection is None else len(replay.started)
            for step in replay.finished[reported:]:
                reported += 1
                if on_event is not None:
                    on_event(step, reported, max(total, reported))
    if "error" in holder:
        raise holder["error"]  # type: ignore[misc]
    result = holder["result"]
    assert isinstance(result, dg.ExecuteInProcessResult)
    outcome = summarize(result)
    outcome.warnings = replay.warnings
    outcome.seconds = round(time.perf_counter() - started, 1)
    return outcome


def summarize(result: dg.ExecuteInProcessResult) -> RunOutcome:
    """Turn Dagster's event stream into what a person wants to read after a run."""
    outcome = RunOutcome(run_id=result.run_id, success=result.success)
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        rows = mat.metadata.get("dagster/row_count")
        detail = f"{rows.value} rows" if rows is not None else ""
        outcome.steps.append(StepOutcome(mat.asset_key.to_user_string(), "asset", True, detail))
        note = mat.metadata.get(RUN_NOTE_KEY)
        if note is not None and str(note.value) not in outcome.notes:
            outcome.notes.append(str(note.value))
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
