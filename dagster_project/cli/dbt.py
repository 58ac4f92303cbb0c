"""``cdp dbt env`` and ``cdp dbt vars``: what a hand-run dbt build needs, as Dagster sees it.

``make dbt-build`` evaluates ``cdp dbt env`` (export lines for the warehouse and lake paths)
and passes ``cdp dbt vars`` (the JSON of ``--vars``) to dbt, both computed by the same library
functions the Dagster dbt assets use, from the CDP_* settings (CDP_HOME, CDP_CONFIG, CDP_AS_OF).
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console

from dagster_project.lib.config import ConfigError, load_config
from dagster_project.lib.dbt_project import environment_exports, vars_json
from dagster_project.lib.settings import PlatformSettings
from dagster_project.lib.workspace import Workspace

app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)
console = Console(stderr=True)


@app.command()
def env() -> None:
    """Print `export` lines for the variables profiles.yml and the sources read."""
    settings = PlatformSettings()
    typer.echo(environment_exports(Workspace(settings.home.resolve())))


@app.command("vars")
def vars_() -> None:
    """Print the JSON of dbt's --vars for the current cdp.yml and as-of date."""
    settings = PlatformSettings()
    try:
        config = load_config(settings.config_path).config
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    as_of = settings.as_of or datetime.now(UTC).date()
    typer.echo(vars_json(config, Workspace(settings.home.resolve()), as_of))
