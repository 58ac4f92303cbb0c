"""``cdp decide`` (one decision, logged, with its reasons) and ``cdp decisions export``.

Registered by ``dagster_project/cli/main.py``::

    app.command()(decide)
    app.add_typer(decisions_app, name="decisions", help="The decision log.")

``cdp decide`` goes through the same service, snapshot facts and decision log as the API and
the daily batch, so what it prints is what the e-mail, the site and the call center get for
that customer in the period (and it counts: it is a real, logged decision).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dagster_project.lib.config import ConfigError, load_config
from dagster_project.lib.settings import PlatformSettings
from dagster_project.lib.workspace import Workspace

if TYPE_CHECKING:
    import sqlite3

    from decisions.types import Decision
    from snapshots import SnapshotManifest

console = Console(stderr=True)
out = Console()

decisions_app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)


def _now(as_of: date | None) -> datetime:
    """The end of the as-of day (as ``cdp run --as-of`` has it), else the wall clock."""
    if as_of is None:
        return datetime.now(UTC)
    return datetime.combine(as_of, time(23, 59, 59, 999999), tzinfo=UTC)


def _find_customer(
    con: sqlite3.Connection,
    manifest: SnapshotManifest,
    customer_id: str | None,
    email: str | None,
) -> str:
    """The current customer id for ``--customer-id`` (merged ids followed) or ``--email``."""
    from decisions.facts import resolve_customer_id
    from identity import IdentitySettings, Normalizer, Status
    from snapshots import NORMALIZATION_SETTINGS

    if customer_id is not None:
        found = resolve_customer_id(con, customer_id.strip())
        if found is None:
            console.print(f"[red]no customer '{escape(customer_id)}' in the snapshot[/red]")
            raise typer.Exit(1)
        return found
    assert email is not None
    settings = IdentitySettings.model_validate(
        {k: v for k, v in manifest.identity_settings.items() if k in NORMALIZATION_SETTINGS}
    )
    normalized, status = Normalizer(settings).identifier("email", email)
    if status in (Status.INVALID, Status.JUNK) or not normalized:
        console.print(f"[red]'{escape(email[:80])}' is not a usable e-mail address[/red]")
        raise typer.Exit(2)
    row = con.execute(
        "select l.customer_id from identifier_lookup as l "
        "join customers as c on c.customer_id = l.customer_id "
        "where l.identifier_type = 'email' and l.identifier_value = ?",
        (normalized,),
    ).fetchone()
    if row is None:
        console.print("[red]no customer with that e-mail address in the snapshot[/red]")
        raise typer.Exit(1)
    return str(row[0])


def decision_as_json(decision: Decision) -> dict[str, Any]:
    """The decision as JSON-ready data (datetimes as ISO 8601)."""

    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    return convert(asdict(decision))


def _print_decision(decision: Decision) -> None:
    verdict = "[green]send[/green]" if decision.send else "[yellow]no send[/yellow]"
    out.print(
        f"[bold]{decision.decision_id}[/bold]  {escape(decision.customer_id)}  "
        f"{decision.placement} on {decision.channel}: {verdict}"
    )
    summary = Table(show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column()
    arm = "holdout" if decision.is_holdout else "personalized"
    if decision.experiment is not None:
        arm = f"{decision.experiment.experiment}/{decision.experiment.arm}"
    rows = [
        ("reasons", ", ".join(decision.reasons) or "-"),
        ("theme", decision.theme or "-"),
        ("subject", decision.subject or "-"),
        ("arm", arm),
        ("policy", decision.policy_version),
        ("decided", decision.decided_at.isoformat()),
        ("expires", decision.expires_at.isoformat()),
    ]
    if decision.excluded:
        rows.append(
            ("excluded", ", ".join(f"{k}: {v}" for k, v in sorted(decision.excluded.items())))
        )
    for name, value in rows:
        summary.add_row(name, escape(str(value)))
    out.print(summary)
    if decision.items:
        items = Table(title="items")
        for column in ("#", "product", "sale", "score", "propensity", "wildcard", "reasons"):
            numeric = column in ("score", "propensity")
            items.add_column(column, justify="right" if numeric else "left")
        for index, item in enumerate(decision.items, start=1):
            items.add_row(
                str(index),
                escape(item.product_id),
                escape(item.sale_id or "-"),
                f"{item.score:.3f}",
                f"{item.propensity:.3f}",
                "yes" if item.is_wildcard else "",
                escape(", ".join(item.reasons)),
            )
        out.print(items)


def decide(
    customer_id: Annotated[
        str | None, typer.Option("--customer-id", help="customer id (merged ids are followed)")
    ] = None,
    email: Annotated[str | None, typer.Option(help="find the customer by e-mail address")] = None,
    channel: Annotated[str, typer.Option(help="channel asking: email, sms, push, web, ...")] = (
        "email"
    ),
    placement: Annotated[str, typer.Option(help="placement in cdp.yml decisions:")] = (
        "daily_email"
    ),
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of",
            formats=["%Y-%m-%d"],
            help="decide at the end of this day (default: CDP_AS_OF, else now)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
) -> None:
    """Decide (and log) what one customer gets on a channel and placement, with the reasons.

    The decision is real: logged, counted against caps, and the same for every channel asking
    in the period. Reads the published snapshot (run `cdp run` first).
    """
    from dagster_project.lib.decision_batch import load_decisions_policy
    from dagster_project.lib.snapshot_probe import open_current
    from decisions import DecisionRequestError, DecisionService, DecisionStore, PolicyError
    from decisions.facts import SnapshotFactsError, load_facts, load_sales
    from decisions.store import default_store_path
    from snapshots import SnapshotError

    if (customer_id is None) == (email is None):
        console.print("[red]give exactly one of --customer-id and --email[/red]")
        raise typer.Exit(2)
    settings = PlatformSettings()
    workspace = Workspace(settings.home.resolve())
    try:
        policy = load_decisions_policy(load_config(settings.config_path))
    except ConfigError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    now = _now(as_of.date() if as_of else settings.as_of)
    try:
        with open_current(workspace.serving) as snapshot:
            found = _find_customer(snapshot.con, snapshot.manifest, customer_id, email)
            facts = load_facts(snapshot.con, [found])[found]
            sales = load_sales(snapshot.con, now)
            with DecisionStore.open(default_store_path(workspace.home)) as store:
                service = DecisionService(policy, store)
                decision = service.decide(facts, channel, placement, now, sales=sales)
    except (SnapshotError, OSError) as exc:
        console.print(
            f"[red]no published snapshot to decide from ({escape(str(exc))}); run `cdp run` "
            "first[/red]"
        )
        raise typer.Exit(2) from exc
    except (DecisionRequestError, PolicyError, SnapshotFactsError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(decision_as_json(decision), indent=2, sort_keys=True))
    else:
        _print_decision(decision)


@decisions_app.command("export")
def export(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="folder for the Parquet files (default lake/_decisions)"),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="rewrite every day (default: only days with rows new since the last export)",
        ),
    ] = False,
) -> None:
    """Export the decision log to Parquet by day, as the decision_log asset does (dbt, analysts)."""
    from dagster_project.lib.dbt_project import decision_log_dir
    from decisions import DecisionStore
    from decisions.store import default_store_path

    settings = PlatformSettings()
    workspace = Workspace(settings.home.resolve())
    path = default_store_path(workspace.home)
    if not path.exists():
        console.print(f"[yellow]no decision log at {path}: nothing decided yet[/yellow]")
    target = out_dir or decision_log_dir(workspace)
    with DecisionStore.open(path) as store:
        result = store.export(target, full=full)
    mode = f"full export ({result.reason})" if result.full else "incremental export"
    table = Table(title=f"decision log -> {target}")
    table.add_column("table")
    table.add_column("rows written", justify="right")
    table.add_column("days rewritten", justify="right")
    table.add_column("total rows", justify="right")
    for name, rows in sorted(result.written.items()):
        table.add_row(
            f"{name}/", f"{rows:,}", f"{len(result.days[name]):,}", f"{result.totals[name]:,}"
        )
    console.print(table)
    console.print(f"{escape(mode)} in {result.seconds:.1f}s")
