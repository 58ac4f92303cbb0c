"""Leases: which snapshots running API processes still hold, so a publisher never deletes them.

Each API process rewrites ``.leases/<host>-<pid>.json`` (atomically) with the snapshot ids it
holds open, at least every ``LEASE_REFRESH_SECONDS``. A publisher keeps any snapshot named by a
lease touched within its TTL; leases of dead processes on this host are removed on sight.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from snapshots.layout import LEASES_DIR, list_snapshots, read_current

#: How often a server re-touches its lease while nothing changes.
LEASE_REFRESH_SECONDS: Final[float] = 10.0


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


def prunable_snapshots(serving_dir: Path, *, keep: int, lease_ttl_seconds: float) -> list[str]:
    """Snapshots beyond the newest ``keep`` that neither CURRENT nor a live lease names."""
    current = read_current(serving_dir)
    held = leased_snapshots(serving_dir, lease_ttl_seconds)
    published = list_snapshots(serving_dir)
    return [
        snapshot_id
        for snapshot_id in published[: max(len(published) - keep, 0)]
        if snapshot_id != current and snapshot_id not in held
    ]
