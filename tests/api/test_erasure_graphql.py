"""``requestErasure`` and ``erasureRequest``: admin only, the person recorded by keyed hashes
and listed at once (the intake drops them), status per store, unknown people hold nothing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dagster_project.lib.publish import publish_snapshot
from privacy.keys import load_keyring
from privacy.suppression import CUSTOMER_ID_TYPE, PrivacyStore
from tests.support.api_harness import Api, Published
from tests.support.api_world import customer_id, email

REQUEST = """mutation($c: CustomerRef!) { requestErasure(customer: $c) {
  id status namedBy requestedBy customerIds identifiers message stores { store status } } }"""
STATUS = """query($id: ID!) { erasureRequest(id: $id) { id status stores { store status } } }"""
PERSON = 5


def test_an_admin_request_lists_the_person_by_keyed_hashes(
    make_api: Callable[..., Api], fresh_world: Published
) -> None:
    publish_snapshot(fresh_world.world.warehouse, fresh_world.world.serving_dir)
    api = make_api(fresh_world)
    home: Path = fresh_world.home
    answer = api.gql(REQUEST, {"c": {"lookup": {"type": "email", "value": email(PERSON).upper()}}})
    assert "errors" not in answer, answer
    request = answer["data"]["requestErasure"]
    assert request["status"] == "pending"
    assert request["namedBy"] == "email"
    assert request["requestedBy"] == "api:admin"
    assert request["stores"] == []  # carried out by the pipeline, not the API

    keyring = load_keyring(home, os.environ["CDP_PRIVACY_KEY"])
    store = PrivacyStore.at(home)
    listed = store.suppression(keyring, str(request["id"]))
    assert listed.matches("email", email(PERSON))
    assert listed.matches(CUSTOMER_ID_TYPE, customer_id(PERSON))
    assert not listed.matches("email", email(PERSON + 1))
    assert email(PERSON).encode() not in (home / "privacy" / "privacy.sqlite").read_bytes()

    status = api.gql(STATUS, {"id": request["id"]})["data"]["erasureRequest"]
    assert status == {"id": request["id"], "status": "pending", "stores": []}
    assert api.gql(STATUS, {"id": "er_unknown"})["data"]["erasureRequest"] is None


def test_unknown_people_hold_nothing_and_bad_input_is_a_clear_error(
    make_api: Callable[..., Api], fresh_world: Published
) -> None:
    publish_snapshot(fresh_world.world.warehouse, fresh_world.world.serving_dir)
    api = make_api(fresh_world)
    unknown = api.gql(
        REQUEST, {"c": {"lookup": {"type": "email", "value": "nobody.here@example.org"}}}
    )["data"]["requestErasure"]
    assert unknown["status"] == "nothing_held"
    assert "nothing held" in unknown["message"]
    assert not PrivacyStore.at(fresh_world.home).hashes()  # nothing listed

    bad = api.gql(REQUEST, {"c": {"lookup": {"type": "email", "value": "not an address"}}})
    assert bad["data"] is None
    assert "not a valid email" in bad["errors"][0]["message"]
    both = api.gql(REQUEST, {"c": {"id": "x", "lookup": {"type": "email", "value": "a@b.co"}}})
    assert "exactly one" in both["errors"][0]["message"]


def test_only_admin_keys_may_ask(make_api: Callable[..., Api], fresh_world: Published) -> None:
    publish_snapshot(fresh_world.world.warehouse, fresh_world.world.serving_dir)
    api = make_api(fresh_world)
    for key in ("web", "pii"):
        if key not in api.keys:
            continue
        answer = api.gql(REQUEST, {"c": {"id": customer_id(PERSON)}}, key=key)
        assert answer["data"] is None
        assert "admin" in answer["errors"][0]["message"]
    assert not PrivacyStore.at(fresh_world.home).hashes()
