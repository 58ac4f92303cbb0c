"""The dbt project's files agree with the platform's contracts (no dbt run needed)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
import yaml

from dagster_project.lib.config import (
    KIND_FIELDS,
    LINEAGE_COLUMNS,
    CdpConfig,
    FieldType,
    SourceKind,
)
from dagster_project.lib.dbt_project import (
    DBT_PROJECT_DIR,
    dbt_environment,
    dbt_vars,
    environment,
    lake_globs,
    project_fingerprint,
    reuse_partial_parse,
    segment_model_names,
)
from dagster_project.lib.workspace import Workspace

DUCKDB_TYPES = {
    FieldType.TEXT: "varchar",
    FieldType.TIMESTAMP: "timestamptz",
    FieldType.DATE: "date",
    FieldType.BOOLEAN: "boolean",
    FieldType.INTEGER: "bigint",
    FieldType.DECIMAL: "double",
}


def _project_vars() -> dict:
    return yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]


def _model_yaml(folder: str) -> dict[str, dict]:
    models: dict[str, dict] = {}
    for path in (DBT_PROJECT_DIR / "models" / folder).rglob("_*.yml"):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            models[model["name"]] = model
    return models


def test_kind_columns_match_the_lake_contract() -> None:
    variables = _project_vars()
    kinds = variables["cdp_kind_columns"]
    assert set(kinds) == {kind.value for kind in SourceKind}
    for kind, fields in KIND_FIELDS.items():
        expected = {field.name: DUCKDB_TYPES[field.type] for field in fields}
        assert kinds[kind.value] == expected, kind
    assert set(variables["cdp_lake_lineage_columns"]) == set(LINEAGE_COLUMNS)


def test_default_segment_list_names_every_segment_file() -> None:
    names = segment_model_names()
    assert names == sorted(_project_vars()["cdp_segment_models"])
    assert {
        "frequent_buyers",
        "browsers",
        "infrequent_buyers",
        "high_value",
        "at_risk",
        "cart_abandoners",
        "email_unsubscribed",
    } <= set(names)


def test_every_segment_has_meta_name_description_owner() -> None:
    models = _model_yaml("segments")
    for name in segment_model_names():
        meta = models[name]["config"]["meta"]
        assert meta["name"] == name
        assert meta["description"].strip() and meta["owner"].strip(), name


def test_marts_enforce_contracts_with_a_type_on_every_column() -> None:
    models = _model_yaml("marts")
    expected = {
        "customers",
        "customer_identifiers",
        "customer_traits",
        "customer_events",
        "customer_segments",
        "segment_membership_history",
        "segments",
        "product_affinity",
        "campaign_metrics",
    }
    assert expected <= set(models)
    for name, model in models.items():
        assert model["config"]["contract"] == {"enforced": True}, name
        sql_files = list((DBT_PROJECT_DIR / "models" / "marts").rglob(f"{name}.sql"))
        assert len(sql_files) == 1, name
        for column in model["columns"]:
            assert column.get("data_type"), f"{name}.{column['name']} has no data_type"


def test_every_model_has_a_tested_key() -> None:
    for folder in ("staging", "intermediate", "marts", "segments"):
        for name, model in _model_yaml(folder).items():
            tests = [str(t) for t in model.get("data_tests", [])]
            for column in model.get("columns", []):
                tests += [f"{column['name']}:{t}" for t in column.get("data_tests", [])]
            text = " ".join(tests)
            assert "unique" in text and "not_null" in text, f"{folder}/{name} has no key test"


def test_trait_columns_named_in_the_issue_are_in_the_contract() -> None:
    columns = {c["name"] for c in _model_yaml("marts")["customer_traits"]["columns"]}
    assert {
        "recency_days",
        "frequency",
        "monetary",
        "r_score",
        "f_score",
        "m_score",
        "order_count",
        "lifetime_revenue",
        "average_order_value",
        "first_order_at",
        "last_order_at",
        "return_count",
        "days_since_last_visit",
        "favourite_category",
        "favourite_brand",
        "email_sends_30d",
        "email_sends_90d",
        "open_rate_30d",
        "open_rate_90d",
        "click_rate_30d",
        "click_rate_90d",
        "engagement_score",
    } <= columns


def test_vars_carry_globs_trust_as_of_and_segments(tmp_path: Path) -> None:
    config = CdpConfig.model_validate(
        {
            "sources": [
                {
                    "name": "crm",
                    "kind": "people",
                    "format": "csv",
                    "path": "a.csv",
                    "record_key": "id",
                    "trust": 5,
                },
                {
                    "name": "shop",
                    "kind": "people",
                    "format": "csv",
                    "path": "b.csv",
                    "record_key": "id",
                },
                {
                    "name": "app",
                    "kind": "events",
                    "format": "jsonl",
                    "path": "e.jsonl",
                    "record_key": "id",
                    "mapping": {"event_type": "type", "occurred_at": "ts"},
                },
            ]
        }
    )
    workspace = Workspace(tmp_path)
    variables = dbt_vars(config, workspace, date(2025, 1, 31))
    assert variables["as_of"] == "2025-01-31"
    assert variables["cdp_source_trust"] == {"crm": 5, "shop": 100, "app": 100}
    assert variables["cdp_lake_globs"]["people"] == [
        str(tmp_path / "lake" / "crm" / "*.parquet"),
        str(tmp_path / "lake" / "shop" / "*.parquet"),
    ]
    # Every kind is present, so models of kinds without sources still compile (empty).
    assert variables["cdp_lake_globs"]["orders"] == []
    assert set(lake_globs(config, workspace.lake)) == {k.value for k in SourceKind}
    assert variables["cdp_segment_models"] == segment_model_names()
    with pytest.raises(ValueError, match="single quote"):
        lake_globs(config, tmp_path / "o'brien" / "lake")


def test_environment_sets_and_restores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDP_LAKE_PATH", "before")
    monkeypatch.delenv("CDP_WAREHOUSE_PATH", raising=False)
    values = dbt_environment(Workspace(tmp_path))
    assert values["CDP_WAREHOUSE_PATH"] == str((tmp_path / "warehouse.duckdb").resolve())
    with environment(values):
        assert os.environ["CDP_LAKE_PATH"] == str((tmp_path / "lake").resolve())
    assert os.environ["CDP_LAKE_PATH"] == "before"
    assert "CDP_WAREHOUSE_PATH" not in os.environ


def test_fingerprint_changes_when_a_segment_file_is_added(tmp_path: Path) -> None:
    project = tmp_path / "dbt"
    (project / "models" / "segments").mkdir(parents=True)
    (project / "target").mkdir()
    (project / "dbt_project.yml").write_text("name: x\n")
    before = project_fingerprint(project, {"a": 1})
    (project / "target" / "manifest.json").write_text("{}")  # build output is ignored
    assert project_fingerprint(project, {"a": 1}) == before
    (project / "models" / "segments" / "new_segment.sql").write_text("select 1 as customer_id")
    assert project_fingerprint(project, {"a": 1}) != before
    assert project_fingerprint(project, {"a": 2}) != project_fingerprint(project, {"a": 1})


def test_partial_parse_is_reused_within_and_across_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = runs / "run1"
    (first / "dbt_models").mkdir(parents=True)
    (first / "dbt_models" / "partial_parse.msgpack").write_bytes(b"parsed")
    reuse_partial_parse(first, first / "dbt_segment_models")  # second stage of the same run
    assert (first / "dbt_segment_models" / "partial_parse.msgpack").read_bytes() == b"parsed"
    second = runs / "run2"
    reuse_partial_parse(second, second / "dbt_models")  # a later run starts from the last one
    assert (second / "dbt_models" / "partial_parse.msgpack").read_bytes() == b"parsed"
    (second / "dbt_models" / "partial_parse.msgpack").write_bytes(b"own")
    reuse_partial_parse(second, second / "dbt_models")  # an existing file is kept
    assert (second / "dbt_models" / "partial_parse.msgpack").read_bytes() == b"own"
    empty = tmp_path / "empty" / "run"
    reuse_partial_parse(empty, empty / "dbt_models")
    assert not empty.exists()
