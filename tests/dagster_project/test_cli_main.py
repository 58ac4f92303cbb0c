"""The `cdp` command as a user runs it: generate, validate, run (headless, into the instance)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from dagster_project.cli.main import app
from dagster_project.lib.config import load_config

runner = CliRunner()


def test_generate_writes_a_world_that_validates(tmp_path: Path) -> None:
    out = tmp_path / "world"
    args = ["--persons", "150", "--seed", "3", "--out", str(out), "--end", "2026-06-30"]
    result = runner.invoke(app, ["generate", *args])
    assert result.exit_code == 0, result.output
    loaded = load_config(out / "cdp.yml")
    for source in loaded.config.sources:
        assert loaded.source_files(source, out), source.name
    assert (out / "ground_truth" / "records.parquet").is_file()


def test_validate_reports_invalid_config_with_exit_code_2(tmp_path: Path) -> None:
    config = tmp_path / "cdp.yml"
    config.write_text("sources: []\nsurprise: 1\n")
    result = runner.invoke(app, ["validate", "--config", str(config)])
    assert result.exit_code == 2
    assert "surprise" in result.output


@pytest.mark.slow
def test_run_materializes_everything_into_the_shared_instance(cdp_home: Path) -> None:
    result = runner.invoke(app, ["run", "--as-of", "2026-10-31"])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output
    dagster_home = cdp_home / "dagster"
    assert (dagster_home / "dagster.yaml").is_file()
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1
        assert runs[0].tags["cdp/as_of"] == "2026-10-31"
        loaded = load_config(cdp_home / "cdp.yml")
        for source in loaded.config.sources:
            event = instance.get_latest_materialization_event(dg.AssetKey(["lake", source.name]))
            assert event is not None, source.name


def test_run_fails_clearly_when_a_source_has_no_files(cdp_home: Path) -> None:
    shutil.rmtree(cdp_home / "landing" / "catalog")
    result = runner.invoke(app, ["run", "--select", "lake/products"])
    assert result.exit_code == 1
    assert "products" in result.output
    assert "no file" in result.output.lower() or "no files" in result.output.lower()


def test_validate_fails_naming_a_source_whose_glob_matches_nothing(cdp_home: Path) -> None:
    shutil.rmtree(cdp_home / "landing" / "catalog")
    result = runner.invoke(app, ["validate", "--config", str(cdp_home / "cdp.yml")])

    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    for name in ("products", "price_changes"):
        assert f"source '{name}': no file matches" in output
    assert "'catalog/products*.csv'" in output
    assert f"in {cdp_home / 'landing'}" in output
    # Everything else it checked is still listed.
    for name in ("crm", "shop_accounts", "web_events", "orders", "order_lines", "email_events"):
        assert name in output


def test_validate_passes_when_every_source_has_files(cdp_home: Path) -> None:
    result = runner.invoke(app, ["validate", "--config", str(cdp_home / "cdp.yml")])
    assert result.exit_code == 0, result.output
    assert "ingest limits: max_field_chars 4096, max_row_bytes 65536" in result.output
