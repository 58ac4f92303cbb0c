from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from identity import IdentitySettings, PreviousState, explain_customer, explain_pair, resolve

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def small_resolution():
    """Rules only: a person in three records, a household phone, a loyalty-id conflict."""
    records = pd.DataFrame(
        [
            {
                "record_uid": "crm:1",
                "first_name": "Robert",
                "last_name": "Smith",
                "email": "bob@x.com",
                "phone": "2125550101",
            },
            {
                "record_uid": "shop:1",
                "first_name": "Bob",
                "last_name": "Smith",
                "email": "BOB@x.com",
            },
            {"record_uid": "web:cookie:c1"},
            {
                "record_uid": "crm:2",
                "first_name": "Mary",
                "last_name": "Jones",
                "phone": "2125550199",
                "birth_date": "1970-01-01",
            },
            {
                "record_uid": "crm:3",
                "first_name": "Paul",
                "last_name": "Jones",
                "phone": "2125550199",
                "birth_date": "1968-02-02",
            },
            {"record_uid": "crm:4", "first_name": "Ann", "last_name": "Lee"},
            {"record_uid": "crm:5", "first_name": "Ann", "last_name": "Lee"},
        ]
    )
    records["source"] = records["record_uid"].str.split(":").str[0]
    records["record_id"] = records["record_uid"].str.split(":", n=1).str[1]
    identifiers = pd.DataFrame(
        [
            ("shop:1", "account_id", "A1"),
            ("web:cookie:c1", "cookie_id", "c1"),
            ("web:cookie:c1", "account_id", "A1"),
            ("crm:4", "loyalty_id", "L4"),
            ("crm:5", "loyalty_id", "L5"),
            ("crm:4", "account_id", "A4"),
            ("crm:5", "account_id", "A4"),
        ],
        columns=["record_uid", "identifier_type", "identifier_value"],
    )
    first = resolve(records, identifiers, IdentitySettings(), train=False, run_id="r1", now=NOW)
    return first


def test_explain_customer_lists_records_and_evidence(small_resolution):
    customer = small_resolution.identity_map.set_index("record_uid").loc["crm:1", "customer_id"]
    explanation = explain_customer(
        customer,
        identity_map=small_resolution.identity_map,
        edges=small_resolution.edges,
        records=small_resolution.records,
    )
    assert set(explanation.records["record_uid"]) == {"crm:1", "shop:1", "web:cookie:c1"}
    assert (
        explanation.records.loc[
            explanation.records["record_uid"] == "shop:1", "first_name_canonical"
        ].item()
        == "robert"
    )
    rules = {(e.record_uid_l, e.record_uid_r, e.rule) for e in explanation.edges}
    assert ("crm:1", "shop:1", "same_email") in rules
    assert ("shop:1", "web:cookie:c1", "same_account_id") in rules
    assert all(e.is_accepted for e in explanation.edges)
    assert "b***@x.com" in explanation.edges[0].describe() or any(
        "b***@x.com" in e.describe() for e in explanation.edges
    )


def test_explain_customer_by_alias_and_unknown_id(small_resolution):
    identity_map = small_resolution.identity_map
    customer = identity_map.set_index("record_uid").loc["crm:1", "customer_id"]
    aliases = pd.DataFrame(
        {
            "alias_customer_id": ["cus_old"],
            "customer_id": [customer],
            "created_at": [pd.Timestamp(NOW)],
            "cause": ["evidence: same_email"],
        }
    )
    by_alias = explain_customer(
        "cus_old", identity_map=identity_map, edges=small_resolution.edges, aliases=aliases
    )
    assert by_alias.customer_id == customer and by_alias.is_alias
    with pytest.raises(KeyError, match="no customer"):
        explain_customer("cus_missing", identity_map=identity_map, edges=small_resolution.edges)


def test_explain_pair_same_customer_gives_the_path(small_resolution):
    answer = explain_pair(
        "crm:1",
        "web:cookie:c1",
        identity_map=small_resolution.identity_map,
        edges=small_resolution.edges,
    )
    assert answer.same_customer
    assert [e.rule for e in answer.path] == ["same_email", "same_account_id"]
    assert "same customer" in answer.summary()


def test_explain_pair_says_which_guard_refused(small_resolution):
    household = explain_pair(
        "crm:2",
        "crm:3",
        identity_map=small_resolution.identity_map,
        edges=small_resolution.edges,
    )
    assert not household.same_customer
    assert any("max_distinct_names_per_phone" in r for r in household.reasons)
    conflict = explain_pair(
        "crm:4",
        "crm:5",
        identity_map=small_resolution.identity_map,
        edges=small_resolution.edges,
        unique_types=("loyalty_id",),
    )
    assert not conflict.same_customer
    assert any("split:unique_loyalty_id" in r for r in conflict.reasons)
    unrelated = explain_pair(
        "crm:1",
        "crm:4",
        identity_map=small_resolution.identity_map,
        edges=small_resolution.edges,
    )
    assert unrelated.reasons == ["no shared identifier and no model match links their customers."]
    with pytest.raises(KeyError):
        explain_pair(
            "crm:1",
            "nope:1",
            identity_map=small_resolution.identity_map,
            edges=small_resolution.edges,
        )


def test_explain_pair_reports_the_model_score(resolved_people, trained_model, people_world):
    _, _, truth = people_world
    resolution = resolved_people
    owner = resolution.identity_map.set_index("record_uid")["customer_id"]
    # two different people that the model compared (they share a blocking key)
    records = resolution.records
    same_last = records.dropna(subset=["last_name"]).groupby("last_name")["record_uid"].apply(list)
    pair = next(
        (a, b)
        for uids in same_last
        for a in uids
        for b in uids
        if a < b and truth[a] != truth[b] and owner[a] != owner[b]
    )
    answer = explain_pair(
        *pair,
        identity_map=resolution.identity_map,
        edges=resolution.edges,
        model=trained_model,
        records=records,
    )
    assert not answer.same_customer
    assert any("below the threshold" in r or "never compared" in r for r in answer.reasons)


def test_previous_state_of_a_resolution_round_trips(small_resolution, tmp_path):
    from identity import read_previous_state, write_resolution

    write_resolution(small_resolution, tmp_path)
    state = read_previous_state(tmp_path)
    assert isinstance(state, PreviousState)
    assert set(state.identity_map["record_uid"]) == set(small_resolution.identity_map["record_uid"])
    assert len(state.history) == len(small_resolution.history)
