"""API keys and scopes, PII masking and its audit log, introspection and the IDE."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from api.security import AuditLog, create_key, hash_key, load_keys_file
from dagster_project.lib.publish import publish_snapshot
from tests.support.api_harness import Api, Published
from tests.support.api_world import EMAIL_RECORD, customer_id, email, phone

PROFILE = """query($v: String!) { customer(lookup: {type: "email", value: $v}) {
    customerId email phone firstName lastName fullName birthDate streetAddress postalCode city
    region country maskedFields
    identifiers(types: ["email", "phone", "account_id"]) { type value }
    identity { records { source recordUid recordId } }
} }"""
PERSONAL_FIELDS = [
    "email",
    "phone",
    "firstName",
    "lastName",
    "fullName",
    "birthDate",
    "streetAddress",
    "postalCode",
    "city",
]


def audit_lines(folder: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("pii-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_pii_is_masked_without_pii_read_and_nothing_is_audited(api: Api, tmp_path: Path) -> None:
    customer = api.gql(PROFILE, {"v": email(EMAIL_RECORD)}, key="profile")["data"]["customer"]
    for field in PERSONAL_FIELDS:
        assert customer[field] == "***", field
    assert (customer["region"], customer["country"]) == ("CA", "US")  # not personal data
    assert customer["maskedFields"] == PERSONAL_FIELDS
    sealer = api.state.sealer
    # identifiers are opaque tokens: stable handles that reveal nothing
    assert {i["type"]: i["value"] for i in customer["identifiers"]} == {
        "email": sealer.token(email(EMAIL_RECORD)),
        "phone": sealer.token(phone(EMAIL_RECORD)),
        "account_id": sealer.token(f"ACC-{EMAIL_RECORD}"),
    }
    records = {r["source"]: r for r in customer["identity"]["records"]}
    mail = records["email_events"]
    assert mail["recordId"] == sealer.token(f"email:{email(EMAIL_RECORD)}")
    assert mail["recordUid"] == sealer.token(f"email_events:email:{email(EMAIL_RECORD)}")
    assert records["crm"]["recordId"].startswith("tok_")
    text = json.dumps(customer)
    assert email(EMAIL_RECORD) not in text
    assert f"ACC-{EMAIL_RECORD}" not in text
    assert audit_lines(tmp_path / "audit") == []


def test_the_same_value_has_the_same_token_everywhere(api: Api) -> None:
    query = """query($v: String!) { customer(lookup: {type: "email", value: $v}) {
        identity { records { recordUid evidence { otherRecord { recordUid } } } } } }"""
    records = api.gql(query, {"v": email(EMAIL_RECORD)}, key="profile")["data"]["customer"][
        "identity"
    ]["records"]
    uids = {r["recordUid"] for r in records}
    linked = {e["otherRecord"]["recordUid"] for r in records for e in r["evidence"]}
    assert linked and linked <= uids  # the evidence points at records by the same handle


def test_pii_read_returns_values_and_writes_the_audit_log(api: Api, tmp_path: Path) -> None:
    before = time.time()
    customer = api.gql(PROFILE, {"v": email(EMAIL_RECORD)}, key="pii")["data"]["customer"]
    assert customer["email"] == email(EMAIL_RECORD)
    assert customer["phone"] == phone(EMAIL_RECORD)
    assert customer["maskedFields"] == []
    records = {r["source"]: r for r in customer["identity"]["records"]}
    assert records["email_events"]["recordId"] == f"email:{email(EMAIL_RECORD)}"
    assert records["crm"]["recordId"] == str(EMAIL_RECORD)
    lines = audit_lines(tmp_path / "audit")
    assert len(lines) == 1
    entry = lines[0]
    assert entry["key"] == "pii"
    assert entry["customer_id"] == customer_id(EMAIL_RECORD)
    assert entry["fields"] == sorted(
        [f"Customer.{f}" for f in PERSONAL_FIELDS]
        + ["Identifier.value", "IdentityRecord.recordId", "IdentityRecord.recordUid"]
    )
    assert entry["snapshot_id"] == api.state.snapshots.current.id
    from datetime import datetime

    assert datetime.fromisoformat(entry["time"]).timestamp() >= before - 1


def test_audit_has_one_line_per_customer_read(api: Api, tmp_path: Path) -> None:
    api.gql(
        '{ segment(name: "high_value") { members(first: 3) { edges { node { email } } } } }',
        key="admin",
    )
    lines = audit_lines(tmp_path / "audit")
    assert [line["customer_id"] for line in lines] == [customer_id(i) for i in (0, 10, 20)]
    assert all(line["key"] == "admin" and line["fields"] == ["Customer.email"] for line in lines)
    assert all(line["operation"] == "segment" for line in lines)


def test_missing_and_invalid_keys_get_401(api: Api) -> None:
    query = '{ customer(id: "cus_0001") { customerId } }'
    missing = api.post(query, key=None)
    assert missing.status_code == 401
    assert "missing API key" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    invalid = api.post(query, key=None, headers={"Authorization": "Bearer cdp_not-a-real-key"})
    assert invalid.status_code == 401
    assert invalid.json() == {"detail": "invalid API key"}
    wrong_scheme = api.post(
        query, key=None, headers={"Authorization": f"Basic {api.keys['admin']}"}
    )
    assert wrong_scheme.status_code == 401
    via_header = api.post(query, key=None, headers={"X-API-Key": api.keys["profile"]})
    assert via_header.status_code == 200
    assert via_header.json()["data"]["customer"] == {"customerId": "cus_0001"}


@pytest.mark.parametrize(
    ("key", "query", "scope"),
    [
        ("segments", '{ customer(id: "cus_0001") { customerId } }', "profile:read"),
        ("profile", "{ segments { name } }", "segments:read"),
        ("profile", '{ segment(name: "high_value") { name } }', "segments:read"),
        (
            "segments",
            '{ segment(name: "high_value") { members(first: 2) { edges { node '
            "{ customerId } } } } }",
            "profile:read",
        ),
        (
            "segments",
            '{ customers(filter: {segment: "high_value"}) { edges { cursor } } }',
            "profile:read",
        ),
    ],
)
def test_missing_scope_is_a_graphql_error_naming_it(
    api: Api, key: str, query: str, scope: str
) -> None:
    body = api.gql(query, key=key)
    assert body["errors"], body
    error = body["errors"][0]
    assert f"'{scope}'" in error["message"]
    assert error["extensions"] == {"code": "FORBIDDEN", "requiredScope": scope}


def test_segments_key_exports_an_audience_without_profiles(api: Api) -> None:
    body = api.gql(
        '{ segment(name: "high_value") { members(first: 2) { edges { customerId } } } }',
        key="segments",
    )
    assert "errors" not in body
    assert [e["customerId"] for e in body["data"]["segment"]["members"]["edges"]] == [
        "cus_0000",
        "cus_0010",
    ]


def test_admin_implies_every_scope(api: Api) -> None:
    body = api.gql('{ segments { name } customer(id: "cus_0002") { email } }', key="admin")
    assert "errors" not in body
    assert body["data"]["customer"]["email"] == email(2)


def test_keys_are_stored_hashed(published: Published) -> None:
    text = (published.home / "api_keys.yml").read_text()
    for secret in published.keys.values():
        assert secret not in text
        assert hash_key(secret) in text
    names = {
        k.name: sorted(s.value for s in k.scopes)
        for k in load_keys_file(published.home / "api_keys.yml").keys
    }
    assert names["pii"] == ["pii:read", "profile:read"]


def test_new_and_disabled_keys_apply_without_restart(
    make_api: Callable[..., Api], fresh_world: Published
) -> None:
    world = fresh_world.world
    publish_snapshot(world.warehouse, world.serving_dir)
    api = make_api(fresh_world)
    keys_file = fresh_world.home / "api_keys.yml"
    late = create_key(keys_file, "late", ["profile:read"])
    query = '{ customer(id: "cus_0001") { customerId } }'
    deadline = time.monotonic() + 5
    while api.post(query, key=None, headers={"X-API-Key": late}).status_code != 200:
        assert time.monotonic() < deadline, "new key not picked up"
        time.sleep(0.05)
    raw = yaml.safe_load(keys_file.read_text())
    for entry in raw["keys"]:
        if entry["name"] == "late":
            entry["is_disabled"] = True
    keys_file.write_text(yaml.safe_dump(raw))
    deadline = time.monotonic() + 5
    while api.post(query, key=None, headers={"X-API-Key": late}).status_code != 401:
        assert time.monotonic() < deadline, "disabled key still accepted"
        time.sleep(0.05)


def test_invalid_keys_file_fails_at_start_naming_the_problem(
    make_api: Callable[..., Api], fresh_world: Published
) -> None:
    (fresh_world.home / "api_keys.yml").write_text(
        "keys:\n  - name: web\n    sha256: abc\n    scopes: [profile:read, everything]\n"
    )
    with pytest.raises(
        ValueError, match=r"(?s)api_keys.yml.*keys.0.sha256.*keys.0.scopes.1"
    ) as exc:
        make_api(fresh_world)
    assert "64-character hex" in str(exc.value)


def test_introspection_and_ide_are_off_by_default(api: Api) -> None:
    body = api.gql("{ __schema { types { name } } }")
    assert body["data"] is None
    assert "introspection" in body["errors"][0]["message"].lower()
    suggestion = api.gql('{ customer(id: "cus_0001") { emial } }')
    assert "Did you mean" not in suggestion["errors"][0]["message"]
    assert api.client.get("/graphql", headers={"Accept": "text/html"}).status_code in (404, 405)


def test_introspection_and_ide_can_be_enabled(
    make_api: Callable[..., Api], published: Published
) -> None:
    api = make_api(published, api_enable_introspection=True, api_enable_graphiql=True)
    body = api.gql("{ __schema { queryType { name } } }")
    assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    page = api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


def test_free_text_is_personal_data(api: Api, tmp_path: Path) -> None:
    query = """{ customer(id: "cus_0000") { events(first: 3) { edges { node {
        eventId detail channel } } } } }"""
    masked = api.gql(query, key="profile")["data"]["customer"]["events"]["edges"]
    assert [e["node"]["detail"] for e in masked] == ["***", "***", "***"]
    assert all(e["node"]["eventId"].startswith("tok_") for e in masked)
    assert audit_lines(tmp_path / "audit") == []
    revealed = api.gql(query, key="pii")["data"]["customer"]["events"]["edges"]
    assert revealed[0]["node"]["detail"] in ("/home", "1 line(s)")
    assert [(a["customer_id"], a["fields"]) for a in audit_lines(tmp_path / "audit")] == [
        ("cus_0000", ["Event.detail", "Event.eventId"])
    ]


def test_evidence_details_keep_only_numbers_and_levels_when_masked(api: Api) -> None:
    query = """{ customer(id: "cus_0005") { identity { records { evidence {
        rule details identifierType } } } } }"""
    records = api.gql(query, key="profile")["data"]["customer"]["identity"]["records"]
    details = [e["details"] for r in records for e in r["evidence"] if e["details"]]
    assert details and all(d == {"value": "***"} for d in details)


def test_another_customers_record_is_audited_against_that_customer(
    api: Api, tmp_path: Path
) -> None:
    # customers 5 and 6 share a phone; the guard refused the link, which 5's evidence shows
    query = """{ customer(id: "cus_0005") { identity { records { recordId evidence {
        isAccepted otherRecord { recordId customerId } } } } } }"""
    records = api.gql(query, key="pii")["data"]["customer"]["identity"]["records"]
    others = [e["otherRecord"] for r in records for e in r["evidence"] if not e["isAccepted"]]
    assert others == [{"recordId": "6", "customerId": "cus_0006"}]
    lines = {a["customer_id"]: a["fields"] for a in audit_lines(tmp_path / "audit")}
    assert lines["cus_0006"] == ["LinkedRecord.recordId"]
    assert "LinkedRecord.recordId" in lines["cus_0005"]  # its own linked records too


@pytest.mark.parametrize(
    "query",
    [
        '{ customer(id: "cus_0000") { segments { name } } }',
        '{ customer(id: "cus_0000") { segments { segment { members(first: 1) '
        "{ totalCount } } } } }",
        '{ customers(filter: {segment: "high_value"}) { edges { node { customerId } } } }',
    ],
)
def test_segment_membership_needs_segments_read(api: Api, query: str) -> None:
    body = api.gql(query, key="profile")
    error = body["errors"][0]
    assert error["extensions"] == {"code": "FORBIDDEN", "requiredScope": "segments:read"}
    assert "high_value" not in json.dumps(body).replace(query, "")
    assert "errors" not in api.gql(query, key="web")


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ('{ customer(idd: "cus_0001") { customerId } }', None),
        ("query($f: CustomerFiltr!) { customers(filter: $f) { edges { cursor } } }", None),
        (
            "query($f: CustomerFilter!) { customers(filter: $f) { edges { cursor } } }",
            {"f": {"segmnt": "high_value"}},
        ),
        ('{ customers(filter: {segmnt: "x"}) { edges { cursor } } }', None),
    ],
)
def test_no_suggestions_name_schema_members_while_introspection_is_off(
    api: Api, query: str, variables: dict | None
) -> None:
    body = api.gql(query, variables)
    assert body["errors"]
    assert "Did you mean" not in json.dumps(body)


def test_metrics_need_a_key_with_metrics_read(
    api: Api, make_api: Callable[..., Api], published: Published
) -> None:
    assert api.client.get("/metrics").status_code == 401
    forbidden = api.client.get("/metrics", headers=api.auth("profile"))
    assert forbidden.status_code == 403
    assert "metrics:read" in forbidden.json()["detail"]
    assert "cdp_api_http_requests_total" in api.metrics_text()
    public = make_api(published, api_metrics_public=True)
    assert public.client.get("/metrics").status_code == 200


def test_no_response_may_be_cached(api: Api) -> None:
    responses = [
        api.post('{ customer(id: "cus_0001") { email } }', key="pii"),
        api.post("{ segments { name } }", key=None),
        api.client.get("/health"),
        api.client.get("/metrics", headers=api.auth("admin")),
    ]
    assert [r.headers.get("cache-control") for r in responses] == ["no-store"] * 4


@pytest.mark.parametrize(
    ("given", "kept"),
    [("req-42", True), ("x" * 20_000, False), ("a b\x01c", False), ("../../etc", False)],
)
def test_client_request_ids_are_kept_only_when_they_look_like_ids(
    api: Api, given: str, kept: bool
) -> None:
    response = api.post("{ segments { name } }", headers={"X-Request-Id": given})
    returned = response.headers["x-request-id"]
    assert (returned == given) is kept
    assert len(returned) <= 64


def test_the_audit_log_follows_a_file_rewritten_under_it(tmp_path: Path) -> None:
    """An erasure replaces the day's file (a new file renamed over it): the next lines must
    land in the new file, not in the unlinked one the writer still held open."""
    log = AuditLog(tmp_path / "audit")
    log.write([{"customer_id": "c1"}])
    (path,) = (tmp_path / "audit").glob("pii-*.jsonl")
    rewritten = path.with_suffix(".tmp")
    rewritten.write_bytes(b'{"customer_id": "kh1:abc"}\n')
    os.replace(rewritten, path)
    log.write([{"customer_id": "c2"}])
    log.close()
    lines = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert [line["customer_id"] for line in lines] == ["kh1:abc", "c2"]
