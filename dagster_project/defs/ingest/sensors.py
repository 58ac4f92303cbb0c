"""Watch the landing folder: a file no ingest has taken in yet triggers its source's ingest.

What has been ingested is what each source's lake manifest records (``lake/<source>/
_manifest.json``: path, checksum and status of every file a run took in, whoever launched the
run: ``cdp run``, the UI, the schedule or this sensor). So the first tick after ``cdp run`` has
nothing to do, and a delivery is ingested once however many ticks see it.

Content decides, as in the ingest itself: a file is new unless a manifest entry with a part holds
its SHA-256 (the ingest would skip it) or the manifest records that very path and checksum as
unreadable (retried only once its bytes change). Reading the whole landing folder every tick
would cost its size in I/O each time, so checksums are cached by path, size and mtime in a
small file next to the Dagster instance (a cache, not state: losing it costs one re-read). A
tick stats every file and reads only those new or changed since they were last read. The cursor
holds only the files requested and not yet recorded, so a tick while their run is queued asks for
nothing, and it stays small: Dagster stores the cursor with every tick.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import dagster as dg

from dagster_project.defs.ingest.assets import lake_asset_key
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import ConfigError
from dagster_project.lib.ingest import IngestError
from dagster_project.lib.ingest.lake import Manifest, part_name, write_json_atomic
from dagster_project.lib.workspace import Workspace

SENSOR_NAME: Final[str] = "landing_files_sensor"
#: The checksum cache, in the Dagster instance's folder (it serves the sensor only).
CHECKSUM_CACHE: Final[str] = "landing_checksums.json"
_CURSOR_VERSION: Final[int] = 2
#: A file modified this recently may still be written to within the same mtime: not cached.
_SETTLE_NS: Final[int] = 2_000_000_000


def _checksum(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class ChecksumCache:
    """SHA-256 of landing files by path, trusted while their size and mtime are unchanged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries = self._load(path)
        self._seen: dict[str, list[Any]] = {}
        self.reads = 0

    @staticmethod
    def _load(path: Path) -> dict[str, list[Any]]:
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # no cache yet, or a damaged one: files are read again
        files = payload.get("files") if isinstance(payload, dict) else None
        return files if isinstance(files, dict) else {}

    def checksum(self, path: Path, stat: os.stat_result) -> str:
        """The file's checksum, read only when the cache has none for its size and mtime."""
        key = str(path)
        fingerprint = [stat.st_size, stat.st_mtime_ns]
        cached = self._seen.get(key) or self._entries.get(key)
        if isinstance(cached, list) and len(cached) == 3 and cached[:2] == fingerprint:
            self._seen[key] = cached
            return str(cached[2])
        sha256 = _checksum(path)
        self.reads += 1
        if time.time_ns() - stat.st_mtime_ns > _SETTLE_NS:
            self._seen[key] = [*fingerprint, sha256]
        return sha256

    def save(self) -> None:
        """Keep the files seen this tick (gone files drop out); written only on a change."""
        if self._seen != self._entries:
            write_json_atomic({"files": self._seen}, self.path)
            self._entries = dict(self._seen)


@dataclass(frozen=True)
class _Recorded:
    """What one source's manifest says about files: ingested checksums, unreadable files."""

    ingested: frozenset[str]
    unreadable: frozenset[tuple[str, str]]  # (resolved path, checksum)

    @classmethod
    def load(cls, lake_dir: Path, source: str, landing: Path) -> _Recorded:
        manifest = Manifest.load(lake_dir, source)
        ingested, unreadable = set(), set()
        for entry in manifest.files:
            sha256 = str(entry.get("sha256") or "")
            if entry.get("part"):
                ingested.add(sha256)
            else:  # the manifest spells paths relative to the landing folder, or absolute
                unreadable.add((str((landing / str(entry.get("path", ""))).resolve()), sha256))
        return cls(frozenset(ingested), frozenset(unreadable))


@dataclass
class LandingScan:
    """One look at the landing folder against the manifests."""

    #: Per source, files no manifest records (resolved path -> checksum).
    unrecorded: dict[str, dict[str, str]] = field(default_factory=dict)
    files: int = 0
    files_read: int = 0
    problems: list[str] = field(default_factory=list)


def scan_landing(cdp: CdpResource) -> LandingScan:
    """Files of every source that no manifest records as ingested (or as unreadable as is).

    Cost per call for N landing files: one glob per source, N ``stat`` calls, one manifest read
    per source, and a read of only the files whose size or mtime changed since they were last
    read (all of them once, on the first call without a cache).

    Raises:
        ConfigError: cdp.yml is invalid.
    """
    loaded = cdp.loaded_config()
    home = Path(cdp.home)
    workspace = Workspace(home)
    landing = loaded.landing_dir(home)
    cache = ChecksumCache(workspace.dagster_home / CHECKSUM_CACHE)
    scan = LandingScan()
    for source in loaded.config.sources:
        lake_dir = workspace.source_lake(source.name)
        try:
            recorded = _Recorded.load(lake_dir, source.name, landing)
        except IngestError as exc:  # its ingest would fail the same way: say so, request nothing
            scan.problems.append(f"{source.name}: {exc}")
            continue
        for path in loaded.source_files(source, home):
            try:
                sha256 = cache.checksum(path, path.stat())
            except OSError as exc:  # vanished or unreadable: the ingest could not read it either
                scan.problems.append(f"{source.name}: cannot read {path}: {exc.strerror or exc}")
                continue
            scan.files += 1
            resolved = str(path.resolve())
            if (
                sha256 in recorded.ingested
                or (resolved, sha256) in recorded.unreadable
                or (lake_dir / part_name(sha256)).exists()
            ):
                continue
            scan.unrecorded.setdefault(source.name, {})[resolved] = sha256
    scan.files_read = cache.reads
    cache.save()
    return scan


def _requested(cursor: str | None) -> dict[str, dict[str, str]]:
    """Files requested by earlier ticks and not recorded yet; an older cursor asks for nothing."""
    if not cursor:
        return {}
    try:
        payload = json.loads(cursor)
    except ValueError:
        return {}
    if not isinstance(payload, dict) or payload.get("version") != _CURSOR_VERSION:
        return {}
    requested = payload.get("requested")
    return requested if isinstance(requested, dict) else {}


def new_deliveries(
    scan: LandingScan, requested: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, str]]:
    """Unrecorded files not already requested with the same content, per source."""
    fresh: dict[str, dict[str, str]] = {}
    for source, files in scan.unrecorded.items():
        asked = requested.get(source, {})
        for path, sha256 in files.items():
            if asked.get(path) != sha256:
                fresh.setdefault(source, {})[path] = sha256
    return fresh


def build_landing_sensor(
    ingest_assets: Sequence[dg.AssetsDefinition], run_config: Mapping[str, Any] | None = None
) -> dg.SensorDefinition:
    """One sensor for all sources, so a delivery of several files becomes one run.

    ``run_config`` goes with each run request (the console log level of its runs).
    """

    @dg.sensor(
        name=SENSOR_NAME,
        description="Materializes the ingest asset of every source with a landing file that no "
        "lake manifest records as ingested.",
        target=list(ingest_assets),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext, cdp: CdpResource) -> dg.SensorResult:
        try:
            scan = scan_landing(cdp)
        except ConfigError as exc:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"cdp.yml is invalid: {exc}"))
        for problem in scan.problems:
            context.log.warning(problem)
        fresh = new_deliveries(scan, _requested(context.cursor))
        cursor = json.dumps(
            {"version": _CURSOR_VERSION, "requested": scan.unrecorded}, sort_keys=True
        )
        waiting = sum(len(files) for files in scan.unrecorded.values())
        # DEBUG: the tick's log in the UI keeps it; Dagster prints a sensor's INFO on the terminal.
        context.log.debug(
            f"{scan.files} landing files, {scan.files_read} read this tick, "
            f"{waiting} not ingested yet, {sum(len(f) for f in fresh.values())} new"
        )
        if not fresh:
            reason = "no new landing files" + (
                f" ({waiting} requested earlier, not ingested yet)" if waiting else ""
            )
            return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor)
        sources = sorted(fresh)
        run_key = hashlib.sha256(json.dumps(fresh, sort_keys=True).encode()).hexdigest()[:20]
        request = dg.RunRequest(
            run_key=run_key,
            run_config=dict(run_config or {}),
            asset_selection=[lake_asset_key(name) for name in sources],
            tags={"cdp/trigger": "landing_sensor", "cdp/sources": ",".join(sources)},
        )
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return _sensor
