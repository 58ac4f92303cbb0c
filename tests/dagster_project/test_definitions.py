"""The Dagster graph: loads from cdp.yml, materializes for real, checks hold.

The landing sensor has its own tests (``test_landing_sensor.py``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dagster_project.definitions import build_definitions
from dagster_project.defs.ingest.assets import lake_asset_key
from dagster_project.defs.ingest.checks import NEW_FILES_CHECK
from dagster_project.lib.config import ConfigError, load_config
from dagster_project.lib.settings import PlatformSettings
from decisions.policy import load_policy


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _materialize_ingest(defs: dg.Definitions, instance: dg.DagsterInstance):
    job = defs.resolve_job_def("cdp_full_refresh")
    keys = [k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == "lake"]
    return job.execute_in_process(instance=instance, asset_selection=keys, raise_on_error=False)


def test_every_source_is_an_asset_and_definitions_validate(settings: PlatformSettings) -> None:
    defs = build_definitions(settings)
    dg.Definitions.validate_loadable(defs)
    config = load_config(settings.config_path).config
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    for source in config.sources:
        assert lake_asset_key(source.name) in keys
    assert defs.resolve_sensor_def("landing_files_sensor") is not None
    # the daily refresh runs when a decision period starts (decisions.period_start_hour)
    hour = load_policy(settings.config_path).period_start_hour
    assert defs.resolve_schedule_def("daily_full_refresh").cron_schedule == f"0 {hour} * * *"


def test_the_daily_refresh_follows_the_decision_period(settings: PlatformSettings) -> None:
    config = yaml.safe_load(settings.config_path.read_text())
    config.setdefault("decisions", {})["period_start_hour"] = 9
    settings.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    defs = build_definitions(settings)
    assert defs.resolve_schedule_def("daily_full_refresh").cron_schedule == "0 9 * * *"


def test_invalid_config_fails_at_start(cdp_home: Path) -> None:
    (cdp_home / "cdp.yml").write_text("sources:\n  - name: x\n    kind: nope\n")
    with pytest.raises(ConfigError, match=r"(?s)cdp\.yml.*sources\.0\.kind"):
        build_definitions(PlatformSettings(home=cdp_home))


def test_ingest_materializes_with_balanced_counts_and_green_checks(
    settings: PlatformSettings,
) -> None:
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        result = _materialize_ingest(defs, instance)
        assert result.success, [e.message for e in result.get_step_failure_events()]
        materializations = {
            e.asset_key.path[-1]: e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        config = load_config(settings.config_path).config
        assert set(materializations) == {s.name for s in config.sources}
        for name, meta in materializations.items():
            read = meta["rows_read"].value
            accounted = (
                meta["rows_ingested"].value
                + meta["rows_quarantined"].value
                + meta["rows_duplicate"].value
            )
            assert read == accounted, name
            # the real-time sources hold what the intake received: nothing in this world
            assert (
                read > 0
                or name == config.realtime.fold.events_source
                or (name == config.realtime.fold.price_changes_source)
            ), name
        evaluations = result.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} >= {"rows_accounted_for"}
        assert len(evaluations) >= len(config.sources)
        failed = [(e.asset_key, e.check_name, e.description) for e in evaluations if not e.passed]
        assert not failed


def test_rerun_leaves_lake_and_quarantine_unchanged(settings: PlatformSettings) -> None:
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        assert _materialize_ingest(defs, instance).success
        before = _tree_digest(settings.home / "lake") | {
            f"q/{k}": v for k, v in _tree_digest(settings.home / "quarantine").items()
        }
        second = _materialize_ingest(defs, instance)
        assert second.success
        after = _tree_digest(settings.home / "lake") | {
            f"q/{k}": v for k, v in _tree_digest(settings.home / "quarantine").items()
        }
    assert before == after
    for event in second.get_asset_materialization_events():
        assert event.materialization.metadata["rows_ingested"].value == 0


def test_quarantined_rows_show_in_metadata_and_a_wholly_bad_file_fails_its_check(
    settings: PlatformSettings,
) -> None:
    config = load_config(settings.config_path).config
    orders = config.source("orders")
    landing = settings.home / "landing"
    orders_file = next(landing.glob(orders.path))
    header = orders_file.read_text(encoding="utf-8").splitlines()[0]
    broken = landing / Path(orders.path).parent / "orders_late_delivery.csv"
    columns = header.split(",")
    bad_row = ["not-a-date" if c == orders.mapping["ordered_at"] else "X" for c in columns]
    broken.write_text(header + "\n" + ",".join(bad_row) + "\n", encoding="utf-8")
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        result = _materialize_ingest(defs, instance)
    assert result.success  # the run goes on: the other files and sources are fine
    meta = {
        e.asset_key.path[-1]: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }["orders"]
    assert meta["rows_quarantined"].value >= 1
    assert "unparseable" in meta["quarantine_reasons"].value
    (check,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.path[-1] == "orders" and e.check_name == NEW_FILES_CHECK
    ]
    assert not check.passed and check.severity is dg.AssetCheckSeverity.ERROR
    assert "orders/orders_late_delivery.csv: every row quarantined (1 of 1)" in check.description


def test_unreadable_parquet_file_fails_the_asset_with_its_name(settings: PlatformSettings) -> None:
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
    partner = settings.home / "landing" / "partner"
    partner.mkdir()
    (partner / "feed.parquet").write_bytes(b"this is not parquet at all")
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("cdp_full_refresh").execute_in_process(
            instance=instance,
            asset_selection=[lake_asset_key("partner_feed")],
            raise_on_error=False,
        )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    assert "feed.parquet" in failure.user_failure_data.description


def test_invalid_identity_section_fails_at_start_naming_the_key(cdp_home: Path) -> None:
    path = cdp_home / "cdp.yml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["identity"] = {"max_cluster_size": "big"}
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"identity\.max_cluster_size"):
        build_definitions(PlatformSettings(home=cdp_home))
