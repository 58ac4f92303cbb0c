"""The `cdp` command as a user runs it: generate, validate, run (headless, into the instance)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml
from typer.testing import CliRunner

from dagster_project.cli.main import app
from dagster_project.lib.config import load_config
from dagster_project.lib.logs import chosen_log_level

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


def _without_birth_dates(cdp_home: Path) -> None:
    """A world whose people sources map no birth date: the model cannot learn that comparison."""
    path = cdp_home / "cdp.yml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for source in raw["sources"]:
        source.get("mapping", {}).pop("birth_date", None)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


#: What Splink says while it trains, in its own words: never on a terminal by default.
SPLINK_LINES = ("not observed in dataset", "[EM sampling]", "Iteration 1:", "fully trained")
IDENTITY_RUN = ["run", "--select", "group:ingest", "--select", "group:identity"]


def test_run_is_quiet_by_default_and_verbose_on_request(cdp_home: Path) -> None:
    _without_birth_dates(cdp_home)
    quiet = runner.invoke(app, IDENTITY_RUN)
    assert quiet.exit_code == 0, quiet.output
    lines = quiet.output.splitlines()
    assert not [line for line in lines if "DEBUG" in line or "INFO" in line]
    assert not [line for line in lines if any(text in line for text in SPLINK_LINES)]
    assert "succeeded" in quiet.output
    assert len(lines) < 40, quiet.output

    # What Splink could not train is in the identity asset's metadata instead.
    with dg.DagsterInstance.from_config(str(cdp_home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["identity", "identity_map"]))
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    assert metadata["model_levels_not_learnt"].value >= 6
    training = metadata["model_training"].value
    assert "| birth_date | Same birth date |" in training
    assert "comparable pairs in EM" in training
    assert "| EM session |" in metadata["model_em_sessions"].value

    (cdp_home / "lake" / "identity" / "identity_model.json").unlink()  # train again
    info = runner.invoke(app, [*IDENTITY_RUN, "-v"])
    assert info.exit_code == 0, info.output
    assert "identity_resolution: identity: normalize" in info.output
    assert "DEBUG" not in info.output

    (cdp_home / "lake" / "identity" / "identity_model.json").unlink()
    debug = runner.invoke(app, [*IDENTITY_RUN, "-vv"])
    assert debug.exit_code == 0, debug.output
    assert "DEBUG    identity.splink" in debug.output
    assert "not observed in dataset" in debug.output
    assert "STEP_START" in debug.output or "Started execution of step" in debug.output


def test_an_unknown_log_level_is_refused_naming_the_variable(
    cdp_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDP_LOG_LEVEL", "chatty")
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 2
    assert "CDP_LOG_LEVEL='chatty' is not a log level" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("verbose", "environ", "level"),
    [
        (0, {}, logging.WARNING),
        (0, {"CDP_LOG_LEVEL": " Info "}, logging.INFO),
        (1, {"CDP_LOG_LEVEL": "error"}, logging.INFO),
        (2, {"CDP_LOG_LEVEL": "error"}, logging.DEBUG),
    ],
)
def test_the_log_level_is_the_flag_else_the_variable_else_warning(
    verbose: int, environ: dict[str, str], level: int
) -> None:
    assert chosen_log_level(verbose, environ) == level


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_run_prints_what_assets_ask_the_summary_to_say(
    cdp_home: Path, monkeypatch: pytest.MonkeyPatch, verbose: list[str]
) -> None:
    from dagster_project import runner as runner_module

    note = "identity: model skipped: only 0 of 302 records have [2] or more of first_name"
    outcome = runner_module.RunOutcome(
        run_id="r1",
        success=True,
        steps=[runner_module.StepOutcome("identity/identity_map", "asset", True, "302 rows")],
        notes=[note],
    )
    monkeypatch.setattr(runner_module, "run_pipeline", lambda *args, **kwargs: outcome)
    result = runner.invoke(app, ["run", *verbose], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert f"note: {note}" in result.output  # markup-like text is printed as written
    assert result.output.index("note:") < result.output.index("run r1 succeeded")
