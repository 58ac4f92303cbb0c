"""``cdp``: generate sample data, run the pipeline, resolve identities, serve.

Heavy imports (Dagster, Splink) happen inside commands so ``cdp --help`` stays instant.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dagster_project.cli.console import progress_bar
from dagster_project.cli.dbt import app as dbt_app
from dagster_project.cli.decisions import decide, decisions_app
from dagster_project.cli.identity import app as identity_app
from dagster_project.cli.intake import events_app, write_key_app
from dagster_project.cli.logs import terminal_logging
from dagster_project.cli.outbox import outbox_app, webhook_receiver
from dagster_project.cli.privacy import privacy_app, require_privacy_key
from dagster_project.cli.serve import api_key_app, serve
from dagster_project.cli.stream import stream
from dagster_project.lib.config import ConfigError, IngestLimits, load_config
from dagster_project.lib.logs import LOG_LEVEL_VARIABLE, chosen_log_level
from dagster_project.lib.settings import PlatformSettings

if TYPE_CHECKING:
    from dagster_project.runner import RunOutcome

app = typer.Typer(
    name="cdp",
    help="Open customer data platform: ingest, resolve identities, model profiles, serve.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="folder for landing/, cdp.yml and ground_truth/")],
    persons: Annotated[int, typer.Option(min=1, help="number of people in the world")] = 10_000,
    seed: Annotated[int, typer.Option(help="random seed; same seed and end give same files")] = 42,
    end: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="last day of activity (default: today, UTC)"),
    ] = None,
    days: Annotated[int, typer.Option(min=30, help="days of history before END")] = 730,
    force: Annotated[
        bool, typer.Option("--force", help="replace previously generated data in OUT")
    ] = False,
) -> None:
    """Write a realistic retail world: sources as delivered, a ready cdp.yml, ground truth."""
    from dagster_project.lib.generate import GeneratorError, generate_world

    end_date = end.date() if end else datetime.now(UTC).date()
    with progress_bar() as progress:
        tasks: dict[str, int] = {}

        def _on_step(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total)
            progress.update(tasks[step], completed=done, total=total)

        try:
            report = generate_world(
                out, persons, seed, end=end_date, days=days, progress=_on_step, overwrite=force
            )
        except GeneratorError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    table = Table(title=f"Generated {report.persons:,} persons in {report.seconds:.1f}s")
    table.add_column("source")
    table.add_column("rows", justify="right")
    for name, rows in report.rows.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    console.print(f"cdp.yml: {out / 'cdp.yml'}   ground truth: {out / 'ground_truth'}")


@app.command()
def validate(
    config: Annotated[Path | None, typer.Option(help="cdp.yml (default CDP_HOME/cdp.yml)")] = None,
) -> None:
    """Check a cdp.yml and list what each source will ingest.

    Exits 2 when cdp.yml is invalid and 1 when a source's glob matches no file (the ingest of
    that source would fail), after listing every source.
    """
    settings = PlatformSettings(config=config) if config else PlatformSettings()
    try:
        loaded = load_config(settings.config_path)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    table = Table(title=str(loaded.path))
    table.add_column("source", no_wrap=True)
    for column in ("kind", "format", "glob", "files"):
        table.add_column(column)
    empty: list[str] = []
    limits: list[str] = []
    for source in loaded.config.sources:
        files = loaded.source_files(source, settings.home)
        count = str(len(files)) if files else "[red]0[/red]"
        table.add_row(source.name, str(source.kind), source.format, source.path, count)
        if not files:
            folder = loaded.source_folder(source, settings.home)
            empty.append(
                f"source '{source.name}': no file matches '{source.path}' in {folder}; deliver "
                f"the source's files there or fix sources.{source.name}.path in {loaded.path}"
            )
        if source.ingest.model_fields_set:
            limits.append(f"{source.name}: {_limits_text(loaded.config.limits_for(source))}")
    console.print(table)
    console.print(f"ingest limits: {_limits_text(loaded.config.ingest)}", soft_wrap=True)
    for line in limits:
        console.print(f"  {line}", soft_wrap=True)
    for problem in empty:
        console.print(f"[red]{problem}[/red]", soft_wrap=True)
    if empty:
        raise typer.Exit(1)


def _limits_text(limits: IngestLimits) -> str:
    return f"max_field_chars {limits.max_field_chars}, max_row_bytes {limits.max_row_bytes}"


@app.command()
def run(
    as_of: Annotated[
        datetime | None,
        typer.Option("--as-of", formats=["%Y-%m-%d"], help="behave as if today were this date"),
    ] = None,
    select: Annotated[
        list[str] | None,
        typer.Option(help="asset selection (e.g. 'lake/crm', 'group:ingest'); default all"),
    ] = None,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            help=f"-v: the run's log and every asset and check (INFO); -vv: everything, "
            f"Splink and Dagster events included (DEBUG). Default: {LOG_LEVEL_VARIABLE} or "
            "warnings only",
        ),
    ] = 0,
) -> None:
    """Materialize the whole asset graph headless (the same graph the Dagster UI shows)."""
    from dagster_project.runner import EVENTS_LOGGER, run_pipeline

    level = _log_level(verbose)
    overrides: dict[str, date] = {"as_of": as_of.date()} if as_of else {}
    settings = PlatformSettings(**overrides)
    require_privacy_key(settings.home, settings.privacy_key, settings.privacy_key_file)
    with (
        terminal_logging(level, console, summarized=[EVENTS_LOGGER.name]),
        progress_bar() as progress,
    ):
        task = progress.add_task("materializing", total=None)

        def _on_event(step: str, done: int, total: int) -> None:
            progress.update(task, description=f"done: {step}", completed=done, total=total)

        try:
            outcome = run_pipeline(settings, select=select or (), on_event=_on_event)
        except ConfigError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    if level <= logging.INFO:
        _print_steps(outcome)
    else:
        _print_summary(outcome)
    for note in outcome.notes:  # what a successful run still wants its operator to know
        console.print(f"[cyan]note[/cyan]: {escape(note)}", soft_wrap=True)
    for failure in outcome.failures:
        console.print(f"[red]{failure}[/red]")
    failed_checks = [
        s for s in outcome.steps if s.kind == "check" and not s.ok and not s.is_warning
    ]
    if not outcome.success or failed_checks:
        raise typer.Exit(1)
    console.print(f"[green]run {outcome.run_id} succeeded[/green] in {outcome.seconds:.0f}s")


def _log_level(verbose: int) -> int:
    try:
        return chosen_log_level(verbose, os.environ)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


def _print_steps(outcome: RunOutcome) -> None:
    """Every asset and check of the run (``-v``)."""
    table = Table(title=f"run {outcome.run_id}")
    for column in ("asset / check", "kind", "status", "detail"):
        table.add_column(column)
    for step in outcome.steps:
        if step.ok:
            status = "[green]ok[/green]"
        else:
            status = "[yellow]warning[/yellow]" if step.is_warning else "[red]failed[/red]"
        table.add_row(step.name, step.kind, status, step.detail[:80])
    console.print(table)  # the run's warnings were shown as they came


def _print_summary(outcome: RunOutcome) -> None:
    """Counts per asset group, then only what needs a look: checks not passed, run warnings."""
    assets: Counter[str] = Counter()
    checks: dict[str, Counter[str]] = {}
    for step in outcome.steps:
        group = step.name.split(":")[0].split("/")[0]
        if step.kind == "asset":
            assets[group] += 1
            continue
        status = "passed" if step.ok else "warning" if step.is_warning else "failed"
        checks.setdefault(group, Counter())[status] += 1
    table = Table(title=f"run {outcome.run_id}")
    for column in ("group", "assets", "checks passed", "warnings", "failed"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for group in dict.fromkeys([*assets, *checks]):
        counts = checks.get(group, Counter())
        table.add_row(
            group,
            str(assets[group]),
            str(counts["passed"]),
            f"[yellow]{counts['warning']}[/yellow]" if counts["warning"] else "0",
            f"[red]{counts['failed']}[/red]" if counts["failed"] else "0",
        )
    console.print(table)
    for step in outcome.steps:
        if step.kind == "check" and not step.ok:
            colour = "yellow" if step.is_warning else "red"
            detail = " ".join(step.detail.split())[:160]
            console.print(f"[{colour}]{step.name}[/{colour}]: {detail}", soft_wrap=True)
    by_step = Counter(w.split(": ", 1)[0] for w in outcome.warnings)
    for step_key, count in by_step.items():
        first = next(w for w in outcome.warnings if w.startswith(f"{step_key}: "))
        console.print(
            f"[yellow]{step_key} logged {count} warning(s)[/yellow], e.g. "
            f"{first.split(': ', 1)[1][:100]}",
            soft_wrap=True,
        )
    if outcome.warnings or any(not s.ok for s in outcome.steps):
        console.print("details: `cdp run -v`, or the run's page in the Dagster UI")


app.add_typer(identity_app, name="identity", help="Resolve and evaluate identities on files.")
app.add_typer(dbt_app, name="dbt", help="The environment and vars of a hand-run dbt build.")
app.command()(serve)
app.add_typer(api_key_app, name="api-key", help="Create and list API keys.")
app.add_typer(write_key_app, name="write-key", help="Event intake write keys, one per source.")
app.add_typer(events_app, name="events", help="The event log: status and failed events.")
app.command()(decide)
app.add_typer(decisions_app, name="decisions", help="The decision log: export it to the lake.")
app.add_typer(outbox_app, name="outbox", help="Trigger messages: status, dead letters, replay.")
app.command("webhook-receiver")(webhook_receiver)
app.command()(stream)
app.add_typer(privacy_app, name="privacy", help="The privacy key; access exports of a person.")
