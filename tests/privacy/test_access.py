"""``privacy.access.export_person`` over a published world, a lake, an event log, live state and
a decision log: every category holds the person's data, and only theirs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from decisions.store import DecisionStore, default_store_path
from events.log import SqliteEventLog
from events.processor import StreamProcessor, log_path
from events.types import EventKind, FailedEvent, ProductLine
from privacy.access import AccessError, PersonRef, export_person, summary, to_json
from tests.support.api_world import ALIAS, customer_id, email
from tests.support.stream_world import StreamWorld, event, make_world

PERSON = 3  # api_world: email person3@shopmail.com, account ACC-3, cookie ck_3, crm record "3"
OTHER = 7


def _write_lake(home: Path) -> None:
    """Two crm parts (the person's record updated once), and a shop_accounts part."""
    folder = home / "lake" / "crm"
    folder.mkdir(parents=True)
    for part, (first, city) in enumerate((("Ann", "Oakland"), ("Anne", "Berkeley"))):
        pq.write_table(
            pa.table(
                {
                    "record_id": [str(PERSON), str(OTHER)],
                    "first_name": [first, "Other"],
                    "email": [email(PERSON), email(OTHER)],
                    "city": [city, "Fresno"],
                }
            ),
            folder / f"part-{part}.parquet",
        )
    (home / "lake" / "shop_accounts").mkdir(parents=True)
    pq.write_table(
        pa.table({"record_id": [f"ACC-{PERSON}", f"ACC-{OTHER}"], "loyalty": ["gold", "none"]}),
        home / "lake" / "shop_accounts" / "part-0.parquet",
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[StreamWorld]:
    built = make_world(tmp_path / "home")
    _write_lake(built.home)
    now = datetime.now(UTC)
    with SqliteEventLog(log_path(built.home)) as log:
        log.append(
            [
                # the person signs in on their cookie, views a product whose price then drops
                event(EventKind.LOGIN, anonymous_id=f"ck_{PERSON}", user_id=f"ACC-{PERSON}"),
                event(
                    EventKind.PRODUCT_VIEW,
                    anonymous_id=f"ck_{PERSON}",
                    products=[ProductLine("P1")],
                    at=now - timedelta(minutes=5),
                ),
                # the same person, by an email written differently (normalization)
                event(
                    EventKind.IDENTIFY,
                    identifiers={"email": f"  Person{PERSON}@ShopMail.COM "},
                    at=now - timedelta(minutes=4),
                ),
                # someone else
                event(
                    EventKind.PRODUCT_VIEW, anonymous_id=f"ck_{OTHER}", products=[ProductLine("P2")]
                ),
                event(EventKind.PRICE_CHANGE, products=[ProductLine("P1", price=50.0)]),
            ],
            [
                FailedEvent(
                    source="site",
                    reason="invalid_json",
                    detail="bad json",
                    received_at=now,
                    body=f'{{"email": "{email(PERSON)}", '.encode(),
                ),
                FailedEvent(
                    source="site",
                    reason="invalid_json",
                    detail="bad json",
                    received_at=now,
                    body=f'{{"email": "{email(OTHER)}", '.encode(),
                ),
            ],
        )
        processor = StreamProcessor.from_home(built.home, log=log)
        try:
            while processor.process_batch():
                pass
        finally:
            processor.close()
    with DecisionStore.open(default_store_path(built.home)) as store:
        store.record_consent(customer_id(PERSON), "sms", False, now, "preference_center")
        store.record_consent(customer_id(OTHER), "sms", False, now, "preference_center")
    yield built


def _export(home: Path, person: PersonRef) -> dict[str, Any]:
    document = export_person(home, person)
    return orjson.loads(to_json(document))  # what the file holds


def test_export_by_email_holds_every_category_of_that_person_only(world: StreamWorld) -> None:
    steps: list[str] = []
    document = export_person(
        world.home,
        PersonRef(identifier_type="Email", value=f" PERSON{PERSON}@shopmail.com"),
        progress=lambda step, _done, _total: steps.append(step),
    )
    assert {"snapshot", "lake records", "event log", "live state", "decision log"} <= set(steps)
    exported = orjson.loads(to_json(document))
    assert exported["found"] is True
    assert exported["asked"] == {"identifier_type": "email", "normalized_value": email(PERSON)}
    assert exported["customer_ids"][0] == customer_id(PERSON)
    # profile: the golden record and derived tables
    golden = exported["profile"]["golden_record"]
    assert golden["customer_id"] == customer_id(PERSON) and golden["email"] == email(PERSON)
    assert golden["first_name"] == f"First{PERSON}"
    assert exported["profile"]["customer_traits"][0]["customer_id"] == customer_id(PERSON)
    assert {r["product_id"] for r in exported["profile"]["customer_recommendations"]} == {
        "P3",
        "P4",
    }
    # identifiers
    assert {f"email:{email(PERSON)}", f"account_id:ACC-{PERSON}", f"cookie_id:ck_{PERSON}"} <= set(
        exported["identifiers"]["all"]
    )
    # records with their sources and raw lake rows (both versions of the crm record)
    records = {r["source"]: r for r in exported["records"]["identity_records"]}
    assert {"crm", "shop_accounts", "web_events"} <= set(records)
    assert [row["first_name"] for row in records["crm"]["lake_rows"]] == ["Ann", "Anne"]
    assert records["shop_accounts"]["lake_rows"] == [
        {
            "record_id": f"ACC-{PERSON}",
            "loyalty": "gold",
            "lake_file": "lake/shop_accounts/part-0.parquet",
        }
    ]
    assert exported["records"]["identity_evidence"]
    # events: the snapshot's, the log's (cookie, account and the differently spelled email),
    # the live profile
    assert exported["events"]["snapshot_events"]
    assert all(
        e["customer_id"] == customer_id(PERSON) for e in exported["events"]["snapshot_events"]
    )
    logged = exported["events"]["event_log"]
    assert [e["kind"] for e in logged] == ["login", "product_view", "identify"]
    assert f"email:{email(PERSON)}" in logged[2]["matched_by"]
    assert [f["body"] for f in exported["events"]["failed_events"]] == [
        f'{{"email": "{email(PERSON)}", '
    ]
    live = exported["events"]["live"]["live_profile"]
    assert live["customer_id"] == customer_id(PERSON)
    assert [p[0] for p in live["recent_products"]] == ["P1"]
    # consents: the golden record's and the decision log's
    consents = exported["consents"]
    assert set(consents["golden_record"]) >= {"has_email_consent", "has_sms_consent"}
    assert [(c["channel"], c["is_granted"]) for c in consents["decision_log"]] == [("sms", False)]
    # decisions: the price-drop trigger decided for them (a decision, a firing, a message)
    decisions = exported["decisions"]
    assert decisions["decisions"] and decisions["trigger_firings"]
    assert {d["customer_id"] for d in decisions["decisions"]} == {customer_id(PERSON)}
    assert [m["trigger_name"] for m in decisions["outbox"]] == ["price_drop"]
    # nothing of the other person anywhere in the document
    text = to_json(document).decode()
    for marker in (email(OTHER), f"ACC-{OTHER}", f"ck_{OTHER}", customer_id(OTHER)):
        assert marker not in text
    counts = summary(document)
    assert counts["records"] >= 3 and counts["event log events"] == 3


def test_export_by_customer_id_alias_and_identifier_agree(world: StreamWorld) -> None:
    by_id = _export(world.home, PersonRef(customer_id=customer_id(PERSON)))
    by_account = _export(world.home, PersonRef.parse_identifier(f"account_id:ACC-{PERSON}"))
    for document in (by_id, by_account):
        document.pop("exported_at")
        document.pop("asked")
    assert by_id == by_account
    # a merged (retired) id exports its survivor with the id history
    merged = _export(world.home, PersonRef(customer_id=ALIAS[1]))
    assert merged["profile"]["golden_record"]["customer_id"] == customer_id(1)
    assert set(merged["customer_ids"]) >= {customer_id(1), *ALIAS}
    assert merged["id_history"]["customer_aliases"]
    assert merged["id_history"]["customer_id_history"]


def test_unknown_person_is_nothing_held(world: StreamWorld) -> None:
    for person in (
        PersonRef(identifier_type="email", value="nobody@nowhere.org"),
        PersonRef(customer_id="cus_nobody"),
        PersonRef.parse_identifier("loyalty_id:L999999"),
    ):
        document = _export(world.home, person)
        assert document["found"] is False
        assert document["message"].startswith("nothing held")
        assert document["profile"]["golden_record"] is None
        assert document["events"]["event_log"] == []
        assert document["decisions"]["decisions"] == []


def test_an_empty_home_holds_nothing_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "empty"
    home.mkdir()
    document = export_person(home, PersonRef(identifier_type="phone", value="+14155550123"))
    assert document["found"] is False
    assert list(home.iterdir()) == []


@pytest.mark.parametrize(
    ("person", "message"),
    [
        (PersonRef(identifier_type="email", value="not-an-email"), "not a valid email"),
        (PersonRef(identifier_type="phone", value="12"), "not a valid phone number"),
        (PersonRef(identifier_type="email", value="test@example.com"), "placeholder"),
        (PersonRef(identifier_type="E-mail!", value="a@b.org"), "not an identifier type"),
    ],
)
def test_unusable_identifiers_are_refused_with_a_reason(
    world: StreamWorld, person: PersonRef, message: str
) -> None:
    with pytest.raises(AccessError, match=message):
        export_person(world.home, person)


def test_identifier_syntax() -> None:
    assert PersonRef.parse_identifier("note:a:b") == PersonRef(identifier_type="note", value="a:b")
    with pytest.raises(AccessError, match="TYPE:VALUE"):
        PersonRef.parse_identifier("account_id")
    with pytest.raises(AccessError, match="customer id or by one identifier"):
        PersonRef()
