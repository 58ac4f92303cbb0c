"""The identity assets materialized for real: generated world -> ingest -> identity -> checks."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from dagster_project.defs.identity.assets import build_identity_assets, identity_asset_key
from dagster_project.defs.identity.checks import build_identity_checks
from dagster_project.defs.ingest.assets import build_ingest_assets
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.settings import PlatformSettings
from identity import MODEL_FILE, STATS_FILE, evaluate_clusters

pytestmark = pytest.mark.slow


def _materialize(settings: PlatformSettings, selection: dg.AssetSelection | None = None):
    cdp = CdpResource.from_settings(settings)
    config = cdp.loaded_config().config
    assets = [*build_ingest_assets(config), *build_identity_assets(config)]
    return dg.materialize(
        [*assets, *build_identity_checks(config)],
        resources={"cdp": cdp},
        selection=selection,
        raise_on_error=True,
    )


def test_identity_assets_write_outputs_and_pass_their_checks(
    settings: PlatformSettings, sample_world: Path
):
    result = _materialize(settings)
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {
        "largest_cluster_within_cap",
        "singleton_share_below_85_percent",
        "merges_and_splits_this_run_below_5_percent",
        "links_rejected_by_guards_below_25_percent",
    }
    assert all(e.passed for e in checks.values()), {
        name: e.description for name, e in checks.items()
    }
    materializations = result.asset_materializations_for_node("identity_resolution")
    materialized = {m.asset_key for m in materializations}
    for name in ("identity_map", "identity_identifiers", "identity_edges", "customer_id_history"):
        assert identity_asset_key(name) in materialized
    identity = settings.home / "lake" / "identity"
    identity_map = pd.read_parquet(identity / "identity_map.parquet")
    assert (identity / MODEL_FILE).exists() and (identity / STATS_FILE).exists()
    runs = list((settings.home / "runs").glob(f"*/{MODEL_FILE}"))
    assert len(runs) == 1
    # every record of the ground truth's people sources is resolved, none above the cap
    truth = pd.read_parquet(sample_world / "ground_truth" / "records.parquet")
    truth = truth.rename(columns={"person_id": "entity_id"})
    assert set(truth["source"]) <= set(identity_map["source"])
    assert identity_map["cluster_size"].max() <= 20
    scores = evaluate_clusters(identity_map, truth)
    assert scores.records_without_truth == 0
    assert scores.precision >= 0.97, scores
    metadata = next(
        m.metadata for m in materializations if m.asset_key == identity_asset_key("identity_map")
    )
    assert metadata["customers"].value == identity_map["customer_id"].nunique()
    assert "cluster_size_histogram" in metadata

    # a second run reuses the saved model and keeps every customer id
    again = _materialize(settings, dg.AssetSelection.groups("identity"))
    assert again.success
    second = pd.read_parquet(identity / "identity_map.parquet")
    merged = identity_map.merge(second, on="record_uid")
    assert len(merged) == len(identity_map)
    assert (merged["customer_id_x"] == merged["customer_id_y"]).all()
    churn = next(
        e
        for e in again.get_asset_check_evaluations()
        if e.check_name == "merges_and_splits_this_run_below_5_percent"
    )
    assert churn.passed and churn.metadata["previous_records_same_id"].value == 1.0


def test_invalid_identity_settings_fail_the_asset(settings: PlatformSettings):
    config_path = settings.config_path
    config_path.write_text(
        config_path.read_text() + "identity:\n  max_cluster_size: 0\n", encoding="utf-8"
    )
    with pytest.raises(dg.Failure, match=r"identity\.max_cluster_size"):
        _materialize(settings)


def test_provisional_customers_of_the_real_time_path_become_claims(settings: PlatformSettings):
    """The fold's provisional_customers.parquet reaches the run: a provisional person found to
    be a known customer becomes that customer's alias; a broken file fails with its name."""
    assert _materialize(settings).success
    identity = settings.home / "lake" / "identity"
    identifiers = pd.read_parquet(identity / "identity_identifiers.parquet")
    email = identifiers[(identifiers["identifier_type"] == "email") & ~identifiers["is_shared"]]
    known_email, known_customer = email.iloc[0][["identifier_value", "customer_id"]]
    before = pd.read_parquet(identity / "identity_map.parquet")
    realtime = settings.home / "lake" / "_realtime"
    realtime.mkdir(parents=True, exist_ok=True)
    provisional, unmatched = "cus_" + "a" * 16, "cus_" + "b" * 16
    pd.DataFrame(
        {
            "identifier_type": ["email", "cookie_id"],
            "identifier_value": [known_email.upper(), "never-folded"],
            "customer_id": [provisional, unmatched],
            "linked_at": pd.to_datetime(["2026-01-01", "2026-01-01"], utc=True),
        }
    ).to_parquet(realtime / "provisional_customers.parquet")

    again = _materialize(settings, dg.AssetSelection.groups("identity"))
    aliases = pd.read_parquet(identity / "customer_aliases.parquet")
    assert aliases.set_index("alias_customer_id").loc[provisional, "customer_id"] == known_customer
    after = pd.read_parquet(identity / "identity_map.parquet")
    merged = before.merge(after, on="record_uid")
    assert len(merged) == len(before) and (merged["customer_id_x"] == merged["customer_id_y"]).all()
    metadata = next(
        m.metadata
        for m in again.asset_materializations_for_node("identity_resolution")
        if m.asset_key == identity_asset_key("identity_map")
    )
    assert metadata["provisional_ids_aliased"].value == 1
    assert metadata["provisional_ids_kept"].value == 0
    assert metadata["provisional_claims_unmatched"].value == 1

    (realtime / "provisional_customers.parquet").write_bytes(b"truncated by a crash")
    with pytest.raises(dg.Failure, match=r"provisional_customers\.parquet: unreadable"):
        _materialize(settings, dg.AssetSelection.groups("identity"))
