"""``cdp privacy``: the privacy key (create, status, rotate, rehash) and access exports.

Registered by ``dagster_project/cli/main.py``::

    app.add_typer(privacy_app, name="privacy", help=...)

:func:`require_privacy_key` is what ``cdp run``, ``cdp serve`` and ``cdp stream`` call first:
the platform does not start without a privacy key (see ``privacy.keys``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dagster_project.cli.console import console, progress_bar

if TYPE_CHECKING:
    from pydantic import SecretStr

    from events.config import RealtimeConfig
    from privacy.access import PersonRef
    from privacy.erasure import ErasureResult
    from privacy.keys import HashedStore, Keyring, RehashReport


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

    The erasure requests and the suppression list (``privacy.sqlite``). The audit log's
    erased entries keep the keyed hash they had at erasure: they are a record, not matched.
    """
    from privacy.suppression import PrivacyStore

    return [PrivacyStore.at(home)]


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
    from events.fold import write_atomic

    write_atomic(path, payload, mode=0o600)


def _person(
    customer_id: str | None,
    email: str | None,
    phone: str | None,
    identifier: str | None,
    config_path: Path,
) -> tuple[PersonRef, RealtimeConfig]:
    """The person the options name and the realtime config (identifier types); exit 2 if bad."""
    from decisions.policy import PolicyError
    from events.config import RealtimeConfigError, load_realtime
    from privacy.access import AccessError, PersonRef

    named = [v for v in (customer_id, email, phone, identifier) if v is not None]
    if len(named) != 1:
        console.print(
            "[red]name the person by exactly one of --customer-id, --email, --phone or "
            "--identifier TYPE:VALUE[/red]"
        )
        raise typer.Exit(2)
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
    return person, realtime


CustomerIdOption = Annotated[str | None, typer.Option(help="the person's customer id")]
EmailOption = Annotated[str | None, typer.Option(help="an email address of the person")]
PhoneOption = Annotated[str | None, typer.Option(help="a phone number of the person")]
IdentifierOption = Annotated[
    str | None, typer.Option(help="TYPE:VALUE, e.g. account_id:ACC-1 or cookie_id:ck_1")
]


@privacy_app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="the JSON file to write (mode 0600)")],
    customer_id: CustomerIdOption = None,
    email: EmailOption = None,
    phone: PhoneOption = None,
    identifier: IdentifierOption = None,
    home: HomeOption = None,
) -> None:
    """Write everything held about one person (profile, identifiers, records, events,
    consents, decisions, id history) as JSON; an unknown person gives "nothing held"."""
    from privacy.access import STEPS, AccessError, export_person, summary, to_json

    cdp_home, _, _, config_path = _settings(home)
    person, realtime = _person(customer_id, email, phone, identifier, config_path)
    progress = progress_bar(transient=False)
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


def _print_result(result: ErasureResult) -> None:
    table = Table(title=f"erasure {result.request_id}: {result.status}")
    for column in ("store", "status", "removed", "left", "seconds", "detail"):
        table.add_column(column, justify="right" if column in ("removed", "left") else "left")
    for step in result.steps:
        colour = "green" if step.status in ("verified", "absent") else "red"
        detail = step.error or "; ".join(
            [f"{k}: {v}" for k, v in sorted(step.erased.removed.items()) if v]
            + list(step.erased.notes)
        )
        table.add_row(
            step.store,
            f"[{colour}]{step.status}[/{colour}]",
            f"{step.erased.total:,}",
            f"{step.scan.remaining:,}",
            f"{step.seconds:.2f}",
            detail[:100],
        )
    if result.steps:
        console.print(table)
    if result.message:
        console.print(result.message, soft_wrap=True)
    console.print(
        f"request {result.request_id}: {result.status}, {result.removed:,} row(s) removed or "
        f"pseudonymized, {result.customer_ids} customer id(s) and {result.identifiers} "
        f"identifier(s) on the suppression list, {result.seconds:.1f} s"
    )


#: Hours after which a run still marked as started is taken for one whose process died.
RUN_STALE_HOURS = 6


def _dagster_run_in_progress(home: Path) -> str | None:
    """A run the Dagster UI or daemon started and that has not ended, if any (``cdp run``
    holds the run lock; runs launched from the UI or by a schedule do not)."""
    folder = home / "dagster"
    if not (folder / "dagster.yaml").exists():
        return None
    import dagster as dg

    from dagster_project.lib.workspace import Workspace
    from dagster_project.runner import prepare_instance

    instance = prepare_instance(Workspace(home))
    # a run whose process was killed stays STARTED for ever: only recent ones count (a full
    # refresh of the 100k world takes about 11 minutes)
    recent = datetime.now(UTC) - timedelta(hours=RUN_STALE_HOURS)
    running = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.CANCELING,
            ],
            created_after=recent,
        ),
        limit=1,
    )
    if not running:
        return None
    return f"Dagster run {running[0].dagster_run.run_id} ({running[0].dagster_run.job_name})"


@privacy_app.command("erase")
def erase_command(
    customer_id: CustomerIdOption = None,
    email: EmailOption = None,
    phone: PhoneOption = None,
    identifier: IdentifierOption = None,
    wait: Annotated[
        float, typer.Option(help="seconds to wait for a pipeline run in progress")
    ] = 3600.0,
    home: HomeOption = None,
) -> None:
    """Erase one person from every store and keep them out (suppression list); the request is
    recorded by keyed hashes only. An unknown person gives "nothing held"; erasing again is
    harmless. Waits for a pipeline run in progress. Exit 1 when a store is not clean."""
    from dagster_project.lib.erasure.registry import build_erasers
    from privacy.access import AccessError
    from privacy.erasure import ErasureBusy, erase
    from privacy.suppression import COMPLETED, NOTHING_HELD

    cdp_home, key, key_file, config_path = _settings(home)
    keyring = require_privacy_key(cdp_home, key, key_file)
    person, realtime = _person(customer_id, email, phone, identifier, config_path)
    erasers = build_erasers(cdp_home, config_path)
    progress = progress_bar(transient=True)
    with progress:
        task = progress.add_task("erasing", total=None)

        def _on_step(step: str, done: int, total: int) -> None:
            progress.update(task, description=step, completed=done, total=max(total, done, 1))

        def _on_wait() -> None:
            progress.update(task, description="waiting for the pipeline run in progress")

        try:
            result = erase(
                cdp_home,
                person,
                keyring,
                erasers,
                requested_by=f"cli:{os.environ.get('USER', 'unknown')}",
                identifier_types=realtime.identifiers,
                progress=_on_step,
                lock_timeout=wait,
                on_wait=_on_wait,
                busy=lambda: _dagster_run_in_progress(cdp_home),
            )
        except AccessError as exc:
            console.print(f"[red]{exc}[/red]", soft_wrap=True)
            raise typer.Exit(2) from exc
        except ErasureBusy as exc:
            console.print(f"[red]{exc}[/red]", soft_wrap=True)
            raise typer.Exit(3) from exc
    _print_result(result)
    if result.status not in (COMPLETED, NOTHING_HELD):
        raise typer.Exit(1)


@privacy_app.command("requests")
def list_requests(
    request_id: Annotated[
        str | None, typer.Argument(help="show one request's status per store")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Erasure requests (newest first), or one request's status per store."""
    from privacy.suppression import PrivacyStore

    cdp_home, _, _, _ = _settings(home)
    store = PrivacyStore.at(cdp_home)
    if request_id is not None:
        request = store.request(request_id)
        if request is None:
            console.print(f"[red]no erasure request {request_id}[/red]")
            raise typer.Exit(2)
        table = Table(title=f"erasure {request.request_id}: {request.status}")
        for column in ("store", "status", "removed", "left", "seconds", "detail", "updated"):
            table.add_column(column)
        for step in store.steps(request_id):
            table.add_row(
                step.store,
                step.status,
                f"{step.removed:,}",
                f"{step.remaining:,}",
                f"{step.seconds:.2f}",
                step.detail[:80],
                step.updated_at.isoformat(timespec="seconds"),
            )
        console.print(table)
        return
    table = Table(title=f"erasure requests in {cdp_home}")
    for column in ("request", "status", "named by", "requested", "by", "ids", "identifiers", "s"):
        table.add_column(column)
    for request in store.requests():
        table.add_row(
            request.request_id,
            request.status,
            request.subject_type,
            request.requested_at.isoformat(timespec="seconds"),
            request.requested_by,
            str(request.customer_ids),
            str(request.identifiers),
            "" if request.duration_seconds is None else f"{request.duration_seconds:.1f}",
        )
    console.print(table)
