"""`identityExplanation`: why two records are (not) one customer, for admin keys only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from api.explanation import NO_MODEL_LINK, explain_records
from identity.explain import explain_pair
from tests.support.api_harness import KEY_SCOPES, Api, Published
from tests.support.api_world import HOUSEHOLD

EXPLAIN = """query($a: RecordRef!, $b: RecordRef!) { identityExplanation(recordA: $a, recordB: $b) {
  isSameCustomer reasons summary
  recordA { recordUid source recordId customerId isSameCustomer }
  recordB { recordUid source recordId customerId isSameCustomer }
  path { record { recordUid } otherRecord { recordUid customerId }
    evidence { evidenceType rule identifierType matchProbability details isAccepted
      rejectedReason otherRecord { recordUid } } }
  refusedLinks { record { recordUid customerId } otherRecord { recordUid customerId
    isSameCustomer } evidence { rule isAccepted rejectedReason details } }
} }"""


def ref(uid: str) -> dict[str, str]:
    source, record_id = uid.split(":", 1)
    return {"source": source, "recordId": record_id}


def explain(api: Api, a: str, b: str, key: str = "admin") -> dict[str, Any]:
    body = api.gql(EXPLAIN, {"a": ref(a), "b": ref(b)}, key=key)
    assert "errors" not in body, body
    return body["data"]["identityExplanation"]


def audit_lines(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("pii-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_the_household_explains_the_guard_that_refused_the_link(api: Api) -> None:
    a, b = (f"crm:{i}" for i in HOUSEHOLD)
    answer = explain(api, a, b)
    assert answer["isSameCustomer"] is False
    assert answer["path"] == []
    assert answer["recordA"]["customerId"] == "cus_0005"
    assert answer["recordB"] == {
        "recordUid": b,
        "source": "crm",
        "recordId": "6",
        "customerId": "cus_0006",
        "isSameCustomer": False,
    }
    assert answer["refusedLinks"] == [
        {
            "record": {"recordUid": a, "customerId": "cus_0005"},
            "otherRecord": {"recordUid": b, "customerId": "cus_0006", "isSameCustomer": False},
            "evidence": [
                {
                    "rule": "same_phone",
                    "isAccepted": False,
                    "rejectedReason": "max_distinct_names_per_phone",
                    "details": {"value": "+1******0005"},
                }
            ],
        }
    ]
    assert answer["reasons"] == [
        "a direct link (same_phone) between the two records was refused by the guard "
        "'max_distinct_names_per_phone'.",
        NO_MODEL_LINK,
    ]
    assert answer["summary"].startswith("different customers (cus_0005, cus_0006): a direct")


def test_one_customer_shows_the_path_through_the_shop_account(api: Api) -> None:
    answer = explain(api, "crm:1", "web_events:cookie:ck_1")
    assert answer["isSameCustomer"] is True
    assert answer["recordB"]["isSameCustomer"] is True
    assert answer["refusedLinks"] == [] and answer["reasons"] == []
    steps = [
        (
            s["record"]["recordUid"],
            s["otherRecord"]["recordUid"],
            [e["rule"] for e in s["evidence"]],
        )
        for s in answer["path"]
    ]
    assert steps == [
        ("crm:1", "shop_accounts:ACC-1", ["same_email"]),
        ("shop_accounts:ACC-1", "web_events:cookie:ck_1", ["same_account_id"]),
    ]
    first = answer["path"][0]["evidence"][0]
    assert first == {
        "evidenceType": "rule",
        "rule": "same_email",
        "identifierType": "email",
        "matchProbability": 1.0,
        "details": {"value": "p***@shopmail.com"},
        "isAccepted": True,
        "rejectedReason": None,
        "otherRecord": {"recordUid": "shop_accounts:ACC-1"},
    }
    assert answer["summary"] == (
        "one customer (cus_0001): crm -[same_email]- shop_accounts -[same_account_id]- web_events"
    )


def test_the_path_runs_from_record_a_to_record_b(api: Api) -> None:
    answer = explain(api, "web_events:cookie:ck_3", "email_events:email:person3@shopmail.com")
    hops = [(s["record"]["recordUid"], s["otherRecord"]["recordUid"]) for s in answer["path"]]
    assert hops == [
        ("web_events:cookie:ck_3", "shop_accounts:ACC-3"),
        ("shop_accounts:ACC-3", "crm:3"),
        ("crm:3", "email_events:email:person3@shopmail.com"),
    ]


def test_the_same_record_twice_is_one_customer_without_links(api: Api) -> None:
    answer = explain(api, "crm:7", "crm:7")
    assert answer["isSameCustomer"] is True and answer["path"] == []


def test_unrelated_customers_say_nothing_links_them(api: Api) -> None:
    answer = explain(api, "crm:1", "crm:2")
    assert answer["refusedLinks"] == []
    assert answer["reasons"] == ["no shared identifier links their customers.", NO_MODEL_LINK]


@pytest.mark.parametrize("key", sorted(set(KEY_SCOPES) - {"admin"}))
def test_only_admin_keys_may_ask(api: Api, key: str) -> None:
    body = api.gql(EXPLAIN, {"a": ref("crm:5"), "b": ref("crm:6")}, key=key)
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN", "requiredScope": "admin"}
    assert "cus_0005" not in json.dumps(body)


def test_an_unknown_record_is_not_found_without_echoing_its_id(api: Api) -> None:
    body = api.gql(EXPLAIN, {"a": ref("crm:1"), "b": ref("crm:secret-999")})
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"] == {"code": "NOT_FOUND"}
    assert error["message"].startswith("`recordB`: no identity record of source 'crm'")
    assert "secret-999" not in error["message"]
    body = api.gql(EXPLAIN, {"a": ref("nosuch:1"), "b": ref("crm:1")})
    assert body["errors"][0]["message"].startswith("`recordA`: no identity record")


def test_an_empty_reference_is_bad_input(api: Api) -> None:
    body = api.gql(EXPLAIN, {"a": {"source": " ", "recordId": "1"}, "b": ref("crm:1")})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "`recordA.source` must be 1 to" in body["errors"][0]["message"]


def test_each_record_is_audited_against_its_own_customer(api: Api, tmp_path: Path) -> None:
    explain(api, "crm:5", "crm:6")
    lines = {a["customer_id"]: a["fields"] for a in audit_lines(tmp_path / "audit")}
    assert lines == {
        "cus_0005": ["Evidence.details", "LinkedRecord.recordId", "LinkedRecord.recordUid"],
        "cus_0006": ["LinkedRecord.recordId", "LinkedRecord.recordUid"],
    }


def test_explanations_in_one_request_share_one_evidence_query(api: Api) -> None:
    query = """query($a: RecordRef!, $b: RecordRef!, $c: RecordRef!) {
      one: identityExplanation(recordA: $a, recordB: $b) { isSameCustomer }
      two: identityExplanation(recordA: $a, recordB: $c) { isSameCustomer } }"""
    db = api.state.snapshots.current.db
    before = db.query_count
    body = api.gql(query, {"a": ref("crm:5"), "b": ref("crm:6"), "c": ref("crm:7")})
    assert body["data"] == {"one": {"isSameCustomer": False}, "two": {"isSameCustomer": False}}
    assert db.query_count - before == 3  # records of each pair, then the evidence of all three


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("crm:1", "web_events:cookie:ck_1"),
        ("web_events:cookie:ck_3", "email_events:email:person3@shopmail.com"),
        ("crm:5", "crm:6"),
        ("crm:1", "crm:2"),
    ],
)
def test_the_api_agrees_with_identity_explain_pair(published: Published, a: str, b: str) -> None:
    """The API's path search over snapshot rows is identity's, over the lake's frames."""
    folder = published.world.identity_dir
    identity_map = pd.read_parquet(folder / "identity_map.parquet")
    edges = pd.read_parquet(folder / "identity_edges.parquet")
    expected = explain_pair(a, b, identity_map=identity_map, edges=edges)
    owner = identity_map.set_index("record_uid")["customer_id"]
    rows: dict[str, list[dict[str, Any]]] = {}
    for frame_row in edges.to_dict("records"):
        for mine, other in (("record_uid_l", "record_uid_r"), ("record_uid_r", "record_uid_l")):
            uid, other_uid = frame_row[mine], frame_row[other]
            rows.setdefault(owner[uid], []).append(
                {
                    **{k: v for k, v in frame_row.items() if not k.startswith("record_uid")},
                    "match_weight": None,
                    "record_uid": uid,
                    "other_record_uid": other_uid,
                    "customer_id": owner[uid],
                    "other_customer_id": owner[other_uid],
                    "other_source": other_uid.split(":", 1)[0],
                    "other_record_id": other_uid.split(":", 1)[1],
                }
            )

    def record(uid: str) -> dict[str, Any]:
        source, record_id = uid.split(":", 1)
        return {
            "record_uid": uid,
            "source": source,
            "record_id": record_id,
            "customer_id": owner[uid],
        }

    answer = explain_records(record(a), record(b), rows)
    assert answer.is_same_customer == expected.same_customer
    assert [link.evidence[0]["rule"] for link in answer.path] == [e.rule for e in expected.path]
    hops = [{link.record_uid, link.other_record_uid} for link in answer.path]
    assert hops == [{e.record_uid_l, e.record_uid_r} for e in expected.path]
    refused_by_identity = [r for r in expected.reasons if "rejected" in r]
    refused_by_api = [r for r in answer.reasons if "refused" in r or "removed" in r]
    assert len(refused_by_api) == len(refused_by_identity)


BLOCKED_IMPORTS = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pandas", "networkx"):
            raise ImportError(f"{name} imported at start-up")
        return None

sys.meta_path.insert(0, Block())
import api.explanation, api.graphql.types.explanation, api.graphql.schema
print("ok")
"""


def test_the_explanation_modules_import_neither_pandas_nor_networkx() -> None:
    """NetworkX is imported by the first explanation, pandas never: not at the API's start."""
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORTS], cwd=repo, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
