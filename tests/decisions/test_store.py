"""The decision log on real SQLite files: round trip, idempotence, consent, sliding-window caps."""

from __future__ import annotations

import sqlite3
import stat
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decisions.store import (
    EXPORT_MANIFEST,
    EXPORT_TABLES,
    OUTCOME_KINDS,
    SCHEMA_VERSION,
    DecisionStore,
    StoreError,
    UnknownDecisionError,
    cap_exceeded,
    read_export,
)
from decisions.types import CapRule, Decision, DecisionItem, ExperimentArm

DAY = 86_400.0
T0 = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)

EMAIL_DAILY = CapRule("email_daily", frozenset({"email"}), 1, DAY)
MESSAGES_WEEKLY = CapRule("messages_weekly", frozenset({"email", "sms", "push"}), 2, 7 * DAY)


def decision(
    customer_id: str = "c1",
    channel: str = "email",
    *,
    placement: str = "daily_email",
    at: datetime = T0,
    period: timedelta = timedelta(days=1),
    send: bool = True,
    reasons: tuple[str, ...] = (),
    decision_id: str | None = None,
    product_ids: tuple[str, ...] = ("p1", "p2", "p3"),
) -> Decision:
    """A decision for the period (of length ``period``, starting at 14:00 UTC) holding ``at``."""
    start = T0 + ((at - T0) // period) * period
    return Decision(
        decision_id=decision_id or f"d-{customer_id}-{placement}-{start:%Y%m%d%H}",
        customer_id=customer_id,
        channel=channel,
        placement=placement,
        policy_version="abc123def456",
        decided_at=at,
        expires_at=start + period,
        send=send,
        reasons=reasons,
        theme="Winter coats",
        items=tuple(
            DecisionItem(
                product_id=pid,
                sale_id=f"s-{pid}",
                score=1.0 / (i + 1),
                propensity=0.9 if i else 0.1,
                is_wildcard=i == len(product_ids) - 1,
                reasons=(f"affinity:{pid}", "novel_brand") if i else (),
            )
            for i, pid in enumerate(product_ids)
        ),
        subject="Hi Ada, new in <b>coats</b>",
        blocks={"intro": "Dear Ada", "footer": "Bye"},
        subject_masked="Hi there, new in <b>coats</b>",
        blocks_masked={"intro": "Dear customer", "footer": "Bye"},
        experiment=ExperimentArm("subject_line", "personal"),
        is_holdout=False,
        excluded={"suppressed:electronics": 3, "ineligible": 12},
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DecisionStore]:
    with DecisionStore.open(tmp_path / "decisions" / "decisions.sqlite") as opened:
        yield opened


def test_a_decision_round_trips_with_items_reasons_and_masked_subject(
    store: DecisionStore, tmp_path: Path
) -> None:
    original = decision(reasons=("eligible:luxury_for_high_clv",))
    delivered = store.deliver(
        original, caps=[EMAIL_DAILY], customer_ids={"c1"}, now=T0, consent_required=True
    )
    assert delivered == original

    found = store.find_choice("c1", "daily_email", T0)
    assert found == original
    assert found.decided_at.tzinfo is not None
    assert store.find_choice("c1", "daily_email", T0 + timedelta(hours=23)) == original
    assert store.find_choice("c1", "daily_email", T0 + timedelta(days=1)) is None
    assert store.find_choice("c1", "home_hero", T0) is None
    assert store.recent({"c1"}, last=5) == [original]

    lake = tmp_path / "lake"
    exported = store.export(lake)
    one = {"decisions": 1, "deliveries": 1, "decision_items": 3, "outcomes": 0, "consent_events": 0}
    assert exported.written == exported.totals == one
    assert not [p for p in lake.rglob("*") if p.name.startswith(".")]
    assert (lake / "decisions" / "2026-11-02.parquet").exists()
    row = read_export(lake, "decisions").to_pylist()[0]
    assert row["subject"] == original.subject
    assert row["subject_masked"] == "Hi there, new in <b>coats</b>"
    assert dict(row["blocks_masked"]) == {"intro": "Dear customer", "footer": "Bye"}
    assert (row["experiment"], row["arm"], row["is_holdout"]) == ("subject_line", "personal", False)
    assert row["expires_at"] == original.expires_at
    items = read_export(lake, "decision_items").to_pylist()
    assert [(i["product_id"], i["propensity"], i["is_wildcard"]) for i in items] == [
        ("p1", 0.1, False),
        ("p2", 0.9, False),
        ("p3", 0.9, True),
    ]
    assert items[1]["reasons"] == ["affinity:p2", "novel_brand"]
    delivery = read_export(lake, "deliveries").to_pylist()[0]
    assert delivery["reasons"] == ["eligible:luxury_for_high_clv"]
    assert delivery["is_sent"] is True
    assert delivery["delivered_at"] == T0
    assert str(
        pq.read_schema(lake / "deliveries" / "2026-11-02.parquet").field("delivered_at").type
    ) == ("timestamp[us, tz=UTC]")


def test_a_second_request_from_the_same_channel_returns_the_stored_delivery(
    store: DecisionStore,
) -> None:
    first = store.deliver(
        decision(), caps=[EMAIL_DAILY], customer_ids={"c1"}, now=T0, consent_required=True
    )
    again = store.deliver(
        decision(),
        caps=[EMAIL_DAILY],
        customer_ids={"c1"},
        now=T0 + timedelta(minutes=5),
        consent_required=True,
    )
    assert first.send and again.send  # not capped by its own first delivery
    assert again == first
    assert store.counts()["deliveries"] == 1
    assert store.counts()["sends"] == 1


def test_every_channel_in_the_period_gets_the_stored_choice(store: DecisionStore) -> None:
    email = store.deliver(decision(), caps=[], customer_ids={"c1"}, now=T0, consent_required=True)
    # another process chose independently (a different id and items) before seeing the log
    rival = decision(channel="call_center", decision_id="d-rival", product_ids=("p9",), send=True)
    shown = store.deliver(
        rival, caps=[], customer_ids={"c1"}, now=T0 + timedelta(hours=3), consent_required=False
    )
    assert shown.decision_id == email.decision_id
    assert shown.items == email.items
    assert shown.subject == email.subject
    assert shown.channel == "call_center"
    assert [d.channel for d in store.recent({"c1"}, last=5)] == ["call_center", "email"]


def test_an_unsubscribe_blocks_the_next_send_at_once_and_a_grant_reenables(
    store: DecisionStore,
) -> None:
    first = store.deliver(decision(), caps=[], customer_ids={"c1"}, now=T0, consent_required=True)
    assert first.send
    assert store.record_outcome(first.decision_id, "email", "unsubscribe", T0 + timedelta(hours=1))
    assert store.withdrawn_channels({"c1"}) == {"email": T0 + timedelta(hours=1)}

    later = T0 + timedelta(days=1)
    blocked = store.deliver(
        decision(at=later), caps=[], customer_ids={"c1"}, now=later, consent_required=True
    )
    assert not blocked.send
    assert blocked.reasons == ("consent:withdrawn:email",)
    sms = store.deliver(
        decision(at=later, channel="sms"),
        caps=[],
        customer_ids={"c1"},
        now=later,
        consent_required=True,
    )
    assert sms.send  # only the channel unsubscribed from
    web = store.deliver(
        decision(at=later, channel="web"),
        caps=[],
        customer_ids={"c1"},
        now=later,
        consent_required=False,
    )
    assert web.send  # display needs no consent

    store.record_consent("c1", "email", True, later + timedelta(hours=1), "preference_center")
    assert store.withdrawn_channels({"c1"}) == {}
    day3 = T0 + timedelta(days=2)
    assert store.deliver(
        decision(at=day3), caps=[], customer_ids={"c1"}, now=day3, consent_required=True
    ).send


def test_a_24h_cap_is_a_sliding_window_not_a_calendar_day(store: DecisionStore) -> None:
    eleven_pm = datetime(2026, 11, 2, 23, 0, tzinfo=UTC)
    half_past_midnight = datetime(2026, 11, 3, 0, 30, tzinfo=UTC)
    kwargs = {"caps": [EMAIL_DAILY], "customer_ids": {"c1"}, "consent_required": True}
    first = store.deliver(
        decision(placement="evening", at=eleven_pm, period=timedelta(hours=1)),
        now=eleven_pm,
        **kwargs,
    )
    assert first.send
    # a calendar-day cap (2026-11-03 has no send yet) would let this through
    second = store.deliver(
        decision(placement="night", at=half_past_midnight, period=timedelta(hours=1)),
        now=half_past_midnight,
        **kwargs,
    )
    assert not second.send
    assert second.reasons == ("cap:email_daily",)
    day_after = eleven_pm + timedelta(days=1, minutes=1)
    assert store.deliver(
        decision(placement="evening", at=day_after, period=timedelta(hours=1)),
        now=day_after,
        **kwargs,
    ).send


def test_caps_hold_across_channels_and_placements(store: DecisionStore) -> None:
    caps = [EMAIL_DAILY, MESSAGES_WEEKLY]

    def ask(channel: str, placement: str, hours: float) -> Decision:
        at = T0 + timedelta(hours=hours)
        return store.deliver(
            decision(channel=channel, placement=placement, at=at),
            caps=caps,
            customer_ids={"c1"},
            now=at,
            consent_required=channel in {"email", "sms", "push"},
        )

    assert ask("email", "daily_email", 0).send
    assert ask("sms", "flash_sms", 1).send
    push = ask("push", "flash_push", 2)
    assert not push.send
    assert push.reasons == ("cap:messages_weekly",)
    assert ask("web", "home_hero", 3).send  # no cap names web
    email = ask("email", "evening_email", 20)  # both caps full
    assert email.reasons == ("cap:email_daily", "cap:messages_weekly")
    assert ask("sms", "flash_sms", 7 * 24 + 1).send  # the first week's sends left the window


def test_alias_ids_share_caps_and_withdrawals(store: DecisionStore) -> None:
    person = {"c-new", "c-old"}
    assert store.deliver(
        decision("c-old"),
        caps=[EMAIL_DAILY],
        customer_ids={"c-old"},
        now=T0,
        consent_required=True,
    ).send
    later = T0 + timedelta(hours=2)
    merged = store.deliver(
        decision("c-new", placement="flash", at=later),
        caps=[EMAIL_DAILY],
        customer_ids=person,
        now=later,
        consent_required=True,
    )
    assert merged.reasons == ("cap:email_daily",)
    assert store.engagement(person, T0 - timedelta(days=1)).sends == 1

    store.record_consent("c-old", "sms", False, later, "support_call")
    sms = store.deliver(
        decision("c-new", channel="sms", at=later),
        caps=[],
        customer_ids=person,
        now=later,
        consent_required=True,
    )
    assert sms.reasons == ("consent:withdrawn:sms",)
    assert store.withdrawn_channels({"c-new"}) == {}
    assert store.withdrawn_channels(person) == {"sms": later}


def test_a_decision_the_service_already_refused_is_stored_as_is_and_not_counted(
    store: DecisionStore,
) -> None:
    holdout = store.deliver(
        decision(send=False, reasons=("holdout",)),
        caps=[EMAIL_DAILY],
        customer_ids={"c1"},
        now=T0,
        consent_required=True,
    )
    assert (holdout.send, holdout.reasons) == (False, ("holdout",))
    later = T0 + timedelta(hours=1)
    assert store.deliver(
        decision(placement="flash", at=later),
        caps=[EMAIL_DAILY],
        customer_ids={"c1"},
        now=later,
        consent_required=True,
    ).send
    assert store.reason_counts() == {"sent": 1, "not_sent": 1, "holdout": 1}


def test_a_late_request_cannot_overfill_a_window_holding_later_sends(
    store: DecisionStore,
) -> None:
    noon = T0 - timedelta(hours=2)
    assert store.deliver(
        decision(placement="a", at=noon),
        caps=[EMAIL_DAILY],
        customer_ids={"c1"},
        now=noon,
        consent_required=True,
    ).send
    # another worker whose clock read an hour earlier commits after
    eleven = noon - timedelta(hours=1)
    late = store.deliver(
        decision(placement="b", at=eleven),
        caps=[EMAIL_DAILY],
        customer_ids={"c1"},
        now=eleven,
        consent_required=True,
    )
    assert late.reasons == ("cap:email_daily",)


def test_cap_exceeded_checks_every_window_holding_the_new_send() -> None:
    assert not cap_exceeded([], 100, 10, 1)
    assert cap_exceeded([], 100, 10, 0)
    assert cap_exceeded([95], 100, 10, 1)
    assert not cap_exceeded([90], 100, 10, 1)  # (90, 100]: the window excludes its start
    assert cap_exceeded([105], 100, 10, 1)
    assert not cap_exceeded([110], 100, 10, 1)
    assert not cap_exceeded([91, 109], 100, 10, 2)  # no window of 10 holds all three
    assert cap_exceeded([95, 104], 100, 10, 2)


def test_outcomes_are_idempotent_per_kind_and_reject_unknown_kinds(
    store: DecisionStore,
) -> None:
    delivered = store.deliver(
        decision(), caps=[], customer_ids={"c1"}, now=T0, consent_required=True
    )
    at = T0 + timedelta(hours=1)
    assert store.record_outcome(delivered.decision_id, "email", "open", at)
    assert not store.record_outcome(delivered.decision_id, "email", "open", at)
    assert store.record_outcome(delivered.decision_id, "email", "purchase", at, revenue=42.5)
    assert not store.record_outcome(delivered.decision_id, "email", "purchase", at, revenue=9.0)
    with pytest.raises(ValueError, match=r"unknown outcome kind 'read'.*open, click, visit"):
        store.record_outcome(delivered.decision_id, "email", "read", at)
    with pytest.raises(UnknownDecisionError, match="no decision 'nope'"):
        store.record_outcome("nope", "email", "open", at)
    assert store.counts()["outcomes"] == 2
    assert set(OUTCOME_KINDS) == {"open", "click", "visit", "purchase", "unsubscribe", "bounce"}


def test_engagement_counts_sends_opens_clicks_for_one_or_many_people(
    store: DecisionStore,
) -> None:
    for day in range(3):
        at = T0 + timedelta(days=day)
        for customer in ("a", "b"):
            d = store.deliver(
                decision(customer, at=at),
                caps=[],
                customer_ids={customer},
                now=at,
                consent_required=True,
            )
            if customer == "a":
                store.record_outcome(d.decision_id, "email", "open", at + timedelta(hours=1))
                if day == 2:
                    store.record_outcome(d.decision_id, "email", "click", at + timedelta(hours=2))
    since = T0 + timedelta(days=1)
    one = store.engagement({"a"}, since)
    assert (one.sends, one.opens, one.clicks) == (2, 2, 1)
    assert one.last_engaged_at == T0 + timedelta(days=2, hours=2)
    many = store.engagement_many({"A": {"a"}, "B": {"b"}, "both": {"a", "b"}, "none": set()}, since)
    assert (many["B"].sends, many["B"].opens, many["B"].last_engaged_at) == (2, 0, None)
    assert many["both"].sends == 4
    assert many["none"].sends == 0
    assert many["A"] == one
    assert store.engagement({"a"}, since, channels=("sms",)).sends == 0


def test_the_log_is_append_only_and_versioned(store: DecisionStore, tmp_path: Path) -> None:
    store.deliver(decision(), caps=[], customer_ids={"c1"}, now=T0, consent_required=True)
    store.close()
    raw = sqlite3.connect(tmp_path / "decisions" / "decisions.sqlite")
    assert raw.execute("pragma user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("pragma journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("update deliveries set is_sent = 0")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("delete from choices")
    raw.execute(f"pragma user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer than this platform"):
        DecisionStore.open(tmp_path / "decisions" / "decisions.sqlite")


def test_the_assignment_key_is_created_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "d" / "decisions.sqlite"
    with DecisionStore.open(path) as first:
        key = first.assignment_key()
    assert len(key) == 32
    assert stat.S_IMODE((tmp_path / "d" / "assignment.key").stat().st_mode) == 0o600
    with DecisionStore.open(path) as again:
        assert again.assignment_key() == key
    assert sorted(p.name for p in (tmp_path / "d").iterdir() if "key" in p.name) == [
        "assignment.key"
    ]


def test_deliver_many_matches_deliver_and_sees_its_own_chunk(tmp_path: Path) -> None:
    caps = [EMAIL_DAILY, MESSAGES_WEEKLY]
    requests = [
        (decision(c, ch, placement=pl), caps, {c}, ch != "web")
        for c in ("a", "b", "c")
        for ch, pl in (("email", "daily"), ("sms", "flash"), ("push", "push"), ("web", "hero"))
    ]
    with DecisionStore.open(tmp_path / "one" / "d.sqlite") as one:
        singly = [
            one.deliver(d, caps=c, customer_ids=ids, now=T0, consent_required=r)
            for d, c, ids, r in requests
        ]
    with DecisionStore.open(tmp_path / "many" / "d.sqlite") as many:
        batched = many.deliver_many(requests, T0, chunk_size=5)
        assert many.deliver_many(requests, T0) == batched  # idempotent
        assert many.counts()["deliveries"] == len(requests)
    assert batched == singly
    assert [d.send for d in batched[:4]] == [True, True, False, True]


# -- property: random interleavings never overfill any window ----------------------------------

CHANNELS = ("email", "sms", "push", "web")
PERSON = {"p-new", "p-old"}


def _windows_respected(deliveries: list[dict], caps: list[CapRule]) -> None:
    """Recompute every cap from exported deliveries: no window (end - w, end] overfilled."""
    sends = [(row["delivered_at"], row["channel"]) for row in deliveries if row["is_sent"]]
    for cap in caps:
        times = sorted(at for at, channel in sends if channel in cap.channels)
        window = timedelta(seconds=cap.window_seconds)
        for end in times:  # a window's count is largest when it ends at a send
            held = sum(1 for at in times if end - window < at <= end)
            assert held <= cap.max_sends, (cap, end, held)


request_strategy = st.tuples(
    st.sampled_from(sorted(PERSON)),
    st.sampled_from(CHANNELS),
    st.sampled_from(("daily", "flash")),
    st.integers(min_value=0, max_value=4 * 24 * 60),  # minutes after T0, in any order
    st.sampled_from(("deliver", "unsubscribe", "grant")),
)
cap_strategy = st.lists(
    st.builds(
        CapRule,
        name=st.sampled_from(("a", "b", "c", "d")),
        channels=st.frozensets(st.sampled_from(CHANNELS), min_size=1),
        max_sends=st.integers(min_value=0, max_value=3),
        window_seconds=st.sampled_from((3600.0, 6 * 3600.0, DAY, 2 * DAY)),
    ),
    max_size=3,
    unique_by=lambda cap: cap.name,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    caps=cap_strategy,
    requests=st.lists(request_strategy, min_size=1, max_size=40),
    use_many=st.booleans(),
)
def test_random_interleavings_never_overfill_a_window_nor_ignore_a_withdrawal(
    caps: list[CapRule], requests: list[tuple[str, str, str, int, str]], use_many: bool
) -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        DecisionStore.open(Path(folder) / "decisions.sqlite") as store,
    ):
        # the model of consent: per channel, the latest event by (at, order) over both ids
        events: dict[str, list[tuple[datetime, int, bool]]] = defaultdict(list)
        unsubscribed: set[tuple[str, str]] = set()
        answers: dict[tuple[str, str], Decision] = {}
        last_sent: dict[str, str] = {}
        for order, (customer, channel, placement, minutes, action) in enumerate(requests):
            now = T0 + timedelta(minutes=minutes)
            if action == "grant":
                store.record_consent(customer, channel, True, now, "test")
                events[channel].append((now, order, True))
                continue
            if action == "unsubscribe":
                if channel in last_sent:  # through the outcome feedback, once per decision
                    decision_id = last_sent[channel]
                    store.record_outcome(decision_id, channel, "unsubscribe", now)
                    if (decision_id, channel) not in unsubscribed:
                        unsubscribed.add((decision_id, channel))
                        events[channel].append((now, order, False))
                else:
                    store.record_consent(customer, channel, False, now, "test")
                    events[channel].append((now, order, False))
                continue
            ask = decision(customer, channel, placement=placement, at=now)
            consent = channel != "web"
            got = (
                store.deliver_many([(ask, caps, PERSON, consent)], now)[0]
                if use_many
                else store.deliver(
                    ask, caps=caps, customer_ids=PERSON, now=now, consent_required=consent
                )
            )
            key = (got.decision_id, channel)
            if key in answers:
                assert got == answers[key]  # idempotent: the stored delivery, not re-decided
                continue
            answers[key] = got
            is_withdrawn = bool(events[channel]) and not max(events[channel])[2]
            if consent and is_withdrawn:
                assert not got.send
                assert got.reasons == (f"consent:withdrawn:{channel}",)
            if got.send:
                last_sent[channel] = got.decision_id
        store.export(Path(folder) / "lake")
        rows = read_export(Path(folder) / "lake", "deliveries").to_pylist()
        assert len(rows) == len(answers) == len({(r["decision_id"], r["channel"]) for r in rows})
        _windows_respected(rows, caps)


@pytest.mark.slow
def test_deliver_many_writes_100k_decisions_well_under_30_seconds(tmp_path: Path) -> None:
    caps = [EMAIL_DAILY, MESSAGES_WEEKLY]
    items = [(decision(f"c{i:06d}"), caps, {f"c{i:06d}"}, True) for i in range(100_000)]
    with DecisionStore.open(tmp_path / "d.sqlite") as store:
        started = time.perf_counter()
        delivered = store.deliver_many(items, T0)
        seconds = time.perf_counter() - started
        assert sum(d.send for d in delivered) == 100_000
        assert store.counts()["deliveries"] == 100_000
    assert seconds < 30, seconds


def test_a_writer_that_cannot_get_the_lock_says_so(tmp_path: Path) -> None:
    path = tmp_path / "decisions.sqlite"
    with DecisionStore.open(path, busy_timeout_ms=200) as store:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("begin immediate")
        try:
            assert store.counts()["choices"] == 0  # readers are never blocked
            with pytest.raises(StoreError, match="no write lock within 200 ms"):
                store.record_consent("c1", "email", False, T0, "test")
        finally:
            holder.execute("rollback")
            holder.close()
        store.record_consent("c1", "email", False, T0, "test")
        assert store.withdrawn_channels({"c1"}) == {"email": T0}


def test_two_channels_of_one_decision_in_one_chunk_share_the_choice(store: DecisionStore) -> None:
    email = decision("c1", "email")
    web = decision("c1", "web", decision_id="d-other", product_ids=("p7",))
    got = store.deliver_many([(email, [], {"c1"}, True), (web, [], {"c1"}, False)], T0)
    assert [d.decision_id for d in got] == [email.decision_id, email.decision_id]
    assert got[1].items == email.items
    assert got[1].channel == "web"
    assert store.counts()["choices"] == 1
    assert store.counts()["deliveries"] == 2


# -- the export: one file per table and day, incremental -------------------------------------


def _files(lake: Path) -> dict[str, tuple[int, int]]:
    """Every day file (table/day.parquet) with its inode and mtime: what a run rewrote."""
    return {
        str(p.relative_to(lake)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in lake.glob("*/*.parquet")
    }


def _decide_on_days(store: DecisionStore, days: range, customers: int, prefix: str = "c") -> None:
    for day in days:
        at = T0 + timedelta(days=day, hours=1)
        people = [f"{prefix}{i}" for i in range(customers)]
        store.deliver_many([(decision(c, at=at), [], {c}, False) for c in people], at)


def _same_as_a_full_export(store: DecisionStore, lake: Path, tmp_path: Path) -> None:
    full = store.export(tmp_path / "full", full=True)
    assert full.full and full.reason == "asked"
    for table in EXPORT_TABLES:
        assert read_export(lake, table).equals(read_export(tmp_path / "full", table)), table
        assert sorted(p.name for p in (lake / table).glob("*.parquet")) == sorted(
            p.name for p in (tmp_path / "full" / table).glob("*.parquet")
        )


def test_an_empty_log_exports_empty_folders_and_reads_as_empty_tables(
    store: DecisionStore, tmp_path: Path
) -> None:
    exported = store.export(tmp_path / "lake")
    assert exported.full and exported.reason == "no manifest"
    assert exported.totals == dict.fromkeys(EXPORT_TABLES, 0)
    assert {p.name for p in (tmp_path / "lake").iterdir()} == {EXPORT_MANIFEST, *EXPORT_TABLES}
    assert not list((tmp_path / "lake").glob("*/*"))
    empty = read_export(tmp_path / "lake", "deliveries")
    assert empty.num_rows == 0 and "delivered_at" in empty.schema.names
    again = store.export(tmp_path / "lake")
    assert not again.full and again.written == dict.fromkeys(EXPORT_TABLES, 0)


def test_a_second_export_rewrites_only_the_day_that_got_rows_and_equals_a_full_export(
    store: DecisionStore, tmp_path: Path
) -> None:
    _decide_on_days(store, range(3), customers=5)
    store.record_consent("c1", "email", False, T0 + timedelta(hours=2), "test")
    lake = tmp_path / "lake"
    first = store.export(lake)
    assert first.full and first.reason == "no manifest"
    assert first.days["deliveries"] == ("2026-11-02", "2026-11-03", "2026-11-04")
    assert first.days["consent_events"] == ("2026-11-02",)
    assert first.totals["deliveries"] == 15 and first.totals["decision_items"] == 45
    before = _files(lake)

    nothing = store.export(lake)  # nothing new: nothing rewritten
    assert not nothing.full and nothing.written == dict.fromkeys(EXPORT_TABLES, 0)
    assert _files(lake) == before

    _decide_on_days(store, range(1, 2), customers=3, prefix="n")  # three more on the 2nd day
    second = store.export(lake)
    assert not second.full and second.reason == "incremental"
    day = ("2026-11-03",)
    assert second.days == {
        "decisions": day,
        "decision_items": day,
        "deliveries": day,
        "outcomes": (),
        "consent_events": (),
    }
    assert second.written["deliveries"] == 8  # the whole day, from the store: 5 + 3
    assert second.totals["deliveries"] == 18 and second.totals["decision_items"] == 54
    after = _files(lake)
    assert {p for p in after if after[p] != before.get(p)} == {
        "decisions/2026-11-03.parquet",
        "decision_items/2026-11-03.parquet",
        "deliveries/2026-11-03.parquet",
    }
    _same_as_a_full_export(store, lake, tmp_path)


def test_a_late_row_rewrites_its_own_older_day_whole(store: DecisionStore, tmp_path: Path) -> None:
    _decide_on_days(store, range(2), customers=2)
    first_day, second_day = "d-c0-daily_email-2026110214", "d-c0-daily_email-2026110314"
    store.record_outcome(first_day, "email", "open", T0 + timedelta(hours=3))
    store.record_outcome(second_day, "email", "open", T0 + timedelta(days=1, hours=3))
    lake = tmp_path / "lake"
    store.export(lake)
    # a click on the first day's e-mail reported after the second day's open (rowid 3)
    store.record_outcome(first_day, "email", "click", T0 + timedelta(hours=4))
    late = store.export(lake)
    assert late.days["outcomes"] == ("2026-11-02",) and late.written["outcomes"] == 2
    rows = pq.read_table(lake / "outcomes" / "2026-11-02.parquet").to_pylist()
    assert [r["kind"] for r in rows] == ["open", "click"]
    assert late.days["deliveries"] == ()
    _same_as_a_full_export(store, lake, tmp_path)


def test_an_export_interrupted_before_its_manifest_is_redone_by_the_next(
    store: DecisionStore, tmp_path: Path
) -> None:
    _decide_on_days(store, range(2), customers=3)
    lake = tmp_path / "lake"
    store.export(lake)
    manifest = (lake / EXPORT_MANIFEST).read_bytes()
    _decide_on_days(store, range(1, 2), customers=2, prefix="n")
    store.export(lake)
    (lake / EXPORT_MANIFEST).write_bytes(manifest)  # as if it crashed before the manifest
    # the rewritten files no longer match the manifest's sizes: a full export repairs it
    redone = store.export(lake)
    assert redone.full and "changed since it was exported" in redone.reason
    assert redone.totals["deliveries"] == 8
    _same_as_a_full_export(store, lake, tmp_path)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda lake: (lake / "deliveries" / "2026-11-02.parquet").unlink(), "day files differ"),
        (lambda lake: (lake / EXPORT_MANIFEST).write_text("{not json"), "no manifest"),
        (
            lambda lake: (lake / "deliveries" / "2020-01-01.parquet").write_bytes(b""),
            "day files differ",
        ),
    ],
)
def test_a_missing_or_damaged_manifest_or_file_means_a_full_export(
    store: DecisionStore, tmp_path: Path, damage: Any, reason: str
) -> None:
    _decide_on_days(store, range(2), customers=2)
    lake = tmp_path / "lake"
    store.export(lake)
    damage(lake)
    repaired = store.export(lake)
    assert repaired.full and reason in repaired.reason
    assert repaired.days["deliveries"] == ("2026-11-02", "2026-11-03")
    _same_as_a_full_export(store, lake, tmp_path)


def test_another_log_or_the_one_file_layout_in_the_folder_means_a_full_export(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "deliveries.parquet").write_bytes(b"old layout")
    with DecisionStore.open(tmp_path / "a.sqlite") as one:
        _decide_on_days(one, range(3), customers=2)
        assert one.export(lake).full
    assert not (lake / "deliveries.parquet").exists()
    with DecisionStore.open(tmp_path / "b.sqlite") as other:
        _decide_on_days(other, range(5, 6), customers=4)  # same rowids, other rows and day
        switched = other.export(lake)
        assert switched.full and "not those exported" in switched.reason
        assert sorted(p.name for p in (lake / "deliveries").iterdir()) == ["2026-11-07.parquet"]
        _same_as_a_full_export(other, lake, tmp_path)
