"""Watch the landing folder: a file that appears or changes triggers its source's ingest."""

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from dagster_project.defs.ingest.assets import lake_asset_key
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import ConfigError


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def landing_changes(
    cdp: CdpResource, seen: dict[str, str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Per source, the landing files new or changed since ``seen``; and the new fingerprints."""
    loaded = cdp.loaded_config()
    home = Path(cdp.home)
    changed: dict[str, list[str]] = {}
    current: dict[str, str] = {}
    for source in loaded.config.sources:
        for path in loaded.source_files(source, home):
            key = str(path)
            current[key] = _fingerprint(path)
            if seen.get(key) != current[key]:
                changed.setdefault(source.name, []).append(key)
    return changed, current


def build_landing_sensor(
    ingest_assets: Sequence[dg.AssetsDefinition],
) -> dg.SensorDefinition:
    """One sensor for all sources, so a delivery of several files becomes one run."""

    @dg.sensor(
        name="landing_files_sensor",
        description="Materializes the ingest asset of every source with new or changed files.",
        target=list(ingest_assets),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext, cdp: CdpResource) -> dg.SensorResult:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        try:
            changed, current = landing_changes(cdp, seen)
        except ConfigError as exc:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"cdp.yml is invalid: {exc}"))
        if not changed:
            return dg.SensorResult(
                skip_reason=dg.SkipReason("no new landing files"), cursor=json.dumps(current)
            )
        delivered = {path: current[path] for files in changed.values() for path in files}
        run_key = hashlib.sha256(json.dumps(delivered, sort_keys=True).encode()).hexdigest()[:20]
        request = dg.RunRequest(
            run_key=run_key,
            asset_selection=[lake_asset_key(name) for name in sorted(changed)],
            tags={"cdp/trigger": "landing_sensor", "cdp/sources": ",".join(sorted(changed))},
        )
        return dg.SensorResult(run_requests=[request], cursor=json.dumps(current))

    return _sensor
