"""Serving snapshots: the on-disk format, the CURRENT pointer, leases, and live switching.

Layout under ``CDP_HOME/serving``::

    CURRENT                   the id of the snapshot to serve (replaced atomically)
    <snapshot_id>/            one published snapshot, never modified after publishing
        manifest.json         id, creation time, tables and row counts, size, identity settings
        snapshot.sqlite       the marts + identity explanations, indexed on every lookup key
    .leases/<host>-<pid>.json which snapshots a running API process still holds open

The publisher (``dagster_project.lib.publish``) writes a new folder, verifies it and replaces
CURRENT; it never deletes a snapshot that CURRENT names or that a fresh lease names. The API
polls CURRENT with a ``stat`` (cheap), opens a new snapshot read-only, swaps it in, and closes
the old one only when the last request that acquired it releases it, so a switch never breaks a
request in flight. The API never opens the dbt warehouse.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from api.repositories.database import SnapshotDatabase
from identity.normalize import Normalizer
from identity.settings import IdentitySettings

logger = logging.getLogger(__name__)

FORMAT_VERSION: Final[int] = 1
CURRENT_FILE: Final[str] = "CURRENT"
MANIFEST_FILE: Final[str] = "manifest.json"
DATABASE_FILE: Final[str] = "snapshot.sqlite"
LEASES_DIR: Final[str] = ".leases"
#: Snapshot ids are folder names: no separators, no leading dot, nothing to traverse with.
SNAPSHOT_ID_PATTERN: Final[re.Pattern[str]] = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,127}$")
#: Identity settings that decide how a lookup value is normalized (copied into the manifest).
NORMALIZATION_SETTINGS: Final[tuple[str, ...]] = (
    "phone_default_region",
    "blocklist",
    "use_default_blocklist",
)
#: How often a server re-touches its lease while nothing changes.
LEASE_REFRESH_SECONDS: Final[float] = 10.0


class SnapshotError(RuntimeError):
    """A snapshot is missing, unreadable or of an unknown format; the message says which."""


class SnapshotManifest(BaseModel):
    """What a snapshot holds; written last by the publisher, read first by the API."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format_version: int
    snapshot_id: str
    created_at: datetime
    as_of: date | None = None
    warehouse: str
    database: str = DATABASE_FILE
    tables: dict[str, int]
    columns: dict[str, dict[str, str]]
    identifier_types: list[str]
    size_bytes: int
    build_seconds: float
    identity_settings: dict[str, Any]


def is_valid_snapshot_id(snapshot_id: str) -> bool:
    """Whether ``snapshot_id`` can name a folder under serving/ safely."""
    return bool(SNAPSHOT_ID_PATTERN.match(snapshot_id))


def snapshot_folder(serving_dir: Path, snapshot_id: str) -> Path:
    """The folder of one snapshot; refuses ids that could escape serving/."""
    if not is_valid_snapshot_id(snapshot_id):
        raise SnapshotError(f"'{snapshot_id}' is not a valid snapshot id")
    return Path(serving_dir) / snapshot_id


def read_current(serving_dir: Path) -> str | None:
    """The snapshot id CURRENT names, or None before the first publish."""
    try:
        text = (Path(serving_dir) / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not is_valid_snapshot_id(text):
        raise SnapshotError(f"{Path(serving_dir) / CURRENT_FILE}: '{text}' is not a snapshot id")
    return text


def write_current(serving_dir: Path, snapshot_id: str) -> None:
    """Point CURRENT at ``snapshot_id`` atomically (temp file, fsync, rename)."""
    folder = snapshot_folder(serving_dir, snapshot_id)
    if not (folder / MANIFEST_FILE).is_file():
        raise SnapshotError(f"{folder}: no {MANIFEST_FILE}; refusing to point CURRENT at it")
    tmp = Path(serving_dir) / f".{CURRENT_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(snapshot_id + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, Path(serving_dir) / CURRENT_FILE)


def read_manifest(folder: Path) -> SnapshotManifest:
    """The manifest of a snapshot folder; SnapshotError names the file and the problem."""
    path = Path(folder) / MANIFEST_FILE
    try:
        manifest = SnapshotManifest.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise SnapshotError(f"{path}: missing (an unfinished or deleted snapshot)") from exc
    except ValidationError as exc:
        raise SnapshotError(f"{path}: invalid manifest: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise SnapshotError(
            f"{path}: format version {manifest.format_version}, this API reads "
            f"{FORMAT_VERSION}; republish with the matching platform version"
        )
    return manifest


def list_snapshots(serving_dir: Path) -> list[str]:
    """Ids of the published snapshot folders (those with a manifest), oldest first."""
    serving_dir = Path(serving_dir)
    if not serving_dir.is_dir():
        return []
    ids = [
        p.name
        for p in serving_dir.iterdir()
        if p.is_dir() and is_valid_snapshot_id(p.name) and (p / MANIFEST_FILE).is_file()
    ]
    return sorted(ids)


# --- leases -------------------------------------------------------------------------------


def _lease_path(serving_dir: Path) -> Path:
    return Path(serving_dir) / LEASES_DIR / f"{socket.gethostname()}-{os.getpid()}.json"


def write_lease(serving_dir: Path, snapshot_ids: Iterable[str]) -> Path:
    """Tell publishers which snapshots this process holds open (rewritten atomically)."""
    path = _lease_path(serving_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "snapshots": sorted(set(snapshot_ids)),
        "updated_at": datetime.now(UTC).isoformat(),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(body), encoding="utf-8")
    os.replace(tmp, path)
    return path


def remove_lease(serving_dir: Path) -> None:
    """Drop this process's lease (on shutdown)."""
    with contextlib.suppress(FileNotFoundError):
        _lease_path(serving_dir).unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leased_snapshots(serving_dir: Path, ttl_seconds: float) -> set[str]:
    """Snapshot ids named by a lease touched within ``ttl_seconds`` by a live process.

    Leases of dead processes on this host are removed; unreadable leases are ignored (a reader
    that crashed mid-write renews within LEASE_REFRESH_SECONDS).
    """
    folder = Path(serving_dir) / LEASES_DIR
    if not folder.is_dir():
        return set()
    held: set[str] = set()
    now = time.time()
    host = socket.gethostname()
    for path in folder.glob("*.json"):
        try:
            age = now - path.stat().st_mtime
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if body.get("host") == host and not _pid_alive(int(body.get("pid", -1))):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        if age <= ttl_seconds:
            held.update(str(s) for s in body.get("snapshots", []))
    return held


# --- an opened snapshot -------------------------------------------------------------------


@dataclass(eq=False)
class Snapshot:
    """One opened snapshot: its manifest, a read-only database and the lookup normalizer.

    ``refs`` counts requests using it; a retired snapshot closes when the count reaches zero.
    """

    folder: Path
    manifest: SnapshotManifest
    db: SnapshotDatabase
    normalizer: Normalizer
    refs: int = 0
    retired: bool = False
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The snapshot id (its folder name)."""
        return self.manifest.snapshot_id

    def age_seconds(self, now: datetime | None = None) -> float:
        """Seconds since the snapshot was published."""
        return ((now or datetime.now(UTC)) - self.manifest.created_at).total_seconds()

    @classmethod
    def open(cls, folder: Path) -> Snapshot:
        """Open a published snapshot read-only; SnapshotError says what is wrong."""
        manifest = read_manifest(folder)
        if manifest.snapshot_id != Path(folder).name:
            raise SnapshotError(
                f"{folder}: manifest names snapshot '{manifest.snapshot_id}', not the folder's"
            )
        path = Path(folder) / manifest.database
        if not path.is_file():
            raise SnapshotError(f"{path}: missing snapshot database")
        settings = IdentitySettings.model_validate(
            {k: v for k, v in manifest.identity_settings.items() if k in NORMALIZATION_SETTINGS}
        )
        db = SnapshotDatabase(path)
        try:
            missing = [t for t in manifest.tables if not db.has_table(t)]
        except Exception as exc:
            db.close()
            raise SnapshotError(f"{path}: not a readable snapshot database ({exc})") from exc
        if missing:
            db.close()
            raise SnapshotError(f"{path}: tables {missing} of the manifest are missing")
        return cls(folder=Path(folder), manifest=manifest, db=db, normalizer=Normalizer(settings))

    def close(self) -> None:
        """Close the database (idempotent)."""
        self.db.close()


# --- switching ----------------------------------------------------------------------------


class SnapshotManager:
    """Serves the snapshot CURRENT names and follows it when the pipeline publishes anew.

    Thread-safe: requests acquire and release from the event loop; ``refresh`` may run in a
    worker thread so opening a large snapshot never stalls requests.
    """

    def __init__(
        self,
        serving_dir: Path,
        *,
        on_switch: Callable[[Snapshot], None] | None = None,
        write_leases: bool = True,
    ) -> None:
        self.serving_dir = Path(serving_dir)
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._current: Snapshot | None = None
        self._open: list[Snapshot] = []
        self._pointer_stat: tuple[int, int, int] | None = None
        self._failed_id: str | None = None
        self._lease_written_at = 0.0
        self._on_switch = on_switch
        self._write_leases = write_leases
        self.last_error: str | None = None

    @property
    def current(self) -> Snapshot | None:
        """The snapshot new requests get (None until one is loaded)."""
        return self._current

    def unavailable_reason(self) -> str | None:
        """Why nothing can be served, or None when a snapshot is loaded."""
        if self._current is not None:
            return None
        if self.last_error:
            return self.last_error
        return (
            f"no snapshot published under {self.serving_dir}; run the pipeline (`cdp run`), "
            "whose publish step writes one"
        )

    def acquire(self) -> Snapshot | None:
        """The current snapshot, held until ``release`` (None when none is loaded)."""
        with self._lock:
            snapshot = self._current
            if snapshot is not None:
                snapshot.refs += 1
            return snapshot

    def release(self, snapshot: Snapshot) -> None:
        """Give back a snapshot; the last holder of a retired one closes it."""
        close = False
        with self._lock:
            snapshot.refs -= 1
            if snapshot.retired and snapshot.refs <= 0 and snapshot in self._open:
                self._open.remove(snapshot)
                close = True
        if close:
            snapshot.close()
            logger.info("closed snapshot %s (last request finished)", snapshot.id)
            self._renew_lease(force=True)

    def _pointer(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.serving_dir / CURRENT_FILE)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def refresh(self) -> bool:
        """Load the snapshot CURRENT names if it changed; True when a switch happened.

        A snapshot that fails to open is logged and skipped; the previous one keeps serving.
        """
        with self._refresh_lock:
            pointer = self._pointer()
            if pointer is not None and pointer == self._pointer_stat:
                self._renew_lease()
                return False
            try:
                snapshot_id = read_current(self.serving_dir)
            except (OSError, SnapshotError) as exc:
                self.last_error = str(exc)
                logger.error("cannot read the CURRENT pointer: %s", exc)
                return False
            self._pointer_stat = pointer
            current = self._current
            if snapshot_id is None or (current is not None and current.id == snapshot_id):
                self._renew_lease()
                return False
            try:
                snapshot = Snapshot.open(snapshot_folder(self.serving_dir, snapshot_id))
            except (OSError, SnapshotError) as exc:
                self.last_error = f"snapshot {snapshot_id} could not be opened: {exc}"
                if self._failed_id != snapshot_id:
                    logger.error(
                        "%s; still serving %s",
                        self.last_error,
                        current.id if current else "nothing",
                    )
                self._failed_id = snapshot_id
                self._pointer_stat = None  # retry on the next poll
                return False
            self._switch(snapshot)
            return True

    def _switch(self, snapshot: Snapshot) -> None:
        close: Snapshot | None = None
        with self._lock:
            old = self._current
            self._current = snapshot
            self._open.append(snapshot)
            self.last_error = None
            self._failed_id = None
            if old is not None:
                old.retired = True
                if old.refs <= 0:
                    self._open.remove(old)
                    close = old
        logger.info(
            "serving snapshot %s (%s tables, created %s)",
            snapshot.id,
            len(snapshot.manifest.tables),
            snapshot.manifest.created_at.isoformat(),
        )
        if close is not None:
            close.close()
        self._renew_lease(force=True)
        if self._on_switch is not None:
            self._on_switch(snapshot)

    def open_snapshot_ids(self) -> list[str]:
        """Snapshots this process holds open (current plus any still draining)."""
        with self._lock:
            return [s.id for s in self._open]

    def _renew_lease(self, force: bool = False) -> None:
        if not self._write_leases:
            return
        now = time.monotonic()
        if not force and now - self._lease_written_at < LEASE_REFRESH_SECONDS:
            return
        try:
            write_lease(self.serving_dir, self.open_snapshot_ids())
            self._lease_written_at = now
        except OSError as exc:
            logger.warning("cannot write the serving lease: %s", exc)

    async def poll(self, interval: float, stop: asyncio.Event) -> None:
        """Refresh every ``interval`` seconds until ``stop`` is set (runs in the lifespan)."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # a poll must never die; the next one retries
                logger.exception("snapshot refresh failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    def close(self) -> None:
        """Close every open snapshot and drop the lease (shutdown)."""
        with self._lock:
            snapshots, self._open = self._open, []
            self._current = None
        for snapshot in snapshots:
            snapshot.close()
        if self._write_leases:
            remove_lease(self.serving_dir)
