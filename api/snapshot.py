"""Live serving: the opened snapshot and the manager that follows serving/CURRENT.

The format (layout, manifest, tables, CURRENT and leases) is ``snapshots``; this module is the
API's side of it. The publisher (``dagster_project.lib.publish``) writes a new folder, verifies
it and replaces CURRENT; it never deletes a snapshot that CURRENT names or that a fresh lease
names. The API polls CURRENT with a ``stat`` (cheap), opens a new snapshot read-only, swaps it
in, and closes the old one only when the last request that acquired it releases it, so a switch
never breaks a request in flight. The API never opens the dbt warehouse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.repositories.database import SnapshotDatabase
from identity import IdentitySettings, Normalizer
from snapshots import (
    CURRENT_FILE,
    LEASE_REFRESH_SECONDS,
    NORMALIZATION_SETTINGS,
    SnapshotError,
    SnapshotManifest,
    read_current,
    read_manifest,
    remove_lease,
    snapshot_folder,
    write_lease,
)

logger = logging.getLogger(__name__)


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
