"""The ``offers`` kind (a sales calendar): validated in cdp.yml, ingested, bad rows quarantined."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from dagster_project.lib.config import ConfigError, SourceKind, load_config
from dagster_project.lib.generate.config_writer import sample_config
from dagster_project.lib.ingest import read_lake, read_quarantine
from tests.support.ingest import ingest, setup

OFFERS: dict[str, Any] = next(s for s in sample_config()["sources"] if s["kind"] == "offers")
HEADER = (
    "offer_id,sale_id,title,theme,brand,category,product_id,starts_at,ends_at,"
    "discount_percent,regular_price,sale_price\n"
)
GOOD = (
    'S20250101-01-P00210,S20250101-01,"Top Rated: Summit Gear, up to 15% off",top-rated,'
    "Summit Gear,Sports & Outdoors,P00210,2025-01-01T14:00:00Z,2025-01-04T14:00:00Z,"
    "15,49.99,42.49\n"
    "S20250101-02-P00007,S20250101-02,Clearance: Books from several brands,clearance,,Books,"
    "P00007,2025-01-01T14:00:00Z,2025-01-02T14:00:00Z,35,20.00,13.00\n"
)


def test_the_sample_config_declares_an_offers_source() -> None:
    assert OFFERS["kind"] == SourceKind.OFFERS.value
    assert OFFERS["record_key"] == "offer_id"


def test_offers_ingest_with_types_and_a_missing_key_is_quarantined(tmp_path: Path) -> None:
    bad = "S20250101-03-P00008,S20250101-03,x,clearance,,Books,P00008,not-a-date,,10,1,1\n"
    loaded, source, workspace = setup(
        tmp_path, OFFERS, {"offers/sales-2025-01.csv": HEADER + GOOD + bad}
    )
    report = ingest(loaded, source, workspace)
    assert report.rows_ingested == 2
    assert report.rows_quarantined == 1
    rows = {r["record_id"]: r for r in read_lake(workspace, "offers").to_pylist()}
    first = rows["S20250101-01-P00210"]
    assert first["sale_id"] == "S20250101-01"
    assert first["product_id"] == "P00210"
    assert first["starts_at"] == datetime(2025, 1, 1, 14, tzinfo=UTC)
    assert float(first["sale_price"]) == pytest.approx(42.49)
    assert rows["S20250101-02-P00007"]["brand"] is None
    quarantined = read_quarantine(workspace, "offers").to_pylist()
    assert len(quarantined) == 1


def test_an_offers_source_without_its_required_fields_fails_at_start(tmp_path: Path) -> None:
    source = {**OFFERS, "mapping": {k: v for k, v in OFFERS["mapping"].items() if k != "ends_at"}}
    path = tmp_path / "cdp.yml"
    path.write_text(yaml.safe_dump({"version": 1, "sources": [source]}), encoding="utf-8")
    with pytest.raises(ConfigError, match="ends_at"):
        load_config(path)
