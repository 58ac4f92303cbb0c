"""The snapshot format: declared tables agree with the dbt contracts; ids, pointer, retention."""

from __future__ import annotations

import ast
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

import snapshots
from snapshots import (
    CURRENT_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    TABLES,
    SnapshotError,
    SnapshotManifest,
    is_valid_snapshot_id,
    list_snapshots,
    prunable_snapshots,
    read_current,
    read_manifest,
    snapshot_folder,
    write_current,
    write_lease,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[2]
MARTS = REPO / "dbt" / "models" / "marts"
#: Marts whose tested key is a hash of the snapshot's primary key columns.
SURROGATE_KEYS = {"customer_identifiers": "customer_identifier_id"}


def _mart_models() -> dict[str, dict]:
    models: dict[str, dict] = {}
    for path in MARTS.rglob("*.yml"):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            models[model["name"]] = model
    return models


def _tested(model: dict) -> tuple[set[str], set[str], list[set[str]]]:
    """(columns tested unique, columns tested not_null, combinations tested unique)."""
    unique, not_null, combinations = set(), set(), []
    for column in model["columns"]:
        tests = [t if isinstance(t, str) else next(iter(t)) for t in column.get("data_tests", [])]
        if "unique" in tests:
            unique.add(column["name"])
        if "not_null" in tests:
            not_null.add(column["name"])
    for test in model.get("data_tests", []):
        if isinstance(test, dict) and "unique_combination_of_columns" in test:
            body = test["unique_combination_of_columns"]
            combinations.append(set(body["arguments"]["combination_of_columns"]))
    return unique, not_null, combinations


@pytest.mark.parametrize("spec", TABLES, ids=lambda spec: spec.name)
def test_every_table_is_a_contract_enforced_mart_with_its_key_tested(
    spec: snapshots.TableSpec,
) -> None:
    model = _mart_models().get(spec.name)
    assert model is not None, f"{spec.name}: no dbt mart of that name under {MARTS}"
    assert model["config"]["contract"] == {"enforced": True}, spec.name
    assert model.get("description", "").strip(), spec.name
    columns = {c["name"] for c in model["columns"]}
    declared = {*spec.primary_key, *spec.required, *spec.order_by}
    declared |= {c for index in spec.indexes for c in index}
    assert declared <= columns, f"{spec.name}: {declared - columns} not in the contract"
    unique, not_null, combinations = _tested(model)
    key = set(spec.primary_key)
    # the SQLite key holds if it contains a key dbt tests unique (e.g. event_id in
    # customer_events' clustering key) or is the one a tested surrogate hashes
    holds = bool(key & unique) or any(c <= key for c in combinations)
    holds = holds or SURROGATE_KEYS.get(spec.name, "") in unique
    assert holds, f"{spec.name}: no unique test covers the key {spec.primary_key}"
    assert key <= not_null, f"{spec.name}: key columns {key - not_null} are not tested not_null"


def test_the_package_imports_nothing_of_the_project() -> None:
    """A leaf: standard library and pydantic only (import-linter enforces it too)."""
    allowed = {"pydantic", "snapshots", "__future__"}
    for path in (REPO / "snapshots").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in allowed or top in _stdlib(), f"{path.name} imports {name}"
    assert sorted(snapshots.__all__) == sorted(set(snapshots.__all__))


def _stdlib() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names)


def _publish(serving: Path, snapshot_id: str) -> None:
    folder = serving / snapshot_id
    folder.mkdir(parents=True)
    write_manifest(
        folder,
        SnapshotManifest(
            format_version=FORMAT_VERSION,
            snapshot_id=snapshot_id,
            created_at=datetime(2025, 1, 1, tzinfo=UTC),
            warehouse="w.duckdb",
            tables={},
            columns={},
            identifier_types=[],
            size_bytes=0,
            build_seconds=0.0,
            identity_settings={"phone_default_region": "US"},
        ),
    )


def test_ids_pointer_and_manifest(tmp_path: Path) -> None:
    assert is_valid_snapshot_id("20250101T000000000000Z-abc123")
    for bad in ("", ".build-x", "../etc", "a/b", "x" * 200):
        assert not is_valid_snapshot_id(bad)
        with pytest.raises(SnapshotError, match="not a valid snapshot id"):
            snapshot_folder(tmp_path, bad)
    assert read_current(tmp_path) is None
    (tmp_path / "s1").mkdir()
    with pytest.raises(SnapshotError, match=f"no {MANIFEST_FILE}"):
        write_current(tmp_path, "s1")
    _publish(tmp_path, "s2")
    write_current(tmp_path, "s2")
    assert read_current(tmp_path) == "s2"
    assert (tmp_path / CURRENT_FILE).read_text() == "s2\n"
    assert list_snapshots(tmp_path) == ["s2"]  # s1 has no manifest: not published
    assert read_manifest(tmp_path / "s2").identity_settings == {"phone_default_region": "US"}
    (tmp_path / CURRENT_FILE).write_text("../x\n")
    with pytest.raises(SnapshotError, match="is not a snapshot id"):
        read_current(tmp_path)


def test_prunable_snapshots_spare_current_and_leased(tmp_path: Path) -> None:
    for snapshot_id in ("s1", "s2", "s3", "s4"):
        _publish(tmp_path, snapshot_id)
    write_current(tmp_path, "s1")  # an operator rolled back to the oldest
    write_lease(tmp_path, ["s2"])  # this process holds s2
    assert prunable_snapshots(tmp_path, keep=1, lease_ttl_seconds=60) == ["s3"]
    lease = next((tmp_path / ".leases").glob("*.json"))
    old = lease.stat().st_mtime - 120
    os.utime(lease, (old, old))  # a lease nobody renewed for two minutes holds nothing
    assert prunable_snapshots(tmp_path, keep=1, lease_ttl_seconds=60) == ["s2", "s3"]
    assert prunable_snapshots(tmp_path, keep=4, lease_ttl_seconds=60) == []
