"""``cdp privacy``: the privacy key (create, status, rotate, rehash) and access exports.

Registered by ``dagster_project/cli/main.py``::

    app.add_typer(privacy_app, name="privacy", help=...)

:func:`require_privacy_key` is what ``cdp run``, ``cdp serve`` and ``cdp stream`` call first:
the platform does not start without a privacy key (see ``privacy.keys``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from pydantic import SecretStr

    from privacy.keys import HashedStore, Keyring, RehashReport

console = Console(stderr=True)

privacy_app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)
key_app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)
privacy_app.add_typer(
    key_app, name="key", help="The privacy key (keyed hashes of identifiers): create, rotate."
)

HomeOption = Annotated[Path | None, typer.Option(help="CDP_HOME (default ./.cdp)")]


def _settings(home: Path | None) -> tuple[Path, SecretStr | None, Path | None, Path]:
    """(home, CDP_PRIVACY_KEY, CDP_PRIVACY_KEY_FILE, cdp.yml) from the platform settings."""
    from dagster_project.lib.settings import PlatformSettings

    settings = PlatformSettings(**({"home": home} if home is not None else {}))
    return settings.home, settings.privacy_key, settings.privacy_key_file, settings.config_path


def load_privacy_keyring(home: Path, key: SecretStr | None, key_file: Path | None) -> Keyring:
    """The keyring the settings name (``privacy.keys.load_keyring``); PrivacyKeyError if none."""
    from privacy.keys import load_keyring

    return load_keyring(home, key.get_secret_value() if key is not None else None, key_file)


def require_privacy_key(home: Path, key: SecretStr | None, key_file: Path | None) -> Keyring:
    """The keyring, or exit 2 with a message saying how to create a key (for run/serve/stream)."""
    from privacy.keys import PrivacyKeyError

    try:
        return load_privacy_keyring(home, key, key_file)
    except PrivacyKeyError as exc:
        console.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc


def hashed_stores(home: Path) -> list[HashedStore]:
    """Every privacy store holding keyed hashes, for rotation: add each new store here.

    None holds any yet (the API's audit log records customer ids, not identifiers); the
    erasure requests and the suppression list implement ``privacy.keys.HashedStore``.
    """
    del home
    return []


@key_app.command("create")
def create_key(home: HomeOption = None) -> None:
    """Create the privacy key file (mode 0600) if there is none; never replaces a key."""
    from privacy.keys import KEY_VARIABLE, create_key_file, key_file_path

    cdp_home, key, key_file, _ = _settings(home)
    if key is not None and key.get_secret_value().strip():
        console.print(f"{KEY_VARIABLE} is set: that is the key in use; no file written")
        return
    path = key_file_path(cdp_home, key_file)
    created = create_key_file(path)
    if created is None:
        console.print(
            f"a privacy key already exists in {path}; it is kept (a new key would orphan the "
            "hashes stored under it: use `cdp privacy key rotate`)"
        )
        return
    console.print(f"privacy key {created.current.key_id} written to {path} (mode 0600)")


@key_app.command("status")
def key_status(home: HomeOption = None) -> None:
    """Where the key comes from and its key ids (exit 2 when there is none)."""
    cdp_home, key, key_file, _ = _settings(home)
    keyring = require_privacy_key(cdp_home, key, key_file)
    table = Table(title=f"privacy keys from {keyring.origin}")
    table.add_column("key id")
    table.add_column("role")
    for index, item in enumerate(keyring.keys):
        table.add_row(item.key_id, "current" if index == 0 else "older (matching only)")
    console.print(table)


def _print_rehash(reports: list[RehashReport]) -> None:
    if not reports:
        console.print("no privacy store holds keyed hashes yet: nothing to re-hash")
        return
    table = Table(title="re-hashed")
    for column in ("store", "re-hashed", "already current"):
        table.add_column(column)
    for report in reports:
        table.add_row(report.store, str(report.rehashed), str(report.unchanged))
    console.print(table)


@key_app.command("rotate")
def rotate_key(home: HomeOption = None) -> None:
    """Add a new current key to the key file (older keys kept) and re-hash every store."""
    from privacy.keys import KEY_VARIABLE, PrivacyKeyError, key_file_path, rotate_key_file

    cdp_home, key, key_file, _ = _settings(home)
    if key is not None and key.get_secret_value().strip():
        console.print(
            f"[red]the key comes from {KEY_VARIABLE}, which this command cannot change. Put a "
            f"new key first in {KEY_VARIABLE} (NEW,OLD: comma-separated hex), restart, then run "
            "`cdp privacy key rehash`[/red]",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    path = key_file_path(cdp_home, key_file)
    try:
        keyring, reports = rotate_key_file(path, hashed_stores(cdp_home))
    except PrivacyKeyError as exc:
        console.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    older = ", ".join(k.key_id for k in keyring.keys[1:])
    console.print(
        f"new current key {keyring.current.key_id} in {path}; kept for matching: {older}",
        soft_wrap=True,
    )
    _print_rehash(list(reports))
    console.print(
        "restart `cdp serve` and `cdp stream` so they hash with the new key", soft_wrap=True
    )


@key_app.command("retire")
def retire(
    key_id: Annotated[str, typer.Argument(help="the older key's id (`cdp privacy key status`)")],
    home: HomeOption = None,
) -> None:
    """Remove an older key from the key file, once no stored hash needs it to match."""
    from privacy.keys import KEY_VARIABLE, PrivacyKeyError, key_file_path, retire_key

    cdp_home, key, key_file, _ = _settings(home)
    if key is not None and key.get_secret_value().strip():
        console.print(f"[red]the keys come from {KEY_VARIABLE}: edit it there[/red]")
        raise typer.Exit(2)
    path = key_file_path(cdp_home, key_file)
    try:
        kept = retire_key(path, key_id, hashed_stores(cdp_home))
    except PrivacyKeyError as exc:
        console.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    console.print(f"key {key_id} removed from {path}; {len(kept.keys)} key(s) left")


@key_app.command("rehash")
def rehash(home: HomeOption = None) -> None:
    """Re-hash every privacy store under the current key (after a rotation by variable)."""
    from privacy.keys import rehash_stores

    cdp_home, key, key_file, _ = _settings(home)
    keyring = require_privacy_key(cdp_home, key, key_file)
    _print_rehash(list(rehash_stores(keyring, hashed_stores(cdp_home))))


def _write_private(path: Path, payload: bytes) -> None:
    """Write ``path`` atomically, mode 0600: an export is personal data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@privacy_app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="the JSON file to write (mode 0600)")],
    customer_id: Annotated[str | None, typer.Option(help="the person's customer id")] = None,
    email: Annotated[str | None, typer.Option(help="an email address of the person")] = None,
    phone: Annotated[str | None, typer.Option(help="a phone number of the person")] = None,
    identifier: Annotated[
        str | None, typer.Option(help="TYPE:VALUE, e.g. account_id:ACC-1 or cookie_id:ck_1")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Write everything held about one person (profile, identifiers, records, events,
    consents, decisions, id history) as JSON; an unknown person gives "nothing held"."""
    from decisions.policy import PolicyError
    from events.config import RealtimeConfigError, load_realtime
    from privacy.access import STEPS, AccessError, PersonRef, export_person, summary, to_json

    named = [v for v in (customer_id, email, phone, identifier) if v is not None]
    if len(named) != 1:
        console.print(
            "[red]name the person by exactly one of --customer-id, --email, --phone or "
            "--identifier TYPE:VALUE[/red]"
        )
        raise typer.Exit(2)
    cdp_home, _, _, config_path = _settings(home)
    try:
        if customer_id is not None:
            person = PersonRef(customer_id=customer_id)
        elif email is not None:
            person = PersonRef(identifier_type="email", value=email)
        elif phone is not None:
            person = PersonRef(identifier_type="phone", value=phone)
        else:
            assert identifier is not None
            person = PersonRef.parse_identifier(identifier)
        realtime, _ = load_realtime(config_path)
    except (AccessError, PolicyError, RealtimeConfigError) as exc:
        console.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        tasks = {step: progress.add_task(step, total=None, start=False) for step in STEPS}

        def _on_step(step: str, done: int, total: int) -> None:
            task = tasks[step]
            progress.start_task(task)
            progress.update(task, completed=done, total=max(total, done))

        try:
            document = export_person(
                cdp_home, person, identifier_types=realtime.identifiers, progress=_on_step
            )
        except AccessError as exc:
            console.print(f"[red]{exc}[/red]", soft_wrap=True)
            raise typer.Exit(2) from exc
    _write_private(out, to_json(document))
    if not document["found"]:
        console.print(f"nothing held about this person; {out} says so")
        return
    table = Table(title=f"held about {document['customer_ids'][0]}")
    table.add_column("category")
    table.add_column("count", justify="right")
    for name, count in summary(document).items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    console.print(f"written to {out} (mode 0600: it holds personal data)")
