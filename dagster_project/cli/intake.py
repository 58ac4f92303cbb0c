"""``cdp write-key`` (the intake's keys, one per source) and ``cdp events`` (the event log).

Registered by ``dagster_project/cli/main.py``::

    app.add_typer(write_key_app, name="write-key", help=...)
    app.add_typer(events_app, name="events", help=...)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from api.settings import ApiSettings

console = Console(stderr=True)
out = Console()

write_key_app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)
events_app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)

HomeOption = Annotated[Path | None, typer.Option(help="CDP_HOME (default ./.cdp)")]


def _settings(home: Path | None) -> ApiSettings:
    from api.settings import ApiSettings

    return ApiSettings(**({"home": home} if home is not None else {}))


@write_key_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="the source sending with it, e.g. web or orders")],
    replace: Annotated[bool, typer.Option(help="rotate the source's existing key")] = False,
    home: HomeOption = None,
) -> None:
    """Create a source's write key; it is printed once and only its SHA-256 is stored."""
    from events.write_keys import WriteKeyError, create_write_key

    path = _settings(home).write_keys_path
    try:
        key = create_write_key(path, name, replace=replace)
    except WriteKeyError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    console.print(
        f"write key of source '{name}' stored in {path}; it cannot be shown again. Segment "
        "SDKs send it as the write key (HTTP Basic username):"
    )
    typer.echo(key)


@write_key_app.command("list")
def list_keys(home: HomeOption = None) -> None:
    """List sources with a write key (never the keys)."""
    from events.write_keys import WriteKeyError, load_write_keys

    path = _settings(home).write_keys_path
    try:
        keys = load_write_keys(path)
    except WriteKeyError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    table = Table(title=str(path))
    for column in ("source", "created", "revoked"):
        table.add_column(column)
    for key in keys.keys:
        table.add_row(key.name, key.created_at.isoformat(), "yes" if key.is_disabled else "")
    out.print(table)


@write_key_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="the source whose key stops working")],
    home: HomeOption = None,
) -> None:
    """Disable a source's key (a running API stops accepting it within a poll interval)."""
    from events.write_keys import WriteKeyError, revoke_write_key

    path = _settings(home).write_keys_path
    try:
        revoke_write_key(path, name)
    except WriteKeyError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    console.print(f"write key of source '{name}' revoked")


@events_app.command("failed")
def failed(
    reason: Annotated[
        str | None, typer.Option(help="only this reason (invalid_json, event_too_large, ...)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="most rows shown")] = 50,
    after: Annotated[int, typer.Option(min=0, help="only ids above this one (paging)")] = 0,
    home: HomeOption = None,
) -> None:
    """Input the intake kept as failed events: id, time, source, reason, what to fix."""
    from events.intake import REASONS
    from events.log import SqliteEventLog

    if reason is not None and reason not in REASONS:
        console.print(f"[red]unknown reason '{escape(reason)}'; one of: {', '.join(REASONS)}[/red]")
        raise typer.Exit(2)
    path = _settings(home).event_log_path
    if not path.is_file():
        console.print(f"no event log at {path} yet (the API creates it when it starts)")
        return
    with SqliteEventLog(path) as log:
        rows = log.failed(reason=reason, limit=limit, after_id=after)
    table = Table(title=f"failed events in {path}")
    for column in ("id", "received", "source", "reason", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.failed_id),
            row.received_at.isoformat(timespec="seconds"),
            escape(row.source or "-"),
            row.reason,
            escape(row.detail),
        )
    out.print(table)
    if len(rows) == limit:
        console.print(f"more may follow: --after {rows[-1].failed_id}")


@events_app.command("status")
def status(home: HomeOption = None) -> None:
    """The log's head offset and its failed events per reason."""
    from events.log import SqliteEventLog

    path = _settings(home).event_log_path
    if not path.is_file():
        console.print(f"no event log at {path} yet (the API creates it when it starts)")
        return
    with SqliteEventLog(path) as log:
        stats = log.stats()
        counts = log.failed_counts()
    out.print(f"event log {path}")
    out.print(f"head offset: {stats.head}")
    out.print(f"failed events: {stats.failed}")
    if counts:
        table = Table()
        table.add_column("reason")
        table.add_column("failed", justify="right")
        for name, count in sorted(counts.items()):
            table.add_row(name, str(count))
        out.print(table)
