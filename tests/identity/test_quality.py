"""End-to-end quality on constructed data with known truth: pairwise scores, every guard,
and customer-id stability across runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from identity import (
    IdentitySettings,
    pairwise_scores,
    read_previous_state,
    resolve,
    write_resolution,
)
from tests.support.identity_data import make_persons, messy_records

LATER = datetime(2026, 2, 1, tzinfo=UTC)


def _scores(resolution, truth: pd.Series):
    mapping = resolution.identity_map.set_index("record_uid")["customer_id"]
    return pairwise_scores(mapping, truth.reindex(mapping.index))


def test_constructed_world_precision_and_recall(resolved_people, people_world):
    _, _, truth = people_world
    scores = _scores(resolved_people, truth)
    assert scores.precision >= 0.995, scores
    assert scores.recall >= 0.97, scores
    stats = resolved_people.stats
    assert stats["largest_cluster"] <= IdentitySettings().max_cluster_size
    assert stats["model"]["used"] and stats["model"]["edges"] > 0
    # the households of the world share phones: the guard turned those into weak values
    assert stats["rules"]["weak_values"].get("phone", 0) > 0
    assert stats["links_rejected_by_reason"].get("max_distinct_names_per_phone", 0) > 0


def test_no_household_member_is_merged(resolved_people, people_world):
    _, _, truth = people_world
    per_customer = (
        resolved_people.identity_map.assign(person=lambda f: f["record_uid"].map(truth))
        .groupby("customer_id")["person"]
        .nunique()
    )
    assert (per_customer > 1).sum() <= 2  # at most a stray model edge, never the households


def test_junk_values_merge_nobody():
    persons = make_persons(60, seed=5, household_rate=0.0)
    records, identifiers, truth = messy_records(persons, seed=6, junk_rate=0.0)
    records["email"] = "test@example.com"
    records["phone"] = "0000000000"
    resolution = resolve(
        records, identifiers, IdentitySettings(), train=False, run_id="r", now=LATER
    )
    scores = _scores(resolution, truth)
    assert scores.precision == 1.0
    assert resolution.stats["normalization"]["junk"] == {
        "email": len(records),
        "phone": len(records),
    }


def test_cluster_cap_holds_on_a_chain_of_weak_evidence():
    # 30 records sharing one account id (a broken upstream system): never one customer of 30
    records = pd.DataFrame({"record_uid": [f"s:{i}" for i in range(30)]})
    identifiers = pd.DataFrame(
        {
            "record_uid": records["record_uid"],
            "identifier_type": "account_id",
            "identifier_value": "SAME",
        }
    )
    settings = IdentitySettings(max_cluster_size=8)
    resolution = resolve(records, identifiers, settings, train=False, run_id="r", now=LATER)
    sizes = resolution.identity_map.groupby("customer_id").size()
    assert sizes.max() <= 8 and sizes.sum() == 30
    assert resolution.stats["splits"][0]["causes"] == ["max_cluster_size"]


def test_unique_identifier_conflict_is_split():
    records = pd.DataFrame(
        [
            {"record_uid": "crm:1", "first_name": "Ann", "email": "fam@x.com"},
            {"record_uid": "crm:2", "first_name": "Ann", "email": "fam@x.com"},
        ]
    )
    identifiers = pd.DataFrame(
        [("crm:1", "loyalty_id", "L1"), ("crm:2", "loyalty_id", "L2")],
        columns=["record_uid", "identifier_type", "identifier_value"],
    )
    resolution = resolve(
        records, identifiers, IdentitySettings(), train=False, run_id="r", now=LATER
    )
    assert resolution.identity_map["customer_id"].nunique() == 2
    assert resolution.stats["links_rejected_by_reason"] == {"split:unique_loyalty_id": 1}


def test_rerun_keeps_every_customer_id(resolved_people, people_world, trained_model, tmp_path):
    records, identifiers, _ = people_world
    write_resolution(resolved_people, tmp_path)
    previous = read_previous_state(tmp_path)
    again = resolve(
        records,
        identifiers,
        IdentitySettings(),
        previous=previous,
        model=trained_model,
        run_id="run-2",
        now=LATER,
    )
    merged = resolved_people.identity_map.merge(again.identity_map, on="record_uid")
    assert len(merged) == len(records)
    assert (merged["customer_id_x"] == merged["customer_id_y"]).all()
    assert again.events.empty
    assert again.stats["ids"]["previous_records_same_id"] == 1.0


def test_one_percent_new_records_keep_99_percent_of_ids(
    resolved_people, people_world, trained_model, tmp_path
):
    records, identifiers, _ = people_world
    extra_persons = make_persons(60, seed=99)
    for person in extra_persons:
        person.person_id = "x" + person.person_id
    extra, extra_ids, _ = messy_records(extra_persons, seed=98, sources=("web",), coverage=1.0)
    extra = extra.head(max(1, len(records) // 100))
    extra_ids = extra_ids[extra_ids["record_uid"].isin(extra["record_uid"])]
    # some of the new records are new sightings of known people
    known = records.sample(len(extra) // 2, random_state=1).copy()
    known["record_uid"] = "web:" + known["record_id"]
    known["source"] = "web"
    grown = pd.concat([records, extra.iloc[: len(extra) - len(known)], known], ignore_index=True)
    grown_ids = pd.concat([identifiers, extra_ids], ignore_index=True)
    write_resolution(resolved_people, tmp_path)
    second = resolve(
        grown,
        grown_ids,
        IdentitySettings(),
        previous=read_previous_state(tmp_path),
        model=trained_model,
        run_id="run-2",
        now=LATER,
    )
    assert len(grown) - len(records) <= len(records) // 100 + 1
    assert second.stats["ids"]["previous_records_same_id"] >= 0.99
    assert second.stats["ids"]["previous_id_retention"] >= 0.99
    # every id the first run issued is still either current or an alias
    current = set(second.identity_map["customer_id"])
    aliases = set(second.aliases["alias_customer_id"])
    assert set(resolved_people.identity_map["customer_id"]) <= current | aliases


def test_outputs_follow_the_contract(resolved_people, tmp_path):
    written = write_resolution(resolved_people, tmp_path, run_folder=tmp_path / "runs" / "r1")
    identity_map = pd.read_parquet(written["identity_map.parquet"])
    assert list(identity_map.columns) == [
        "record_uid",
        "source",
        "record_id",
        "customer_id",
        "cluster_size",
        "resolved_at",
    ]
    assert identity_map["record_uid"].is_unique
    sizes = identity_map.groupby("customer_id")["record_uid"].transform("size")
    assert (identity_map["cluster_size"] == sizes).all()
    identifiers = pd.read_parquet(written["identity_identifiers.parquet"])
    assert {"email", "phone", "loyalty_id", "account_id"} <= set(identifiers["identifier_type"])
    assert set(identifiers.columns) >= {
        "record_uid",
        "customer_id",
        "identifier_type",
        "identifier_value",
        "source",
        "first_seen_at",
        "last_seen_at",
    }
    edges = pd.read_parquet(written["identity_edges.parquet"])
    assert (edges["record_uid_l"] < edges["record_uid_r"]).all()
    assert set(edges["evidence_type"]) == {"rule", "model"}
    assert edges.loc[~edges["is_accepted"], "rejected_reason"].notna().all()
    assert edges.loc[edges["is_accepted"], "rejected_reason"].isna().all()
    assert (edges["run_id"] == "run-1").all()
    history = pd.read_parquet(written["customer_id_history.parquet"])
    assert set(history["event_type"]) == {"created"}
    assert history["customer_id"].nunique() == identity_map["customer_id"].nunique()
    assert (tmp_path / "runs" / "r1" / "identity_model.json").exists()
