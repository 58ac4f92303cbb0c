"""identity's vocabulary has one home, and the package's public surface loads lazily."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import identity
from identity import (
    AUDITED_EDGE_COLUMNS,
    EDGE_COLUMNS,
    EDGE_SCHEMA,
    IDENTITY_ATTRIBUTES,
    PERSONAL_ATTRIBUTES,
    TABLE_SCHEMAS,
    Evidence,
    IdentitySettings,
    resolve,
    write_resolution,
)

REPO = Path(__file__).resolve().parents[2]
#: Heavy libraries an API worker must not load to normalize a lookup.
HEAVY = ("pandas", "numpy", "pyarrow", "duckdb", "networkx", "scipy", "splink", "sklearn")
DUCKDB_TYPES = {
    "varchar": "VARCHAR",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "bigint": "BIGINT",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
}


def _loaded_after(code: str) -> list[str]:
    """Heavy modules loaded by a fresh interpreter after running ``code``."""
    check = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, check=True
    )
    return [name for name in result.stdout.strip().split(",") if name]


def test_import_identity_loads_neither_pandas_nor_splink() -> None:
    code = (
        "import identity, sys; assert 'pandas' not in sys.modules and 'splink' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    assert _loaded_after("import identity") == []


def test_lookup_normalization_and_settings_stay_light() -> None:
    code = (
        "from identity import ColumnMapping, IdentitySettings, ModelSettings, Normalizer, "
        "PERSONAL_ATTRIBUTES, Status, load_identity_settings\n"
        "settings = load_identity_settings({'model': {'blocking_rules': ['l.email = r.email']}})\n"
        "normalizer = Normalizer(settings)\n"
        "assert normalizer.identifier('phone', '(520) 213-7631') == ('+15202137631', Status.OK)\n"
        "assert normalizer.identifier('email', 'test@example.com')[1] is Status.JUNK\n"
        "assert normalizer.record({'country': 'USA', 'first_name': 'Bob'})['country'] == 'US'\n"
        "assert settings.model.blocking_keys()[0].columns == ('email',)"
    )
    assert _loaded_after(code) == []


def test_the_api_imports_no_heavy_identity_part() -> None:
    assert not {"pandas", "splink", "networkx"} & set(_loaded_after("import api.main"))


def test_every_public_name_resolves_and_nothing_else_does() -> None:
    for name in identity.__all__:
        assert getattr(identity, name) is not None, name
    assert sorted(dir(identity)) == sorted(identity.__all__)
    assert len(set(identity.__all__)) == len(identity.__all__)
    with pytest.raises(AttributeError, match="no attribute 'CandidateScorer'"):
        _ = identity.CandidateScorer  # internal: imported from identity.model by its tests


def test_personal_attributes_are_the_identity_attributes_but_region_and_country() -> None:
    assert set(PERSONAL_ATTRIBUTES) == set(IDENTITY_ATTRIBUTES) - {"region", "country"}
    assert tuple(a for a in IDENTITY_ATTRIBUTES if a in PERSONAL_ATTRIBUTES) == PERSONAL_ATTRIBUTES


def test_the_platform_and_the_api_use_identitys_names() -> None:
    from api.graphql.types import customer
    from dagster_project.lib.config import KIND_FIELDS, SourceKind

    assert customer.PERSONAL_ATTRIBUTES is PERSONAL_ATTRIBUTES
    people = {spec.name: spec for spec in KIND_FIELDS[SourceKind.PEOPLE]}
    for attribute in IDENTITY_ATTRIBUTES:  # every attribute is private in the lake
        assert people[attribute].is_personal, attribute


def test_edge_columns_are_the_evidence_and_the_verdict() -> None:
    assert tuple(EDGE_SCHEMA)[:8] == EDGE_COLUMNS
    assert (*EDGE_COLUMNS, "is_accepted", "rejected_reason") == AUDITED_EDGE_COLUMNS
    assert tuple(f.name for f in dataclasses.fields(Evidence)) == AUDITED_EDGE_COLUMNS


def test_written_tables_follow_their_schemas(tmp_path: Path) -> None:
    records = pd.DataFrame(
        {
            "record_uid": ["crm:1", "shop:1", "crm:2"],
            "source": ["crm", "shop", "crm"],
            "record_id": ["1", "1", "2"],
            "source_kind": ["people"] * 3,
            "first_name": ["Robert", "Bob", "Ann"],
            "last_name": ["Smith", "Smith", "Lee"],
            "email": ["bob@x.com", "BOB@x.com", "test@example.com"],
            "phone": ["2125550101", None, "(520) 213-7631"],
        }
    )
    resolution = resolve(
        records,
        None,
        IdentitySettings(),
        train=False,
        run_id="r1",
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    written = write_resolution(resolution, tmp_path)
    con = duckdb.connect()
    for name, schema in TABLE_SCHEMAS.items():
        described = con.execute(
            "select column_name, column_type from "
            f"(describe select * from read_parquet('{written[name]}'))"
        ).fetchall()
        assert described == [(c, DUCKDB_TYPES[t]) for c, t in schema.items()], name
    attributes = pd.read_parquet(written["identity_attributes.parquet"]).set_index("record_uid")
    assert attributes.loc["crm:2", "email_status"] == "junk"
    assert attributes.loc["crm:2", "phone"] == "+15202137631"
    assert attributes.loc["shop:1", "email"] == "bob@x.com"
