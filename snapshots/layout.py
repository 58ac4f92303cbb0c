"""Where a snapshot lives on disk: file names, snapshot ids, folders, the CURRENT pointer.

Layout under ``CDP_HOME/serving``::

    CURRENT                   the id of the snapshot to serve (replaced atomically)
    <snapshot_id>/            one published snapshot, never modified after publishing
        manifest.json         id, creation time, tables and row counts, size, identity settings
        snapshot.sqlite       the declared tables (snapshots.tables), indexed on every lookup key
    .leases/<host>-<pid>.json which snapshots a running API process still holds open
    .build-<snapshot_id>/     a snapshot being written (never read; removed if abandoned)
    .publish.lock             held by the one publisher allowed to write at a time

Snapshot ids are folder names, so everything that starts with a dot is out of the way of
readers by construction.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from snapshots.errors import SnapshotError

CURRENT_FILE: Final[str] = "CURRENT"
MANIFEST_FILE: Final[str] = "manifest.json"
DATABASE_FILE: Final[str] = "snapshot.sqlite"
LEASES_DIR: Final[str] = ".leases"
BUILD_PREFIX: Final[str] = ".build-"
PUBLISH_LOCK_FILE: Final[str] = ".publish.lock"
#: Snapshot ids are folder names: no separators, no leading dot, nothing to traverse with.
SNAPSHOT_ID_PATTERN: Final[re.Pattern[str]] = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,127}$")


def is_valid_snapshot_id(snapshot_id: str) -> bool:
    """Whether ``snapshot_id`` can name a folder under serving/ safely."""
    return bool(SNAPSHOT_ID_PATTERN.match(snapshot_id))


def snapshot_folder(serving_dir: Path, snapshot_id: str) -> Path:
    """The folder of one snapshot; refuses ids that could escape serving/."""
    if not is_valid_snapshot_id(snapshot_id):
        raise SnapshotError(f"'{snapshot_id}' is not a valid snapshot id")
    return Path(serving_dir) / snapshot_id


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
    """Point CURRENT at ``snapshot_id`` atomically (temp file, fsync, rename).

    Readers poll CURRENT, so it must never be seen half-written or naming an unfinished
    folder: the folder's manifest (written last by the publisher) has to exist first.
    """
    folder = snapshot_folder(serving_dir, snapshot_id)
    if not (folder / MANIFEST_FILE).is_file():
        raise SnapshotError(f"{folder}: no {MANIFEST_FILE}; refusing to point CURRENT at it")
    tmp = Path(serving_dir) / f".{CURRENT_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(snapshot_id + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, Path(serving_dir) / CURRENT_FILE)
