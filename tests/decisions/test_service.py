"""The decision service over the real decision log: coherence across channels, consent, caps."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from decisions.assignment import is_holdout
from decisions.engine import Catalogue
from decisions.policy import parse_policy
from decisions.service import DecisionRequestError, DecisionService
from decisions.store import DecisionStore
from tests.support.decision_world import NOW, make_facts, make_sales

SALES = Catalogue(make_sales())
POLICY = {
    "placements": {
        "daily_email": {
            "channels": ["email", "web", "app", "call_center"],
            "items": 4,
            "wildcard_slots": 1,
            "subject": "s",
        },
        "home_hero": {"channels": ["web", "app"], "kind": "display", "items": 3},
    },
    "templates": {"s": {"text": "Hi {{ first_name }}", "fallbacks": {"first_name": "there"}}},
    "caps": [
        {"name": "email_daily", "channels": ["email"], "max": 1, "window": "24h"},
        {"name": "messages_weekly", "channels": ["email", "sms", "push"], "max": 3, "window": "7d"},
    ],
    "holdout": {"share": 0.1},
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DecisionStore]:
    with DecisionStore.open(tmp_path / "decisions" / "decisions.sqlite") as opened:
        yield opened


@pytest.fixture
def service(store: DecisionStore) -> DecisionService:
    return DecisionService(parse_policy(POLICY), store)


def _personal_customer(service: DecisionService, start: int = 0) -> str:
    """A customer id outside the holdout."""
    i = start
    while is_holdout(service.assignment_key, f"C{i}", 0.1):
        i += 1
    return f"C{i}"


def test_the_same_decision_on_every_channel(service: DecisionService) -> None:
    facts = make_facts(_personal_customer(service))
    email = service.decide(facts, "email", "daily_email", NOW, sales=SALES)
    web = service.decide(facts, "web", "daily_email", NOW + timedelta(hours=3), sales=SALES)
    call = service.decide(
        facts, "call_center", "daily_email", NOW + timedelta(hours=5), sales=SALES
    )
    assert email.send and web.send and call.send
    for other in (web, call):
        assert other.decision_id == email.decision_id
        assert other.items == email.items
        assert other.theme == email.theme
        assert other.subject == email.subject
    assert service.store.recent({facts.customer_id}, 5)[0].decision_id == email.decision_id


def test_the_site_first_then_the_batch_email_agree(service: DecisionService) -> None:
    facts = make_facts(_personal_customer(service))
    web = service.decide(facts, "web", "daily_email", NOW, sales=SALES)
    [email] = service.decide_many([facts], "email", "daily_email", NOW, sales=SALES)
    assert email.decision_id == web.decision_id and email.items == web.items
    assert email.send


def test_a_repeated_request_is_idempotent(service: DecisionService) -> None:
    facts = make_facts(_personal_customer(service))
    first = service.decide(facts, "email", "daily_email", NOW, sales=SALES)
    again = service.decide(facts, "email", "daily_email", NOW + timedelta(minutes=5), sales=SALES)
    assert again.send == first.send and again.reasons == first.reasons
    assert again.decision_id == first.decision_id


@pytest.mark.parametrize(
    ("consent", "reason"), [(None, "consent:missing:email"), (False, "consent:denied:email")]
)
def test_no_consent_means_no_send(
    service: DecisionService, consent: bool | None, reason: str
) -> None:
    facts = make_facts(_personal_customer(service), consents={"email": consent})
    decision = service.decide(facts, "email", "daily_email", NOW, sales=SALES)
    assert not decision.send
    assert reason in decision.reasons
    # The refusal is logged, and the site still shows the decision.
    assert service.store.recent({facts.customer_id}, 1)[0].reasons == decision.reasons
    web = service.decide(facts, "web", "daily_email", NOW, sales=SALES)
    assert web.send and web.decision_id == decision.decision_id


def test_no_address_refuses_before_anything_else(service: DecisionService) -> None:
    display = frozenset({"web", "app", "call_center"})
    facts = make_facts(_personal_customer(service), reachable=display)  # consent, no address
    email = service.decide(facts, "email", "daily_email", NOW, sales=SALES)
    assert not email.send and email.reasons[0] == "no_address:email"
    assert service.store.recent({facts.customer_id}, 1)[0].reasons == email.reasons  # logged
    # the site gets the period's real choice, without the e-mail's verdict
    web = service.decide(facts, "web", "daily_email", NOW, sales=SALES)
    assert web.send and web.items and web.decision_id == email.decision_id
    assert not any(r.startswith(("no_address:", "consent:")) for r in web.reasons)
    # the holdout too: the missing address is named first
    held = next(f"H{i}" for i in range(1000) if is_holdout(service.assignment_key, f"H{i}", 0.1))
    held_email = service.decide(
        make_facts(held, reachable=display), "email", "daily_email", NOW, sales=SALES
    )
    assert held_email.reasons[:2] == ("no_address:email", "holdout")


def test_the_batch_refuses_the_unreachable_without_ranking_or_logging(
    service: DecisionService,
) -> None:
    ids = [_personal_customer(service, start) for start in (0, 100, 200, 300, 400)]
    service.store.record_consent(ids[4], "email", False, NOW - timedelta(days=1), "test")
    customers = [
        make_facts(ids[0]),
        make_facts(ids[1], consents={"email": None}),
        make_facts(ids[2], consents={"email": False}),
        make_facts(ids[3], reachable=frozenset({"web"})),
        make_facts(ids[4]),  # consent in the facts, withdrawn in the log since
    ]
    decisions = service.decide_many(customers, "email", "daily_email", NOW, sales=SALES)
    assert [d.customer_id for d in decisions] == ids  # one result per customer, in order
    assert decisions[0].send and decisions[0].items
    assert [d.reasons for d in decisions[1:]] == [
        ("consent:missing:email",),
        ("consent:denied:email",),
        ("no_address:email",),
        ("consent:withdrawn:email",),
    ]
    assert not any(d.send or d.items for d in decisions[1:])
    # nothing stored for the refused: a choice without items would be adopted by the site
    counts = service.store.counts()
    assert counts["choices"] == 1 and counts["deliveries"] == 1
    for facts, refused in zip(customers[1:], decisions[1:], strict=True):
        web = service.decide(facts, "web", "daily_email", NOW, sales=SALES)
        assert web.send and web.items and web.decision_id == refused.decision_id
    # a second batch in the period: the same answers, nothing logged twice
    before = service.store.counts()["deliveries"]
    again = service.decide_many(customers, "email", "daily_email", NOW, sales=SALES)
    assert [(d.decision_id, d.send, d.reasons) for d in again] == [
        (d.decision_id, d.send, d.reasons) for d in decisions
    ]
    assert service.store.counts()["deliveries"] == before


def test_a_placement_only_one_channel_asks_for_refuses_without_ranking(
    store: DecisionStore,
) -> None:
    policy = parse_policy(
        {**POLICY, "placements": {"sms_only": {"channels": ["sms"], "items": 2, "subject": "s"}}}
    )
    service = DecisionService(policy, store)
    facts = make_facts(_personal_customer(service))  # no sms consent recorded
    decision = service.decide(facts, "sms", "sms_only", NOW, sales=SALES)
    assert not decision.send and decision.reasons == ("consent:missing:sms",)
    assert decision.items == () and not service._engines  # no engine was even built
    assert store.recent({facts.customer_id}, 1)[0].reasons == decision.reasons  # logged


def test_an_unsubscribe_takes_effect_immediately(service: DecisionService) -> None:
    facts = make_facts(_personal_customer(service))
    service.store.record_consent(
        facts.customer_id, "email", False, NOW - timedelta(minutes=1), "test"
    )
    decision = service.decide(facts, "email", "daily_email", NOW, sales=SALES)
    assert not decision.send
    assert "consent:withdrawn:email" in decision.reasons


def test_caps_hold_over_a_sliding_window(service: DecisionService) -> None:
    sales = make_sales(days=5)
    facts = make_facts(_personal_customer(service))
    assert service.decide(facts, "email", "daily_email", NOW, sales=sales).send
    # The next period starts at 14:00 tomorrow, but 23 hours after a send the 24h cap holds.
    tomorrow = service.decide(facts, "email", "daily_email", NOW + timedelta(hours=23), sales=sales)
    assert not tomorrow.send and "cap:email_daily" in tomorrow.reasons
    later = service.decide(facts, "email", "daily_email", NOW + timedelta(days=2), sales=sales)
    assert later.send


def test_caps_count_alias_ids(service: DecisionService) -> None:
    old = _personal_customer(service)
    service.decide(make_facts(old), "email", "daily_email", NOW, sales=SALES)
    merged = make_facts(
        _personal_customer(service, 1000), assignment_id=old, alias_ids=frozenset({old})
    )
    decision = service.decide(merged, "email", "daily_email", NOW + timedelta(hours=1), sales=SALES)
    assert not decision.send and "cap:email_daily" in decision.reasons


def test_the_holdout_gets_no_message(service: DecisionService) -> None:
    held = next(f"H{i}" for i in range(1000) if is_holdout(service.assignment_key, f"H{i}", 0.1))
    facts = make_facts(held)
    email = service.decide(facts, "email", "daily_email", NOW, sales=SALES)
    assert not email.send and "holdout" in email.reasons and email.is_holdout
    web = service.decide(facts, "web", "daily_email", NOW, sales=SALES)
    assert web.send and web.is_holdout and web.items == email.items


def test_unknown_placement_or_channel_names_the_known_ones(service: DecisionService) -> None:
    facts = make_facts()
    with pytest.raises(DecisionRequestError, match="known: daily_email, home_hero"):
        service.decide(facts, "email", "nope", NOW, sales=SALES)
    with pytest.raises(DecisionRequestError, match="its channels: web, app"):
        service.decide(facts, "email", "home_hero", NOW, sales=SALES)


def test_concurrent_channels_never_exceed_a_cap(tmp_path: Path) -> None:
    """Several threads (each its own store, as processes would) ask for one person at once."""
    policy = parse_policy(
        {
            **POLICY,
            "placements": {
                name: {**spec, "channels": ["email", "sms", "push", "web"], "kind": "message"}
                for name, spec in {
                    "a": POLICY["placements"]["daily_email"],
                    "b": {"items": 3},
                }.items()
            },
            "caps": [
                {
                    "name": "messages_day",
                    "channels": ["email", "sms", "push"],
                    "max": 2,
                    "window": "24h",
                }
            ],
            "holdout": {"share": 0.0},
        }
    )
    path = tmp_path / "decisions.sqlite"
    facts = make_facts(consents={"email": True, "sms": True, "push": True})
    results = []
    lock = threading.Lock()

    def ask(channel: str, placement: str) -> None:
        with DecisionStore.open(path) as own:
            decision = DecisionService(policy, own).decide(
                facts, channel, placement, NOW, sales=SALES
            )
        with lock:
            results.append(decision)

    threads = [
        threading.Thread(target=ask, args=(channel, placement))
        for channel in ("email", "sms", "push", "web")
        for placement in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = [d for d in results if d.send and d.channel != "web"]
    assert len(sent) == 2
    assert len({d.decision_id for d in results if d.placement == "a"}) == 1


def test_the_batch_decides_for_many_customers(service: DecisionService) -> None:
    customers = [make_facts(f"B{i:05d}", seed=i) for i in range(2000)]
    start = time.perf_counter()
    decisions = service.decide_many(customers, "email", "daily_email", NOW, sales=SALES)
    elapsed = time.perf_counter() - start
    assert len(decisions) == len(customers)
    held = sum(d.is_holdout for d in decisions)
    assert 100 < held < 320
    assert all(not d.send for d in decisions if d.is_holdout)
    assert all(d.send for d in decisions if not d.is_holdout)
    again = service.decide_many(customers[:10], "email", "daily_email", NOW, sales=SALES)
    assert [d.decision_id for d in again] == [d.decision_id for d in decisions[:10]]
    assert [d.send for d in again] == [d.send for d in decisions[:10]]
    assert elapsed < 10, f"{elapsed:.1f} s for 2,000 customers"


def test_a_grant_stated_after_a_withdrawal_lifts_it_on_every_path(
    service: DecisionService,
) -> None:
    """An unsubscribe in the log, then a re-subscription the batch has seen since (the facts'
    grant is newer): the customer hears from us again, on the single and the batch path. A
    grant older than the withdrawal changes nothing."""
    again, still = (_personal_customer(service, start) for start in (0, 100))
    for customer in (again, still):
        service.store.record_consent(customer, "email", False, NOW - timedelta(days=2), "test")
    resubscribed = make_facts(again, consent_changed_at={"email": NOW - timedelta(days=1)})
    stale = make_facts(still, consent_changed_at={"email": NOW - timedelta(days=3)})
    assert service.decide(resubscribed, "email", "daily_email", NOW, sales=SALES).send
    refused = service.decide(stale, "email", "daily_email", NOW, sales=SALES)
    assert not refused.send and "consent:withdrawn:email" in refused.reasons
    # the batch, the next day (the email cap of today is used by the send above)
    tomorrow = NOW + timedelta(days=1)
    sales = make_sales(days=3)
    batch = service.decide_many(
        [resubscribed, stale], "email", "daily_email", tomorrow, sales=sales
    )
    assert batch[0].send, batch[0].reasons
    assert batch[1].reasons == ("consent:withdrawn:email",)
