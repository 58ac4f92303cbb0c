"""dbt cannot import identity's vocabulary, so these tests keep its copies equal to it."""

from __future__ import annotations

import ast
import re

import yaml

import identity
from dagster_project.lib.dbt_project import DBT_PROJECT_DIR
from identity import ATTRIBUTE_SCHEMA, IDENTITY_ATTRIBUTES, TABLE_SCHEMAS

MODELS = DBT_PROJECT_DIR / "models"
_SET_ATTRIBUTES = re.compile(r"set attributes = (\[[^\]]*\])", re.DOTALL)


def _attribute_list(relative: str) -> list[str]:
    match = _SET_ATTRIBUTES.search((MODELS / relative).read_text(encoding="utf-8"))
    assert match, f"{relative}: no `set attributes = [...]`"
    return ast.literal_eval(match.group(1))


def test_models_spell_the_identity_attributes_as_identity_does() -> None:
    for relative in (
        "staging/identity/stg_identity__identity_attributes.sql",
        "intermediate/int_people_resolved.sql",
        "marts/customers.sql",
    ):
        assert _attribute_list(relative) == list(IDENTITY_ATTRIBUTES), relative


def test_identity_sources_read_the_files_identity_writes() -> None:
    files = {getattr(identity, name) for name in identity.__all__ if name.endswith("_FILE")}
    sources = yaml.safe_load((MODELS / "staging/identity/_identity__sources.yml").read_text())
    tables = {
        t["name"]: t for s in sources["sources"] if s["name"] == "identity" for t in s["tables"]
    }
    assert "identity_attributes" in tables
    for name, table in tables.items():
        assert f"{name}.parquet" in files, name
        assert f"/identity/{name}.parquet'" in table["config"]["external_location"], name


def test_staged_attributes_have_identitys_columns() -> None:
    text = (MODELS / "staging/identity/stg_identity__identity_attributes.sql").read_text()
    for column in ("record_uid", "source", "record_id"):
        assert f"as {column}," in text
    assert {c for c in ATTRIBUTE_SCHEMA if c.endswith("_status")} == {
        f"{a}_status"
        for a in _attribute_list("staging/identity/stg_identity__identity_attributes.sql")
    }


_EMPTY_STAND_IN = re.compile(
    r"external_or_empty\(\s*source\('identity',\s*'(\w+)'\),\s*(\{[^}]*\})\s*\)", re.DOTALL
)


def test_empty_stand_ins_of_identity_tables_use_identitys_types() -> None:
    """A staging model that reads an optional identity table with a typed empty stand-in spells
    its columns and DuckDB types as identity's schema does (read_parquet may add row numbers)."""
    found = 0
    for path in sorted((MODELS / "staging/identity").glob("*.sql")):
        for table, columns in _EMPTY_STAND_IN.findall(path.read_text(encoding="utf-8")):
            schema = TABLE_SCHEMAS[f"{table}.parquet"]
            declared = ast.literal_eval(columns)
            assert set(declared) - set(schema) <= {"file_row_number"}, path.name
            for column, data_type in declared.items():
                assert schema.get(column, data_type) == data_type, (path.name, column)
            found += 1
    assert found >= 1
