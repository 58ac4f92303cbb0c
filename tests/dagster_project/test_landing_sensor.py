"""The landing sensor asks, once, for exactly the files no lake manifest records as ingested.

Real sensor evaluations (``dg.build_sensor_context`` with the instance the runs went into) after
real runs: the whole pipeline through ``run_pipeline``, or the ingest assets.
"""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest
import yaml

from dagster_project.definitions import build_definitions
from dagster_project.defs.ingest.assets import lake_asset_key
from dagster_project.defs.ingest.sensors import CHECKSUM_CACHE, SENSOR_NAME, scan_landing
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.settings import PlatformSettings
from dagster_project.runner import run_pipeline


class _Sensor:
    """Ticks the real sensor with the cursor the previous tick returned, like the daemon."""

    def __init__(self, settings: PlatformSettings, instance: dg.DagsterInstance) -> None:
        self.defs = build_definitions(settings)
        self.sensor = self.defs.resolve_sensor_def(SENSOR_NAME)
        self.cdp = CdpResource.from_settings(settings)
        self.instance = instance
        self.cursor: str | None = None

    def tick(self) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"cdp": self.cdp}
        )
        result = self.sensor(context)
        assert isinstance(result, dg.SensorResult)
        self.cursor = result.cursor
        return list(result.run_requests or [])

    def launch(self, request: dg.RunRequest) -> None:
        """Run what the request asks for, as the daemon would."""
        result = self.defs.resolve_job_def("cdp_full_refresh").execute_in_process(
            instance=self.instance,
            asset_selection=list(request.asset_selection or []),
            run_config=request.run_config,
            tags=request.tags,
            raise_on_error=False,
        )
        assert result.success, [e.message for e in result.get_step_failure_events()]


def _selection(requests: list[dg.RunRequest]) -> list[list[dg.AssetKey]]:
    return [list(r.asset_selection or []) for r in requests]


def _ingest_everything(sensor: _Sensor) -> None:
    keys = [
        k for k in sensor.defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == "lake"
    ]
    sensor.launch(dg.RunRequest(asset_selection=keys))


@pytest.mark.slow
def test_after_a_full_run_only_new_or_changed_files_are_requested_once(
    settings: PlatformSettings,
) -> None:
    outcome = run_pipeline(settings)
    assert outcome.success, outcome.failures
    landing = settings.home / "landing"
    with dg.DagsterInstance.from_config(str(settings.home / "dagster")) as instance:
        sensor = _Sensor(settings, instance)

        # The first tick (empty cursor, no checksum cache) knows what `cdp run` ingested.
        assert sensor.tick() == []
        assert scan_landing(sensor.cdp).files_read == 0  # later ticks read nothing unchanged

        # A new delivery, plus a copy of a file already ingested (same content: nothing to do).
        web = sorted((landing / "web").glob("events-*.jsonl"))
        lines = web[0].read_text(encoding="utf-8").splitlines(keepends=True)
        (landing / "web" / "events-2099-01.jsonl").write_text("".join(lines[:5]), "utf-8")
        (landing / "web" / "events-2099-02.jsonl").write_bytes(web[1].read_bytes())
        (request,) = sensor.tick()
        assert _selection([request]) == [[lake_asset_key("web_events")]]
        assert sensor.tick() == []  # queued, not yet run: not asked for again
        sensor.launch(request)
        assert sensor.tick() == []

        # A changed file is new content; a touched one (same bytes, new mtime) is not.
        crm = next((landing / "crm").glob("*.csv"))
        os.utime(web[2], ns=(web[2].stat().st_atime_ns, web[2].stat().st_mtime_ns + 10**9))
        assert sensor.tick() == []
        crm.write_bytes(crm.read_bytes() + b"\n")
        (request,) = sensor.tick()
        assert _selection([request]) == [[lake_asset_key("crm")]]
        sensor.launch(request)
        assert sensor.tick() == []

        # The checksum cache is only a cache: without it the files are read again, no request.
        (settings.home / "dagster" / CHECKSUM_CACHE).unlink()
        assert sensor.tick() == []


def test_a_file_recorded_unreadable_is_retried_only_once_it_changes(
    settings: PlatformSettings,
) -> None:
    config_path = settings.config_path
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    raw["sources"].append(
        {
            "name": "partner_feed",
            "kind": "products",
            "format": "parquet",
            "path": "partner/*.parquet",
            "record_key": "sku",
            "mapping": {"product_id": "sku"},
        }
    )
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    feed = settings.home / "landing" / "partner" / "feed.parquet"
    feed.parent.mkdir()
    feed.write_bytes(b"this is not parquet at all")
    with dg.instance_for_test() as instance:
        sensor = _Sensor(settings, instance)
        # An older sensor's cursor (fingerprints by path) is no reason to ask again.
        sensor.cursor = json.dumps({str(feed): "26:1"})
        keys = [
            k
            for k in sensor.defs.resolve_asset_graph().get_all_asset_keys()
            if k.path[0] == "lake" and k != lake_asset_key("partner_feed")
        ]
        sensor.launch(dg.RunRequest(asset_selection=keys))
        sensor.defs.resolve_job_def("cdp_full_refresh").execute_in_process(
            instance=instance,
            asset_selection=[lake_asset_key("partner_feed")],
            raise_on_error=False,
        )  # fails (nothing readable) but records the file as unreadable
        assert sensor.tick() == []

        feed.write_bytes(b"still not parquet, but other bytes")
        assert _selection(sensor.tick()) == [[lake_asset_key("partner_feed")]]
        assert sensor.tick() == []


def test_the_first_tick_on_a_fresh_workspace_asks_for_every_source_once(
    settings: PlatformSettings,
) -> None:
    with dg.instance_for_test() as instance:
        sensor = _Sensor(settings, instance)
        (request,) = sensor.tick()
        sources = {s.name for s in sensor.cdp.loaded_config().config.sources}
        assert set(request.asset_selection or []) == {lake_asset_key(s) for s in sources}
        # Its run logs to the terminal of `dagster dev` at WARNING, not a line per event.
        assert request.run_config == {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        assert sensor.tick() == []
        sensor.launch(request)
        assert sensor.tick() == []
        _ingest_everything(sensor)  # a run from elsewhere (the UI) changes nothing either
        assert sensor.tick() == []


def test_a_damaged_manifest_is_reported_and_requests_nothing_for_its_source(
    settings: PlatformSettings,
) -> None:
    with dg.instance_for_test() as instance:
        sensor = _Sensor(settings, instance)
        _ingest_everything(sensor)
        (settings.home / "lake" / "orders" / "_manifest.json").write_text("{", encoding="utf-8")
        assert sensor.tick() == []
        scan = scan_landing(sensor.cdp)
        assert [p.split(":")[0] for p in scan.problems] == ["orders"]
        assert "_manifest.json is damaged" in scan.problems[0]
