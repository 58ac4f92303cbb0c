from __future__ import annotations

import pytest

from identity import RealtimeResolver, write_resolution


@pytest.fixture(scope="module")
def state_folder(resolved_people, tmp_path_factory):
    folder = tmp_path_factory.mktemp("identity")
    write_resolution(resolved_people, folder)
    return folder


@pytest.fixture
def resolver(state_folder):
    resolver = RealtimeResolver.load(state_folder)
    yield resolver
    resolver.close()


def _customer_of(resolution, uid: str) -> str:
    return resolution.identity_map.set_index("record_uid").loc[uid, "customer_id"]


def _record(resolution, uid: str) -> dict:
    return resolution.records.set_index("record_uid").loc[uid].to_dict()


def test_known_email_resolves_deterministically(resolver, resolved_people):
    row = resolved_people.records.dropna(subset=["email", "first_name"]).iloc[0]
    result = resolver.resolve_one(
        {"email": row["email"].upper(), "first_name": row["first_name"], "source": "api"}
    )
    assert result.customer_id == _customer_of(resolved_people, row["record_uid"])
    assert not result.is_new
    assert result.evidence[0]["rule"] == "same_email"


def test_named_identifier_wins(resolver, resolved_people, people_world):
    _, identifiers, _ = people_world
    loyalty = identifiers[identifiers["identifier_type"] == "loyalty_id"].iloc[3]
    result = resolver.resolve_one({"loyalty_id": loyalty["identifier_value"]})
    assert result.customer_id == _customer_of(resolved_people, loyalty["record_uid"])
    assert result.evidence[0]["rule"] == "same_loyalty_id"


def test_email_with_a_different_name_is_not_deterministic(resolver, resolved_people):
    row = resolved_people.records.dropna(subset=["email", "first_name", "birth_date"]).iloc[5]
    result = resolver.resolve_one(
        {"email": row["email"], "first_name": "Zebedee", "birth_date": "1901-01-01"}
    )
    assert result.customer_id != _customer_of(resolved_people, row["record_uid"])
    assert result.is_new


def test_weak_household_phone_is_not_used(resolver, resolved_people):
    weak = resolved_people.weak_values
    phone = weak.loc[weak["identifier_type"] == "phone", "identifier_value"].iloc[0]
    result = resolver.resolve_one({"phone": phone, "record_uid": "api:weak-phone"})
    assert result.is_new
    assert result.evidence == [{"type": "new", "reason": "no identifier or model match"}]


def test_model_matches_a_record_without_identifiers(resolver, resolved_people):
    # a known person's attributes with a typo, but no email/phone/identifier
    records = resolved_people.records.dropna(
        subset=["first_name", "last_name", "birth_date", "street_address", "postal_code"]
    )
    row = records.iloc[10]
    result = resolver.resolve_one(
        {
            "record_uid": "api:1",
            "first_name": row["first_name"].title(),
            "last_name": row["last_name"] + "e",
            "birth_date": row["birth_date"],
            "street_address": row["street_address"],
            "postal_code": row["postal_code"],
            "city": row["city"],
        }
    )
    assert result.customer_id == _customer_of(resolved_people, row["record_uid"])
    assert not result.is_new
    assert result.evidence[0]["type"] == "model"
    assert result.evidence[0]["match_probability"] >= 0.99


def test_unknown_record_gets_a_new_id_and_is_found_next_time(resolver):
    first = resolver.resolve_one(
        {"record_uid": "api:new", "email": "brand.new.person@example.org", "first_name": "Ida"}
    )
    assert first.is_new and first.customer_id.startswith("cus_")
    again = resolver.resolve_one({"email": "Brand.New.Person@example.org", "first_name": "Ida"})
    assert again.customer_id == first.customer_id and not again.is_new
    known = resolver.resolve_one({"record_uid": "api:new"})
    assert known.customer_id == first.customer_id


def test_junk_only_record_is_new(resolver):
    result = resolver.resolve_one({"email": "test@example.com", "phone": "0000000000"})
    assert result.is_new


def test_load_requires_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run identity resolution first"):
        RealtimeResolver.load(tmp_path)


def test_alias_ids_resolve_to_the_current_customer(resolver, resolved_people):
    some_id = resolved_people.identity_map["customer_id"].iloc[0]
    assert resolver.customer_of(some_id) == some_id
