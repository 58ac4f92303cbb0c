"""The ingest checks judge each delivery: a wholly bad new file fails even after a good history.

Real files, real Parquet and real ``dagster.materialize`` runs into one instance.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from dagster_project.defs.ingest.assets import build_ingest_asset
from dagster_project.defs.ingest.checks import NEW_FILES_CHECK, build_ingest_checks
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import load_config

HEADER = "id,first,email,signup\n"
SOURCES: list[dict[str, Any]] = [
    {
        "name": "crm",
        "kind": "people",
        "format": "csv",
        "path": "crm/*.csv",
        "record_key": "id",
        "mapping": {"first_name": "first", "email": "email", "signed_up_at": "signup"},
    },
    {
        "name": "partner",
        "kind": "products",
        "format": "parquet",
        "path": "partner/*.parquet",
        "record_key": "sku",
        "mapping": {"product_id": "sku"},
    },
]


def good_rows(start: int, count: int, bad: int = 0) -> str:
    """``count`` people, the last ``bad`` of them with an unparseable signup date."""
    rows = []
    for i in range(start, start + count):
        signup = "not a date" if i >= start + count - bad else "2024-01-01T00:00:00Z"
        rows.append(f"{i},Name{i},p{i}@example.org,{signup}\n")
    return HEADER + "".join(rows)


class World:
    """A CDP_HOME with two sources; each ``run`` materializes both assets and their checks."""

    def __init__(self, home: Path, instance: dg.DagsterInstance) -> None:
        self.home = home
        self.instance = instance
        home.mkdir(parents=True)
        (home / "cdp.yml").write_text(yaml.safe_dump({"version": 1, "sources": SOURCES}))
        self.deliver("partner/catalog.parquet", parquet({"sku": ["A1", "A2"]}))
        config = load_config(home / "cdp.yml").config
        self.assets = [build_ingest_asset(source) for source in config.sources]
        self.checks = list(build_ingest_checks(config))
        self.cdp = CdpResource(home=str(home), config_path=str(home / "cdp.yml"))

    def deliver(self, relative: str, content: bytes | str) -> None:
        path = self.home / "landing" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    def run(self) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
        result = dg.materialize(
            [*self.assets, *self.checks],
            instance=self.instance,
            resources={"cdp": self.cdp},
            raise_on_error=False,
        )
        assert result.success, [e.message for e in result.get_step_failure_events()]
        return {
            (e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()
        }


def parquet(columns: dict[str, list[Any]]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with dg.instance_for_test() as instance:
        yield World(tmp_path / "home", instance)


def test_a_wholly_bad_new_file_fails_after_a_good_history(world: World) -> None:
    world.deliver("crm/2024-01.csv", good_rows(0, 2000))
    first = world.run()[("crm", NEW_FILES_CHECK)]
    assert first.passed, first.description

    # 4 KB of random bytes renamed .csv: every one of its ~40 "rows", 2 % of the history.
    world.deliver("crm/2024-02.csv", random.Random(7).randbytes(4096))
    second = world.run()
    check = second[("crm", NEW_FILES_CHECK)]
    assert not check.passed
    assert check.severity is dg.AssetCheckSeverity.ERROR
    assert first.description == "1 new file(s): 0 of 2000 rows quarantined, no file above 5%"
    assert "crm/2024-02.csv: every row quarantined" in check.description
    assert "2024-01.csv" not in check.description  # the old file is not judged again
    assert check.metadata["new_files"].value == 1
    assert second[("crm", "rows_accounted_for")].passed

    # Nothing new: the check has nothing to judge and passes.
    third = world.run()
    assert third[("crm", NEW_FILES_CHECK)].passed
    assert third[("crm", NEW_FILES_CHECK)].description == (
        "no new files in the latest materialization"
    )


def test_wrong_columns_fail_at_error_and_a_partly_bad_file_warns(world: World) -> None:
    world.deliver("crm/2024-01.csv", good_rows(0, 1000))
    assert world.run()[("crm", NEW_FILES_CHECK)].passed

    world.deliver("crm/2024-02.csv", "sku,price\nA1,9.99\nA2,1.50\n")
    world.deliver("crm/2024-03.csv", good_rows(2000, 100, bad=10))
    check = world.run()[("crm", NEW_FILES_CHECK)]
    assert not check.passed and check.severity is dg.AssetCheckSeverity.ERROR
    assert check.description.startswith("2 of 2 new file(s) fail: crm/2024-02.csv: every row")
    assert "missing column 'id' (record key)" in check.description
    assert "crm/2024-03.csv: 10 of 100 rows quarantined (10.00%)" in check.description

    world.deliver("crm/2024-04.csv", good_rows(3000, 100, bad=6))
    check = world.run()[("crm", NEW_FILES_CHECK)]
    assert not check.passed and check.severity is dg.AssetCheckSeverity.WARN
    assert check.description == (
        "1 of 1 new file(s) fail: crm/2024-04.csv: 6 of 100 rows quarantined (6.00%)"
    )


def test_an_unreadable_new_file_fails_the_check_naming_it(world: World) -> None:
    world.deliver("crm/2024-01.csv", good_rows(0, 10))
    assert world.run()[("partner", NEW_FILES_CHECK)].passed

    world.deliver("partner/late.parquet", b"PAR1 this is not parquet")
    check = world.run()[("partner", NEW_FILES_CHECK)]
    assert not check.passed and check.severity is dg.AssetCheckSeverity.ERROR
    assert "partner/late.parquet: unreadable (not a readable Parquet file" in check.description
    # Retried (and judged again) until it is fixed; the manifest holds one attempt, not many.
    assert not world.run()[("partner", NEW_FILES_CHECK)].passed
    manifest = (world.home / "lake" / "partner" / "_manifest.json").read_text()
    assert manifest.count("late.parquet") == 1
