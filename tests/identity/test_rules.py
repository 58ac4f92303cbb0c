from __future__ import annotations

import orjson
import pandas as pd
import pytest

from identity import IdentitySettings, Normalizer
from identity.rules import (
    NameKey,
    deterministic_edges,
    distinct_names,
    edit_distance,
    first_names_conflict,
    guard_model_edges,
    names_compatible,
    normalize_identifiers,
)

SETTINGS = IdentitySettings()


def _records(rows: list[dict]) -> pd.DataFrame:
    return Normalizer(SETTINGS).frame(pd.DataFrame(rows))[0]


def _identifiers(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["record_uid", "identifier_type", "identifier_value"])
    return normalize_identifiers(frame, Normalizer(SETTINGS))


def _accepted_pairs(edges: pd.DataFrame, rule: str | None = None) -> set[tuple[str, str]]:
    chosen = edges[edges["is_accepted"]]
    if rule is not None:
        chosen = chosen[chosen["rule"] == rule]
    return set(zip(chosen["record_uid_l"], chosen["record_uid_r"], strict=True))


def test_shared_email_links_variants_as_a_star():
    records = _records(
        [
            {"record_uid": f"s:{i}", "email": email, "first_name": name}
            for i, (email, name) in enumerate(
                [
                    ("Ann@X.com", "Ann"),
                    (" ann@x.com", "Anne"),
                    ("ANN@X.COM", "Ann"),
                    ("ann@x.com", None),
                    ("ann@x.com", "Ann"),
                ]
            )
        ]
    )
    result = deterministic_edges(records, None, SETTINGS)
    pairs = _accepted_pairs(result.edges, "same_email")
    assert pairs == {("s:0", f"s:{i}") for i in range(1, 5)}  # n - 1 edges on the first record
    edge = result.edges.iloc[0]
    assert edge["evidence_type"] == "rule" and edge["match_probability"] == 1.0
    assert orjson.loads(edge["details"]) == {"value": "a***@x.com"}
    assert (result.edges["record_uid_l"] < result.edges["record_uid_r"]).all()


def test_junk_values_create_no_links():
    rows = [
        {
            "record_uid": f"s:{i}",
            "email": "test@example.com",
            "phone": "0000000000",
            "first_name": name,
        }
        for i, name in enumerate(["Ann", "Bob", "Cid", "Dee"])
    ]
    records = _records(rows)
    identifiers = _identifiers([(f"s:{i}", "account_id", "n/a") for i in range(4)])
    result = deterministic_edges(records, identifiers, SETTINGS)
    assert result.edges.empty
    assert identifiers.empty


def test_household_phone_is_a_weak_signal_not_a_key():
    rows = [
        {
            "record_uid": "crm:1",
            "phone": "(212) 555-0199",
            "first_name": "Mary",
            "last_name": "Smith",
            "birth_date": "1970-01-01",
        },
        {
            "record_uid": "crm:2",
            "phone": "212.555.0199",
            "first_name": "John",
            "last_name": "Smith",
            "birth_date": "1968-05-05",
        },
        {
            "record_uid": "crm:3",
            "phone": "2125550199",
            "first_name": "Lucy",
            "last_name": "Smith",
            "birth_date": "2001-09-09",
        },
    ]
    result = deterministic_edges(_records(rows), None, SETTINGS)
    assert _accepted_pairs(result.edges) == set()
    rejected = result.edges[~result.edges["is_accepted"]]
    assert set(rejected["rejected_reason"]) == {"max_distinct_names_per_phone"}
    assert len(rejected) == 2
    weak = result.weak_values.iloc[0]
    assert (weak["identifier_type"], weak["identifier_value"]) == ("phone", "+12125550199")
    assert weak["distinct_names"] == 3


def test_household_member_without_first_name_still_counts_by_birth_date():
    rows = [
        {"record_uid": "a:1", "phone": "2125550199", "first_name": "Brenda", "last_name": "Baker"},
        {
            "record_uid": "a:2",
            "phone": "2125550199",
            "first_name": "Brenda",
            "last_name": "Baker",
            "birth_date": "1978-10-28",
        },
        {
            "record_uid": "a:3",
            "phone": "2125550199",
            "last_name": "Baker",
            "birth_date": "1943-01-07",
        },
    ]
    result = deterministic_edges(_records(rows), None, SETTINGS)
    assert _accepted_pairs(result.edges) == set()


def test_one_person_written_differently_keeps_the_key():
    rows = [
        {"record_uid": "a:1", "email": "rob@x.com", "first_name": "Robert", "last_name": "Smith"},
        {"record_uid": "a:2", "email": "rob@x.com", "first_name": "Bob", "last_name": "Smith"},
        {"record_uid": "a:3", "email": "rob@x.com", "first_name": "Rboert", "last_name": "Smith"},
        {"record_uid": "a:4", "email": "rob@x.com", "first_name": "Smith", "last_name": "Robert"},
        {"record_uid": "a:5", "email": "rob@x.com", "first_name": "Robrt", "last_name": "Smith"},
    ]
    result = deterministic_edges(_records(rows), None, SETTINGS)
    assert len(_accepted_pairs(result.edges, "same_email")) == 4
    assert result.weak_values.empty


def test_distinct_names_limit_is_configurable():
    rows = [
        {"record_uid": "a:1", "email": "fam@x.com", "first_name": "Mary", "last_name": "Li"},
        {"record_uid": "a:2", "email": "fam@x.com", "first_name": "Peter", "last_name": "Li"},
    ]
    records = _records(rows)
    assert _accepted_pairs(deterministic_edges(records, None, SETTINGS).edges) == set()
    lenient = IdentitySettings(max_distinct_names_per_email=2)
    assert _accepted_pairs(deterministic_edges(records, None, lenient).edges) == {("a:1", "a:2")}


def test_shared_device_links_none_of_its_accounts():
    records = _records(
        [
            {"record_uid": "shop:A1", "first_name": "Ann"},
            {"record_uid": "shop:A2", "first_name": "Ben"},
            {"record_uid": "web:cookie:c1"},
            {"record_uid": "web:cookie:c2"},
        ]
    )
    identifiers = _identifiers(
        [
            ("shop:A1", "account_id", "A1"),
            ("shop:A2", "account_id", "A2"),
            ("web:cookie:c1", "cookie_id", "c1"),
            ("web:cookie:c1", "account_id", "A1"),
            ("web:cookie:c1", "account_id", "A2"),
            ("web:cookie:c2", "cookie_id", "c2"),
            ("web:cookie:c2", "account_id", "A2"),
        ]
    )
    result = deterministic_edges(records, identifiers, SETTINGS)
    assert _accepted_pairs(result.edges) == {("shop:A2", "web:cookie:c2")}
    rejected = result.edges[~result.edges["is_accepted"]]
    assert set(rejected["rejected_reason"]) == {"shared_device:account_id"}
    assert set(rejected["record_uid_r"]) == {"web:cookie:c1"}
    assert set(result.ambiguous["identifier_value"]) == {"A1", "A2"}


def test_named_identifiers_link_and_keep_case():
    records = _records([{"record_uid": "a:1"}, {"record_uid": "b:1"}, {"record_uid": "c:1"}])
    identifiers = _identifiers(
        [
            ("a:1", "loyalty_id", " C001 "),
            ("b:1", "loyalty_id", "C001"),
            ("c:1", "loyalty_id", "c001"),
        ]
    )
    result = deterministic_edges(records, identifiers, SETTINGS)
    assert _accepted_pairs(result.edges, "same_loyalty_id") == {("a:1", "b:1")}


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("kitten", "sitting", 3),
        ("ryan", "ryna", 1),
        ("paul", "oul", 2),
        ("", "abc", 3),
        ("same", "same", 0),
    ],
)
def test_edit_distance(a: str, b: str, expected: int):
    assert edit_distance(a, b, limit=5) == expected


def test_name_compatibility_uses_birth_dates_for_loose_matches():
    mary = NameKey("mary", "mary", "smith", "1970-01-01")
    assert names_compatible(mary, NameKey("mary", "mary", "smith", "1990-01-01"))  # same name
    assert not names_compatible(mary, NameKey("mark", "mark", "smith", "1990-01-01"))
    assert names_compatible(mary, NameKey("mray", "mray", "smith", None))
    assert names_compatible(mary, NameKey("smith", "smith", "mary", None))
    assert (
        distinct_names(
            [
                mary,
                NameKey("robert", "bob", "smith", None),
                NameKey("robert", "robert", "smith", None),
            ]
        )
        == 2
    )


def test_model_edges_between_clearly_different_first_names_are_vetoed():
    records = _records(
        [
            {"record_uid": "a:1", "first_name": "Jesse", "last_name": "Wood"},
            {"record_uid": "a:2", "first_name": "Malik", "last_name": "Wood"},
            {"record_uid": "a:3", "first_name": "Jesse", "last_name": "Wood"},
            {"record_uid": "a:4", "first_name": "Jsese", "last_name": "Wood"},
            {"record_uid": "a:5", "last_name": "Wood"},
        ]
    )
    edges = pd.DataFrame(
        {
            "record_uid_l": ["a:1", "a:1", "a:1", "a:1"],
            "record_uid_r": ["a:2", "a:3", "a:4", "a:5"],
            "evidence_type": "model",
            "rule": "splink",
            "identifier_type": None,
            "match_probability": 0.999,
            "match_weight": 12.0,
            "details": "{}",
            "is_accepted": True,
            "rejected_reason": None,
        }
    )
    guarded = guard_model_edges(edges, records)
    assert guarded["is_accepted"].tolist() == [False, True, True, True]
    assert guarded["rejected_reason"].iloc[0] == "conflicting_names"
    assert first_names_conflict(
        NameKey("jennifer", None, "j", None), NameKey("patricia", None, "j", None)
    )


def test_a_short_name_missing_its_last_letter_is_not_a_conflict():
    """ "ky" / "kyo": too short for the typo rule, yet a dropped last letter is the most common
    way to mistype a short name; a different short name still conflicts."""
    assert not first_names_conflict(NameKey("ky", None, "k", None), NameKey("kyo", None, "k", None))
    assert first_names_conflict(NameKey("ky", None, "k", None), NameKey("kim", None, "k", None))
    assert first_names_conflict(NameKey("jo", None, "j", None), NameKey("joan", None, "j", None))


def _model_edge(left: str, right: str) -> dict:
    return {
        "record_uid_l": left,
        "record_uid_r": right,
        "evidence_type": "model",
        "rule": "splink",
        "identifier_type": None,
        "match_probability": 0.999,
        "match_weight": 12.0,
        "details": "{}",
        "is_accepted": True,
        "rejected_reason": None,
    }


def test_a_model_edge_with_nothing_personal_to_compare_is_refused_unless_an_identifier_says_so():
    """Same family name, phone and street, no first name or birth date on one side and
    different mailboxes: as likely a relative as the person. A near-equal person identifier
    (one transposition apart) is personal evidence and lets the edge stand."""
    from identity.blocking import PERSON_IDENTIFIERS_COLUMN

    household = {"last_name": "Baker", "phone": "2125550199", "street_address": "1 Elm St"}
    records = _records(
        [
            {"record_uid": "a:1", "first_name": "Brenda", "email": "brenda@x.org", **household},
            {"record_uid": "a:2", "email": "tom.baker@y.org", **household},
            {"record_uid": "a:3", "email": "b.baker@z.org", **household},
            {"record_uid": "a:4", "email": "brenda@x.org", **household},
        ]
    ).assign(
        **{
            PERSON_IDENTIFIERS_COLUMN: [
                "national_id:1234567",
                None,
                "national_id:1243567",
                None,
            ]
        }
    )
    edges = pd.DataFrame(
        [_model_edge("a:1", "a:2"), _model_edge("a:1", "a:3"), _model_edge("a:1", "a:4")]
    )
    guarded = guard_model_edges(edges, records)
    assert guarded["is_accepted"].tolist() == [False, True, True]
    assert guarded["rejected_reason"].iloc[0] == "no_personal_evidence"


def test_person_identifiers_leave_out_contacts_devices_and_shared_values():
    from identity.rules import person_identifiers

    records = _records(
        [
            {"record_uid": "a:1", "last_name": "Wood"},
            {"record_uid": "a:2", "last_name": "Wood"},
            {"record_uid": "a:3", "last_name": "Wood"},
        ]
    )
    identifiers = _identifiers(
        [
            ("a:1", "national_id", "987-65-4321"),
            ("a:1", "account_id", "A7"),
            ("a:1", "email", "w@x.org"),
            ("a:2", "cookie_id", "c-1"),
            ("a:3", "account_id", "A8"),
        ]
    )
    result = deterministic_edges(records, identifiers, SETTINGS)
    lists = person_identifiers(
        records, result.identifiers, SETTINGS.anonymous_identifier_types
    ).tolist()
    assert pd.isna(lists[1])  # a cookie is a browser's, not a person's
    entries = lists[0].split("\n")
    assert entries == sorted(entries) and len(entries) == 2
    assert {e.split(":", 1)[0] for e in entries} == {"account_id", "national_id"}
    assert lists[2].startswith("account_id:")
