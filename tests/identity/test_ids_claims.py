"""Batch ids keep the real-time path's provisional customer ids where they can (issue 14).

The stream processor gives an unknown person a provisional ``cus_`` id at once; the next batch
run sees the folded events, forms clusters and must keep that id for a new customer, or make it
an alias of the customer the person turns out to be, so live data follows the person.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from identity import (
    BIRTH_EVENT_TYPES,
    HISTORY_EVENT_TYPES,
    IdentitySettings,
    PreviousState,
    read_previous_state,
    read_provisional_claims,
    resolve,
    resolve_alias,
    write_resolution,
)
from identity.ids import IdAssignment, alias_lookup, assign_customer_ids, new_customer_id

T1 = datetime(2026, 1, 1, tzinfo=UTC)
T2 = datetime(2026, 1, 2, tzinfo=UTC)
T3 = datetime(2026, 1, 3, tzinfo=UTC)
P1 = "cus_" + "1" * 16
P2 = "cus_" + "2" * 16
P3 = "cus_" + "3" * 16

Claim = tuple[str, str, str, datetime | None]


def _clusters(groups: list[list[str]]) -> pd.DataFrame:
    rows = [(uid, label) for label, group in enumerate(groups) for uid in group]
    return pd.DataFrame(rows, columns=["record_uid", "cluster"])


def _held(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["record_uid", "identifier_type", "identifier_value"])


def _claims(rows: list[Claim]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["customer_id", "identifier_type", "identifier_value", "linked_at"]
    )
    frame["linked_at"] = pd.to_datetime(frame["linked_at"], utc=True)
    return frame


def _run(
    groups: list[list[str]],
    previous: PreviousState | None,
    now: datetime,
    run: str,
    *,
    claims: list[Claim] | None = None,
    held: list[tuple[str, str, str]] | None = None,
) -> tuple[IdAssignment, PreviousState]:
    assignment = assign_customer_ids(
        _clusters(groups),
        previous,
        salt="test",
        run_id=run,
        now=now,
        claims=None if claims is None else _claims(claims),
        record_identifiers=None if held is None else _held(held),
    )
    history = (
        pd.concat([previous.history, assignment.events], ignore_index=True)
        if previous is not None
        else assignment.events
    )
    state = PreviousState(
        identity_map=assignment.identity_map, aliases=assignment.aliases, history=history
    )
    return assignment, state


def _id_of(assignment: IdAssignment, uid: str) -> str:
    frame = assignment.identity_map
    return frame.loc[frame["record_uid"] == uid, "customer_id"].item()


def _events(assignment: IdAssignment) -> set[tuple[str, str, str | None]]:
    events = assignment.events
    return {
        (t, c, None if pd.isna(r) else r)
        for t, c, r in zip(
            events["event_type"], events["customer_id"], events["related_customer_id"], strict=True
        )
    }


def test_a_new_cluster_keeps_its_provisional_id() -> None:
    held = [("web:cookie:c1", "cookie_id", "c1"), ("shop:9", "account_id", "A9")]
    first, _ = _run(
        [["shop:9", "web:cookie:c1"], ["crm:1"]],
        None,
        T1,
        "r1",
        claims=[(P1, "cookie_id", "c1", T1 - timedelta(hours=1))],
        held=held,
    )
    assert _id_of(first, "web:cookie:c1") == _id_of(first, "shop:9") == P1
    assert _id_of(first, "crm:1") == new_customer_id("crm:1", "test")
    assert _events(first) == {("provisional", P1, None), ("created", _id_of(first, "crm:1"), None)}
    assert first.stats["provisional"] == 1 and first.stats["created"] == 1
    assert first.stats["claims"] == 1 and first.stats["claims_unmatched"] == 0
    assert first.aliases.empty


def test_a_claim_on_an_existing_customer_becomes_its_alias() -> None:
    first, state = _run([["crm:1", "shop:1"]], None, T1, "r1")
    known = _id_of(first, "crm:1")
    # the unknown visitor logged in with the known account: the batch links the cookie record
    second, _ = _run(
        [["crm:1", "shop:1", "web:cookie:c1"]],
        state,
        T2,
        "r2",
        claims=[(P1, "cookie_id", "c1", T1), (P1, "email", "bob@x.com", T1)],
        held=[("web:cookie:c1", "cookie_id", "c1")],
    )
    assert set(second.identity_map["customer_id"]) == {known}
    assert _events(second) == {("provisional_merged", known, P1)}
    assert resolve_alias(P1, alias_lookup(second.aliases)) == known
    assert second.stats["provisional_merged"] == 1 and second.stats["provisional"] == 0
    assert second.stats["merged"] == 0  # batch churn is not inflated by real-time aliases


def test_two_claims_on_one_cluster_the_oldest_stays() -> None:
    held = [
        ("web:cookie:c1", "cookie_id", "c1"),
        ("web:cookie:c2", "cookie_id", "c2"),
        ("shop:1", "account_id", "A1"),
        ("web:cookie:c2", "account_id", "A1"),
    ]
    claims: list[Claim] = [
        (P2, "cookie_id", "c2", T1),
        (P2, "account_id", "A1", T1),  # P2 is backed by two records, but linked later
        (P1, "cookie_id", "c1", T1 - timedelta(minutes=5)),
    ]
    first, _ = _run(
        [["shop:1", "web:cookie:c1", "web:cookie:c2"]], None, T2, "r1", claims=claims, held=held
    )
    assert set(first.identity_map["customer_id"]) == {P1}
    assert _events(first) == {("provisional", P1, None), ("provisional_merged", P1, P2)}
    assert alias_lookup(first.aliases) == {P2: P1}


def test_two_claims_linked_at_once_the_one_with_more_records_stays() -> None:
    held = [
        ("web:cookie:c1", "cookie_id", "c1"),
        ("web:cookie:c2", "cookie_id", "c2"),
        ("shop:1", "account_id", "A1"),
    ]
    claims: list[Claim] = [
        (P1, "cookie_id", "c1", T1),
        (P2, "cookie_id", "c2", T1),
        (P2, "account_id", "A1", T1),
    ]
    first, _ = _run(
        [["shop:1", "web:cookie:c1", "web:cookie:c2"]], None, T2, "r1", claims=claims, held=held
    )
    assert set(first.identity_map["customer_id"]) == {P2}
    assert alias_lookup(first.aliases) == {P1: P2}
    # no linked_at at all: more records, then the smaller id
    undated: list[Claim] = [(c, t, v, None) for c, t, v, _ in claims]
    again, _ = _run(
        [["shop:1", "web:cookie:c1", "web:cookie:c2"]], None, T2, "r1", claims=undated, held=held
    )
    assert set(again.identity_map["customer_id"]) == {P2}


def test_a_claim_goes_to_the_cluster_with_most_records_holding_its_identifiers() -> None:
    # P1 was given for a cookie and an email; the batch kept them apart: the email's side
    # has two records holding P1's identifiers, the cookie's one
    held = [
        ("web:cookie:c1", "cookie_id", "c1"),
        ("crm:1", "email", "ann@x.com"),
        ("shop:1", "email", "ann@x.com"),
    ]
    claims: list[Claim] = [(P1, "cookie_id", "c1", T1), (P1, "email", "ann@x.com", T1)]
    first, _ = _run(
        [["web:cookie:c1"], ["crm:1", "shop:1"]], None, T2, "r1", claims=claims, held=held
    )
    assert _id_of(first, "crm:1") == P1
    assert _id_of(first, "web:cookie:c1") == new_customer_id("web:cookie:c1", "test")
    # a tie goes to the cluster with the smallest record uid
    tied, _ = _run(
        [["web:cookie:c1"], ["crm:1"]],
        None,
        T2,
        "r1",
        claims=claims,
        held=held[:2],
    )
    assert _id_of(tied, "crm:1") == P1 and _id_of(tied, "web:cookie:c1") != P1


def test_a_claim_no_record_supports_is_ignored_but_its_id_stays_reserved() -> None:
    baseline, _ = _run([["crm:1"], ["crm:2"]], None, T1, "r1")
    # the claim's id is exactly the id crm:2's cluster would get: it must not take it
    reserved = new_customer_id("crm:2", "test")
    first, _ = _run(
        [["crm:1"], ["crm:2"]],
        None,
        T1,
        "r1",
        claims=[(reserved, "cookie_id", "not-folded-yet", T1)],
        held=[("crm:1", "email", "a@x.com")],
    )
    assert first.stats["claims_unmatched"] == 1 and first.stats["provisional"] == 0
    assert _id_of(first, "crm:1") == _id_of(baseline, "crm:1")
    assert _id_of(first, "crm:2") not in {reserved, _id_of(first, "crm:1")}
    assert set(first.events["event_type"]) == {"created"}


def test_a_split_off_part_keeps_its_provisional_id() -> None:
    first, state = _run([["crm:1", "crm:2", "web:cookie:c1"]], None, T1, "r1")
    known = _id_of(first, "crm:1")
    second, _ = _run(
        [["crm:1", "crm:2"], ["web:cookie:c1"]],
        state,
        T2,
        "r2",
        claims=[(P1, "cookie_id", "c1", T1)],
        held=[("web:cookie:c1", "cookie_id", "c1")],
    )
    assert _id_of(second, "crm:1") == known and _id_of(second, "web:cookie:c1") == P1
    assert _events(second) == {("provisional", P1, known)}
    assert second.stats["split"] == 0 and second.stats["provisional"] == 1


def test_rerun_with_the_same_claims_changes_nothing() -> None:
    groups = [["shop:1", "web:cookie:c1", "web:cookie:c2"], ["crm:7"], ["web:cookie:c3"]]
    held = [
        ("web:cookie:c1", "cookie_id", "c1"),
        ("web:cookie:c2", "cookie_id", "c2"),
        ("web:cookie:c3", "cookie_id", "c3"),
    ]
    claims: list[Claim] = [
        (P1, "cookie_id", "c1", T1),
        (P2, "cookie_id", "c2", T2),
        (P3, "cookie_id", "c3", T1),
    ]
    first, state = _run(groups, None, T2, "r1", claims=claims, held=held)
    second, _ = _run(groups, state, T3, "r2", claims=claims, held=held)
    merged = first.identity_map.merge(second.identity_map, on="record_uid")
    assert len(merged) == 5 and (merged["customer_id_x"] == merged["customer_id_y"]).all()
    assert second.events.empty
    assert second.stats["claims_already_issued"] == 3
    assert second.aliases.equals(first.aliases)


def test_no_claims_change_nothing() -> None:
    groups = [["a", "b"], ["c"]]
    plain, _ = _run(groups, None, T1, "r1")
    empty, _ = _run(groups, None, T1, "r1", claims=[], held=[("a", "email", "a@x.com")])
    assert plain.identity_map.equals(empty.identity_map)
    assert plain.events.equals(empty.events)
    assert plain.stats == empty.stats


def test_malformed_claims_are_counted_and_skipped() -> None:
    first, _ = _run(
        [["web:cookie:c1"]],
        None,
        T1,
        "r1",
        claims=[
            ("not-a-customer-id", "cookie_id", "c1", T1),
            (P1, "cookie_id", None, T1),  # type: ignore[list-item]
            (P2, "cookie_id", "c1", T2),
        ],
        held=[("web:cookie:c1", "cookie_id", "c1")],
    )
    assert first.stats["claims_invalid"] == 2
    assert _id_of(first, "web:cookie:c1") == P2
    with pytest.raises(ValueError, match="missing \\['identifier_value'\\]"):
        assign_customer_ids(
            _clusters([["a"]]),
            None,
            salt="test",
            run_id="r1",
            now=T1,
            claims=pd.DataFrame({"customer_id": [P1], "identifier_type": ["email"]}),
        )


def test_a_kept_provisional_id_counts_as_born_on_a_later_merge() -> None:
    held = [("web:cookie:c1", "cookie_id", "c1")]
    first, state = _run(
        [["web:cookie:c1"]], None, T1, "r1", claims=[(P1, "cookie_id", "c1", T1)], held=held
    )
    second, state = _run([["web:cookie:c1"], ["crm:1"]], state, T2, "r2")
    newer = _id_of(second, "crm:1")
    # an id without a birth event would lose to the created one; the provisional one is older
    third, _ = _run([["web:cookie:c1", "crm:1"]], state, T3, "r3")
    assert set(third.identity_map["customer_id"]) == {P1}
    assert _events(third) == {("merged", P1, newer)}
    assert set(BIRTH_EVENT_TYPES) <= set(HISTORY_EVENT_TYPES)
    assert set(first.events["event_type"]) | set(third.events["event_type"]) <= set(
        HISTORY_EVENT_TYPES
    )


# --- through resolve(): normalization, guards and the claims file ---------------------------


def _records(with_new_visitor: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [
        {"record_uid": "crm:1", "first_name": "Robert", "last_name": "Smith", "email": "bob@x.com"},
        {"record_uid": "shop:1", "first_name": "Bob", "last_name": "Smith", "email": "BOB@x.com"},
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
    ]
    identifiers = [("shop:1", "account_id", "A1")]
    if with_new_visitor:
        rows += [{"record_uid": "web:cookie:c7"}, {"record_uid": "web:cookie:c8"}]
        identifiers += [("web:cookie:c7", "cookie_id", "c7"), ("web:cookie:c8", "cookie_id", "c8")]
        identifiers += [("web:cookie:c8", "account_id", "A1")]  # c8 logged in as A1
    records = pd.DataFrame(rows)
    records["source"] = records["record_uid"].str.split(":").str[0]
    records["record_id"] = records["record_uid"].str.split(":", n=1).str[1]
    frame = pd.DataFrame(identifiers, columns=["record_uid", "identifier_type", "identifier_value"])
    return records, frame


def _write_claims(path: Path, rows: list[Claim]) -> None:
    _claims(rows)[["identifier_type", "identifier_value", "customer_id", "linked_at"]].to_parquet(
        path
    )


def test_resolve_reads_the_claims_file_and_settles_each_claim(tmp_path: Path) -> None:
    settings = IdentitySettings()
    lake = tmp_path / "identity"
    first = resolve(*_records(False), settings, train=False, run_id="r1", now=T1)
    write_resolution(first, lake)
    known = first.identity_map.set_index("record_uid").loc["crm:1", "customer_id"]
    claims_path = tmp_path / "provisional_customers.parquet"
    _write_claims(
        claims_path,
        [
            (P1, "cookie_id", " c7 ", T1),  # written with spaces: normalized as records are
            (P2, "cookie_id", "c8", T1),
            (P2, "email", "Bob@X.com", T1),  # the same person as the known customer
            (P3, "phone", "(212) 555-0199", T1),  # a household phone: nobody's key
            (P3, "cookie_id", "later", T3),  # linked after the as-of date
        ],
    )
    assert read_provisional_claims(tmp_path / "absent.parquet") is None
    claims = read_provisional_claims(claims_path, as_of=T2)
    assert claims is not None and len(claims) == 4

    second = resolve(
        *_records(True),
        settings,
        train=False,
        previous=read_previous_state(lake),
        run_id="r2",
        now=T2,
        claims=claims,
    )
    ids = second.identity_map.set_index("record_uid")["customer_id"]
    assert ids["web:cookie:c7"] == P1
    assert ids["web:cookie:c8"] == ids["shop:1"] == ids["crm:1"] == known
    assert P3 not in set(ids)
    assert alias_lookup(second.aliases) == {P2: known}
    stats = second.stats["ids"]
    assert (stats["provisional"], stats["provisional_merged"], stats["claims_unmatched"]) == (
        1,
        1,
        1,
    )
    write_resolution(second, lake)

    third = resolve(
        *_records(True),
        settings,
        train=False,
        previous=read_previous_state(lake),
        run_id="r3",
        now=T3,
        claims=read_provisional_claims(claims_path),
    )
    assert third.identity_map[["record_uid", "customer_id"]].equals(
        second.identity_map[["record_uid", "customer_id"]]
    )
    assert third.events.empty
    history = pd.read_parquet(lake / "customer_id_history.parquet")
    assert set(history["event_type"]) == {"created", "provisional", "provisional_merged"}


def test_a_claims_file_without_its_columns_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "provisional_customers.parquet"
    pd.DataFrame({"customer_id": [P1], "identifier_value": ["c1"]}).to_parquet(path)
    with pytest.raises(ValueError, match=r"provisional_customers\.parquet.*identifier_type"):
        read_provisional_claims(path)
    path.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="unreadable provisional customers"):
        read_provisional_claims(path)


def test_the_real_time_path_writes_what_identity_reads() -> None:
    """The fold's export and the processor's provisional ids are what claims expect."""
    from events.fold import PROVISIONAL_NAME, PROVISIONAL_SCHEMA
    from events.resolve import provisional_id
    from identity import PROVISIONAL_CUSTOMERS_FILE, PROVISIONAL_CUSTOMERS_SCHEMA
    from identity.ids import CLAIM_COLUMNS, CUSTOMER_ID_PATTERN

    assert PROVISIONAL_NAME == PROVISIONAL_CUSTOMERS_FILE
    assert set(PROVISIONAL_SCHEMA.names) == set(PROVISIONAL_CUSTOMERS_SCHEMA) == set(CLAIM_COLUMNS)
    assert CUSTOMER_ID_PATTERN.match(provisional_id("cookie_id", "c1"))
