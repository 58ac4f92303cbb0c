"""``cdp outbox ...`` (inspect and replay trigger messages) and ``cdp webhook-receiver``.

Registered by ``dagster_project/cli/main.py``::

    app.add_typer(outbox_app, name="outbox", help="Trigger messages: status, dead letters, replay.")
    app.command("webhook-receiver")(webhook_receiver)

The outbox lives in ``CDP_HOME/events/state.sqlite`` next to the stream processor's state; these
commands open it with short transactions, so they are safe while ``cdp stream`` runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.json import JSON
from rich.markup import escape
from rich.table import Table

from dagster_project.lib.settings import PlatformSettings

if TYPE_CHECKING:
    from events.config import RealtimeConfig

console = Console(stderr=True)
out = Console()

outbox_app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)

HomeOption = Annotated[Path | None, typer.Option(help="CDP_HOME (default $CDP_HOME or ./.cdp)")]
ConfigOption = Annotated[
    Path | None, typer.Option(help="cdp.yml (default $CDP_CONFIG or CDP_HOME/cdp.yml)")
]


def _settings(home: Path | None, config: Path | None = None) -> PlatformSettings:
    overrides: dict[str, Path] = {}
    if home is not None:
        overrides["home"] = home
    if config is not None:
        overrides["config"] = config
    return PlatformSettings(**overrides)


@contextmanager
def _outbox(home: Path | None) -> Iterator[sqlite3.Connection]:
    """The state file's connection; exits 1 with a hint when there is no outbox yet."""
    from events.state import connect, state_path

    path = state_path(_settings(home).home)
    if not path.is_file():
        console.print(
            f"[yellow]no outbox yet: {path} does not exist (`cdp stream` creates it)[/yellow]"
        )
        raise typer.Exit(1)
    conn = connect(path)
    try:
        present = conn.execute(
            "select 1 from sqlite_master where type = 'table' and name = 'outbox'"
        ).fetchone()
        if present is None:
            console.print(f"[yellow]{path} has no outbox table yet (start `cdp stream`)[/yellow]")
            raise typer.Exit(1)
        yield conn
    finally:
        conn.close()


def _realtime(home: Path | None, config: Path | None) -> tuple[Path, RealtimeConfig]:
    from decisions.policy import PolicyError
    from events.config import RealtimeConfigError, load_realtime

    settings = _settings(home, config)
    try:
        realtime, _policy = load_realtime(settings.config_path)
    except (PolicyError, RealtimeConfigError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    return settings.home, realtime


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


def _when(at: datetime | None) -> str:
    return "" if at is None else at.strftime("%Y-%m-%d %H:%M:%S")


@outbox_app.command("status")
def status(home: HomeOption = None) -> None:
    """Messages by status and channel, and how long the oldest pending one has waited."""
    from events.outbox import STATUSES, counts

    with _outbox(home) as conn:
        found = counts(conn)
    channels = sorted({channel for channel, _ in found.by_channel})
    table = Table(title="outbox")
    table.add_column("channel")
    for name in STATUSES:
        table.add_column(name, justify="right")
    for channel in channels:
        cells = [str(found.by_channel.get((channel, name), 0)) for name in STATUSES]
        if cells[2] != "0":
            cells[2] = f"[red]{cells[2]}[/red]"
        table.add_row(channel, *cells)
    table.add_row("[bold]all[/bold]", *(str(found.by_status[name]) for name in STATUSES))
    out.print(table)
    now = datetime.now(UTC)
    oldest = (
        f"{_age(found.oldest_pending_age_seconds(now))} (created {_when(found.oldest_pending_at)})"
        if found.oldest_pending_at
        else "none"
    )
    out.print(f"depth (pending): {found.depth}   oldest pending: {oldest}")
    out.print(f"failed attempts (retries and give-ups): {found.failed_attempts}")
    if found.by_status["dead"]:
        console.print(
            "[yellow]dead letters: `cdp outbox list --status dead`, fix the channel, then "
            "`cdp outbox replay --all-dead`[/yellow]",
            soft_wrap=True,
        )


@outbox_app.command("list")
def list_messages(
    status: Annotated[
        str | None, typer.Option(help="pending, delivered or dead (default: all)")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="only this channel")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many, newest first")] = 50,
    home: HomeOption = None,
) -> None:
    """Messages, newest first, with their attempts and last error."""
    from events.outbox import STATUSES
    from events.outbox import list_messages as listed

    if status is not None and status not in STATUSES:
        console.print(
            f"[red]--status: '{escape(status)}' is not one of {', '.join(STATUSES)}[/red]"
        )
        raise typer.Exit(2)
    with _outbox(home) as conn:
        records = listed(conn, status, channel=channel, limit=limit)
    table = Table(title=f"outbox: {status or 'all'} ({len(records)} shown)")
    for column in ("key", "channel", "trigger", "customer", "status", "attempts", "created"):
        table.add_column(column, no_wrap=column == "key")
    table.add_column("next try / last error")
    for record in records:
        if record.status == "pending":
            detail = f"next {_when(record.next_attempt_at)}"
            if record.last_error:
                detail += f"; {record.last_error}"
        else:
            detail = record.last_error or ""
        table.add_row(
            escape(record.key),
            record.channel,
            record.trigger,
            escape(record.customer_id),
            record.status,
            str(record.attempts),
            _when(record.created_at),
            escape(detail[:120]),
        )
    out.print(table)


@outbox_app.command("show")
def show(
    key: Annotated[str, typer.Argument(help="the message key (its Idempotency-Key)")],
    home: HomeOption = None,
) -> None:
    """One message: its delivery history and the payload the webhook receives."""
    from events.outbox import get_message

    with _outbox(home) as conn:
        record = get_message(conn, key)
    if record is None:
        console.print(f"[red]no outbox message with key '{escape(key)}'[/red]")
        raise typer.Exit(1)
    table = Table(show_header=False, title=f"outbox message {escape(record.key)}")
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in (
        ("message id", str(record.message_id)),
        ("channel", record.channel),
        ("trigger", record.trigger),
        ("customer", record.customer_id),
        ("decision", record.decision_id),
        ("status", record.status),
        ("attempts", str(record.attempts)),
        ("created", _when(record.created_at)),
        ("next attempt", _when(record.next_attempt_at) if record.status == "pending" else ""),
        ("last attempt", _when(record.last_attempt_at)),
        ("delivered", _when(record.delivered_at)),
        ("dead since", _when(record.dead_at)),
        ("replayed", _when(record.replayed_at)),
        ("last error", record.last_error or ""),
    ):
        if value:
            table.add_row(name, escape(value))
    out.print(table)
    out.print(JSON(record.payload_json))


@outbox_app.command("replay")
def replay(
    keys: Annotated[list[str] | None, typer.Argument(help="keys of dead messages")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="every dead message")] = False,
    home: HomeOption = None,
) -> None:
    """Put dead messages back to pending (attempts reset, a fresh retry window)."""
    from events.outbox import replay as replayed
    from events.outbox import transaction

    if bool(keys) == all_dead:
        console.print("[red]give message keys or --all-dead (not both)[/red]")
        raise typer.Exit(2)
    with _outbox(home) as conn, transaction(conn):
        result = replayed(conn, keys or (), all_dead=all_dead, now=datetime.now(UTC))
    for key, why in result.skipped.items():
        console.print(f"[yellow]{escape(key)}: {why}, not replayed[/yellow]", soft_wrap=True)
    out.print(f"replayed {len(result.replayed)} message(s); the delivery worker sends them now")
    if keys and not result.replayed:
        raise typer.Exit(1)


@outbox_app.command("secret")
def secret(
    channel: Annotated[str, typer.Argument(help="the channel, e.g. email")],
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Print the channel's signing secret (created on first use) for its webhook receiver."""
    from events.signing import SecretError, channel_secret

    cdp_home, realtime = _realtime(home, config)
    try:
        value = channel_secret(cdp_home, channel, realtime)
    except SecretError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    out.print(value, highlight=False, soft_wrap=True)


def webhook_receiver(
    channel: Annotated[str, typer.Option(help="the channel whose secret verifies deliveries")],
    out_file: Annotated[
        Path, typer.Option("--out", help="JSON-lines file each accepted message is appended to")
    ],
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8025,
    host: Annotated[str, typer.Option(help="interface")] = "127.0.0.1",
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """A demo channel endpoint: verifies signatures, dedupes, appends messages to a file.

    A real channel (an e-mail or push service) replaces it; it shows what one must do.
    """
    import logging

    from events.receiver import WebhookReceiver
    from events.signing import SecretError, channel_secret

    cdp_home, realtime = _realtime(home, config)
    try:
        value = channel_secret(cdp_home, channel, realtime)
        receiver = WebhookReceiver(value, out_file, host=host, port=port)
    except SecretError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    except OSError as exc:
        console.print(f"[red]cannot listen on {host}:{port}: {exc.strerror}[/red]")
        raise typer.Exit(2) from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    console.print(
        f"demo webhook receiver for '{channel}' on {receiver.url} (any path), appending "
        f"accepted messages to {out_file}; Ctrl-C stops it"
    )
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.shutdown()
    console.print(
        f"accepted {receiver.accepted}, duplicates {receiver.duplicates}, "
        f"refused {receiver.refused}"
    )
