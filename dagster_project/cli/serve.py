"""``cdp serve`` (the GraphQL API under uvicorn) and ``cdp api-key`` (keys for it).

Registered by ``dagster_project/cli/main.py``::

    app.command()(serve)
    app.add_typer(api_key_app, name="api-key", help="Create and list API keys.")
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)

api_key_app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)


def _settings_env(home: Path | None) -> dict[str, str]:
    return {"CDP_HOME": str(home.resolve())} if home is not None else {}


def serve(
    host: Annotated[str | None, typer.Option(help="interface (default CDP_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default CDP_API_PORT, 8000)")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="worker processes (default CDP_API_WORKERS, 2)")
    ] = None,
    home: Annotated[Path | None, typer.Option(help="CDP_HOME (default ./.cdp)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    access_log: Annotated[bool, typer.Option(help="log every request (slower)")] = False,
) -> None:
    """Serve the GraphQL API (/graphql, /health, /metrics) from the published snapshot."""
    import uvicorn
    from pydantic import ValidationError

    from api.decisioning import read_policy
    from api.security import KeyFileError, load_keys_file
    from api.settings import ApiSettings
    from api.transport import TransportSettings, protocol_factory, settings_error
    from dagster_project.cli.privacy import require_privacy_key
    from decisions.policy import PolicyError
    from events.config import RealtimeConfigError, load_realtime

    os.environ.update(_settings_env(home))
    settings = ApiSettings()
    require_privacy_key(settings.home, settings.privacy_key, settings.privacy_key_file)
    try:
        transport = TransportSettings()
    except ValidationError as exc:
        console.print(f"[red]{settings_error(exc)}[/red]")
        raise typer.Exit(2) from exc
    host = host or settings.api_host
    port = port or settings.api_port
    workers = workers or settings.api_workers
    try:
        keys = load_keys_file(settings.keys_path)
    except KeyFileError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    try:
        # the decision policy's shape, here with a readable message; its segment and trait
        # names are checked against the snapshot when each worker starts
        read_policy(settings)
        # the realtime section (intake limits, identifier types), checked against the policy
        load_realtime(settings.config_path)
    except (PolicyError, RealtimeConfigError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if not keys.keys:
        console.print(
            f"[yellow]no API keys in {settings.keys_path}: every request will get 401. Create "
            "one with `cdp api-key create --name NAME --scopes profile:read`[/yellow]"
        )
    if workers > 1:
        # Each worker counts on its own; the /metrics endpoint aggregates these files.
        metrics_dir = settings.home.resolve() / "run" / f"prometheus-{port}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    console.print(
        f"GraphQL API on http://{host}:{port}/graphql  (health: /health, metrics: /metrics, "
        f"{workers} worker(s), snapshots from {settings.serving_dir})"
    )
    console.print(
        f"event intake (Segment HTTP API) on http://{host}:{port}/v1/track|identify|page|batch "
        f"into {settings.event_log_path}"
    )
    console.print(
        f"limits per connection: headers in {transport.header_timeout_seconds:g}s "
        f"(<= {transport.max_header_bytes} bytes), body in {transport.body_timeout_seconds:g}s, "
        f"idle keep-alive {transport.keep_alive_timeout_seconds:g}s; "
        f"{transport.max_concurrency} connections per worker"
    )
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        # uvicorn's httptools protocol with head and body deadlines and head size limits
        # (api/transport.py); a picklable factory, so spawned workers get the same settings
        http=protocol_factory(transport),  # type: ignore[arg-type]
        ws="none",  # the API has no WebSocket endpoint: an Upgrade header is plain HTTP
        limit_concurrency=transport.max_concurrency,
        backlog=transport.backlog,
        timeout_keep_alive=transport.keep_alive_timeout_seconds,
        access_log=access_log,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )


@api_key_app.command("create")
def create_api_key(
    name: Annotated[str, typer.Option(help="who uses the key, e.g. web-personalization")],
    scopes: Annotated[
        str,
        typer.Option(
            help="comma-separated: profile:read, pii:read, segments:read, metrics:read, "
            "decisions:write, decisions:read, admin"
        ),
    ],
    description: Annotated[str, typer.Option(help="free text")] = "",
    replace: Annotated[bool, typer.Option(help="rotate an existing key of that name")] = False,
    out: Annotated[
        Path | None, typer.Option(help="also write the secret to this file (mode 600)")
    ] = None,
    home: Annotated[Path | None, typer.Option(help="CDP_HOME (default ./.cdp)")] = None,
) -> None:
    """Create a key; its secret is printed once and only its SHA-256 is stored."""
    from api.security import KeyFileError, create_key
    from api.settings import ApiSettings

    settings = ApiSettings(**({"home": home} if home is not None else {}))
    try:
        secret = create_key(
            settings.keys_path,
            name,
            [s.strip() for s in scopes.split(",") if s.strip()],
            description=description,
            replace=replace,
        )
    except KeyFileError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if out is not None:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secret + "\n")
    console.print(f"key '{name}' stored in {settings.keys_path}; it cannot be shown again:")
    typer.echo(secret)


@api_key_app.command("list")
def list_api_keys(
    home: Annotated[Path | None, typer.Option(help="CDP_HOME (default ./.cdp)")] = None,
) -> None:
    """List keys (names, scopes, creation time; never secrets)."""
    from api.security import KeyFileError, load_keys_file
    from api.settings import ApiSettings

    settings = ApiSettings(**({"home": home} if home is not None else {}))
    try:
        keys = load_keys_file(settings.keys_path)
    except KeyFileError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    table = Table(title=str(settings.keys_path))
    for column in ("name", "scopes", "created", "disabled", "description"):
        table.add_column(column)
    for key in keys.keys:
        table.add_row(
            key.name,
            ", ".join(s.value for s in key.scopes),
            key.created_at.isoformat() if key.created_at else "",
            "yes" if key.is_disabled else "",
            key.description,
        )
    console.print(table)
