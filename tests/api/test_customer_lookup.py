"""Looking customers up by id and by every identifier type, normalized as identity does."""

from __future__ import annotations

import pytest

from tests.support.api_harness import Api
from tests.support.api_world import ALIAS, ANONYMOUS, EVENTFUL, HOUSEHOLD, customer_id, email, phone

LOOKUP = """
query Lookup($type: String!, $value: String!) {
  customer(lookup: {type: $type, value: $value}) { customerId isAnonymous }
}
"""


def lookup(api: Api, type_: str, value: str, key: str = "profile") -> dict | None:
    body = api.gql(LOOKUP, {"type": type_, "value": value}, key=key)
    assert "errors" not in body, body
    return body["data"]["customer"]


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("email", "person7@shopmail.com", 7),
        ("email", "  Person7@ShopMail.COM ", 7),  # trimmed and lowercased like identity
        ("email", "mailto:person8@shopmail.com", 8),
        ("phone", "+1 (415) 555-0012", 12),
        ("phone", "4155550012", 12),  # national format, default region US
        ("phone", "001 415 555 0012", 12),  # international prefix 00
        ("account_id", "ACC-42", 42),
        ("account_id", "  ACC-42  ", 42),
        ("loyalty_id", "L000042", 42),
        ("cookie_id", "ck_299", ANONYMOUS),
        ("alias_customer_id", ALIAS[0], 1),
        ("alias_customer_id", ALIAS[1], 1),  # an alias of an alias: the chain is followed
        ("EMAIL", "person3@shopmail.com", 3),  # type names are case-insensitive
    ],
)
def test_lookup_by_each_identifier_type(api: Api, type_: str, value: str, expected: int) -> None:
    found = lookup(api, type_, value)
    assert found is not None
    assert found["customerId"] == customer_id(expected)


def test_phone_in_two_formats_finds_the_same_person(api: Api) -> None:
    first = lookup(api, "phone", "+1 (415) 555-0123")
    second = lookup(api, "phone", "415.555.0123")
    assert first == second == {"customerId": customer_id(123), "isAnonymous": False}


def test_unknown_identifier_returns_null_not_an_error(api: Api) -> None:
    assert lookup(api, "email", "nobody@shopmail.com") is None
    assert lookup(api, "account_id", "ACC-999999") is None
    assert lookup(api, "phone", "+14155559999") is None


def test_identifier_values_keep_case_like_identity(api: Api) -> None:
    # identity trims named identifiers but keeps their case, so 'acc-42' is another id
    assert lookup(api, "account_id", "acc-42") is None


def test_shared_phone_finds_the_customer_with_most_records(api: Api) -> None:
    # Customers 5 and 6 share a household phone; 5 has more records carrying it.
    found = lookup(api, "phone", phone(HOUSEHOLD[1]))
    assert found == {"customerId": customer_id(HOUSEHOLD[0]), "isAnonymous": False}


def test_anonymous_customer_is_flagged(api: Api) -> None:
    assert lookup(api, "cookie_id", f"ck_{ANONYMOUS}") == {
        "customerId": customer_id(ANONYMOUS),
        "isAnonymous": True,
    }


def test_customer_by_id_and_by_retired_id(api: Api) -> None:
    query = "query($id: ID!) { customer(id: $id) { customerId } }"
    assert api.gql(query, {"id": customer_id(9)})["data"]["customer"] == {
        "customerId": customer_id(9)
    }
    assert api.gql(query, {"id": ALIAS[1]})["data"]["customer"] == {"customerId": customer_id(1)}
    assert api.gql(query, {"id": "cus_unknown"})["data"]["customer"] is None


def test_customer_profile_fields(api: Api) -> None:
    body = api.gql(
        """query($v: String!) { customer(lookup: {type: "email", value: $v}) {
            customerId email phone firstName lastName birthDate city region country
            consents { channel isGranted source }
            provenance { attribute source updatedAt }
            identifiers(types: ["account_id", "loyalty_id"]) { type value source }
            traits { orderCount lifetimeRevenue orderCount30d favouriteCategory asOfDate }
            segments { name enteredAt segment { owner size } }
        } }""",
        {"v": email(20)},
        key="admin",
    )
    customer = body["data"]["customer"]
    assert customer["email"] == email(20)
    assert customer["phone"] == phone(20)
    assert (customer["firstName"], customer["lastName"]) == ("First20", "Last20")
    assert customer["birthDate"] == "2000-09-21"
    assert (customer["region"], customer["country"]) == ("CA", "US")
    assert customer["consents"] == [
        {"channel": "email", "isGranted": False, "source": "crm"},  # 20 % 4 == 0
        {"channel": "sms", "isGranted": True, "source": None},  # 20 % 5 == 0
        {"channel": "push", "isGranted": False, "source": None},
    ]
    assert {
        "attribute": "email",
        "source": "shop_accounts",
        "updatedAt": "2025-05-31T23:00:00.000000Z",
    } in customer["provenance"]
    assert customer["identifiers"] == [
        {"type": "account_id", "value": "ACC-20", "source": "shop_accounts"},
        {"type": "loyalty_id", "value": "L000020", "source": "crm"},
    ]
    assert customer["traits"] == {
        "orderCount": 20 % 7,
        "lifetimeRevenue": 200.0,
        "orderCount30d": 0,
        "favouriteCategory": "garden",
        "asOfDate": "2025-06-30",
    }
    # 20 is in frequent_buyers (even) and high_value (multiple of 10), not browsers
    assert [s["name"] for s in customer["segments"]] == ["frequent_buyers", "high_value"]
    assert customer["segments"][1]["segment"] == {"owner": "finance", "size": 30}
    assert all(s["enteredAt"].endswith("Z") for s in customer["segments"])


def test_events_are_paginated_newest_first(api: Api) -> None:
    query = """query($id: ID!, $after: String) { customer(id: $id) {
        events(first: 10, after: $after) {
            edges { cursor node { eventId occurredAt channel } }
            pageInfo { hasNextPage endCursor } } } }"""
    seen: list[tuple[str, str]] = []
    after = None
    pages = 0
    while True:
        events = api.gql(query, {"id": customer_id(EVENTFUL), "after": after})["data"]["customer"][
            "events"
        ]
        pages += 1
        seen += [(e["node"]["occurredAt"], e["node"]["eventId"]) for e in events["edges"]]
        if not events["pageInfo"]["hasNextPage"]:
            break
        after = events["pageInfo"]["endCursor"]
    assert pages == 5
    assert len(seen) == len(set(seen)) == 45
    assert seen == sorted(seen, reverse=True)


def test_identity_explains_the_records(api: Api) -> None:
    body = api.gql(
        """{ customer(id: "cus_0005") { identity {
            records { source recordId evidence { rule isAccepted rejectedReason details
                otherRecord { source recordId isSameCustomer customerId } } }
        } } }""",
        key="pii",
    )
    records = {r["source"]: r for r in body["data"]["customer"]["identity"]["records"]}
    assert set(records) == {"crm", "shop_accounts", "web_events"}
    crm = records["crm"]["evidence"]
    accepted = [e for e in crm if e["isAccepted"]]
    refused = [e for e in crm if not e["isAccepted"]]
    assert [
        (e["rule"], e["otherRecord"]["source"], e["otherRecord"]["isSameCustomer"])
        for e in accepted
    ] == [("same_email", "shop_accounts", True)]
    assert accepted[0]["details"] == {"value": "p***@shopmail.com"}
    assert [(e["rule"], e["rejectedReason"], e["otherRecord"]["customerId"]) for e in refused] == [
        ("same_phone", "max_distinct_names_per_phone", customer_id(6))
    ]


def test_identity_history_includes_absorbed_ids(api: Api) -> None:
    body = api.gql(
        '{ customer(id: "cus_0001") { identity { history { eventType customerId '
        "relatedCustomerId cause } } } }"
    )
    history = body["data"]["customer"]["identity"]["history"]
    assert [(h["customerId"], h["relatedCustomerId"]) for h in history] == [
        (ALIAS[0], ALIAS[1]),
        (customer_id(1), ALIAS[0]),
    ]
