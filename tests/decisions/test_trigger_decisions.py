"""Decisions for real-time triggers: the same gates as every message, idempotent per period."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from decisions.assignment import is_holdout
from decisions.engine import Catalogue
from decisions.policy import PolicyError, parse_policy
from decisions.service import DecisionRequestError, DecisionService
from decisions.store import DecisionStore
from decisions.types import TriggerItem
from tests.support.decision_world import NOW, make_facts, make_sales

SALES = Catalogue(make_sales())
POLICY = {
    "placements": {
        "daily_email": {"channels": ["email", "web"], "items": 4, "subject": "daily"},
        "price_drop": {
            "channels": ["email", "sms"],
            "kind": "trigger",
            "items": 1,
            "subject": "drop",
            "period": "1d",
        },
    },
    "templates": {
        "daily": {"text": "Hi {{ first_name }}"},
        "drop": {
            "text": "{{ first_name }}, {{ product_name }} is now ${{ price }} "
            "({{ price_drop_percent }}% off)",
            "fallbacks": {"first_name": "Good news"},
        },
    },
    "caps": [{"name": "email_daily", "channels": ["email"], "max": 1, "window": "24h"}],
    "suppression": [{"categories": ["electronics"], "days": 180}],
    "holdout": {"share": 0.1},
}
TV = TriggerItem("P1", "Sharp TV", "electronics", "Sharp", price=300.0, previous_price=400.0)
SHOE = TriggerItem("P2", "Trail shoe", "footwear", "Acme", price=60.0, previous_price=80.0)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[DecisionService]:
    with DecisionStore.open(tmp_path / "decisions.sqlite") as store:
        yield DecisionService(parse_policy(POLICY), store)


def _outside_holdout(service: DecisionService, start: int = 0) -> str:
    i = start
    while is_holdout(service.assignment_key, f"C{i}", 0.1):
        i += 1
    return f"C{i}"


def test_a_trigger_message_names_its_product_and_is_logged_once(
    service: DecisionService,
) -> None:
    facts = make_facts(_outside_holdout(service))
    first = service.decide_trigger(
        facts, "email", "price_drop", NOW, trigger="price_drop", items=[SHOE], sales=SALES
    )
    assert first.send, first.reasons
    assert first.subject == "Ada, Trail shoe is now $60.00 (25% off)"
    assert first.subject_masked == "Good news, Trail shoe is now $60.00 (25% off)"
    assert [i.product_id for i in first.items] == ["P2"]
    assert "trigger:price_drop" in first.items[0].reasons
    # fired again within the period (a replay, or another drop): the same decision, one send
    again = service.decide_trigger(
        facts,
        "email",
        "price_drop",
        NOW + timedelta(hours=2),
        trigger="price_drop",
        items=[TV],
        sales=SALES,
    )
    assert again.decision_id == first.decision_id and again.send
    assert [i.product_id for i in again.items] == ["P2"]
    assert service.store.counts()["deliveries"] == 1


def test_consent_caps_and_suppression_hold_for_triggers(service: DecisionService) -> None:
    cid = _outside_holdout(service)
    no_consent = make_facts(cid, consents={"email": None})
    refused = service.decide_trigger(
        no_consent, "email", "price_drop", NOW, trigger="t", items=[SHOE], sales=SALES
    )
    assert not refused.send and refused.reasons[0] == "consent:missing:email"

    other = _outside_holdout(service, int(cid[1:]) + 1)
    bought_tv = make_facts(
        other, category_last_purchased_at={"electronics": NOW - timedelta(days=3)}
    )
    suppressed = service.decide_trigger(
        bought_tv, "email", "price_drop", NOW, trigger="t", items=[TV], sales=SALES
    )
    assert not suppressed.send
    assert {k.lower(): n for k, n in suppressed.excluded.items()} == {
        "suppressed:post_purchase:electronics": 1
    }
    assert "no_eligible_items" in suppressed.reasons

    # the daily email used today's email cap: the trigger's email is capped, across placements
    third = _outside_holdout(service, int(other[1:]) + 1)
    facts = make_facts(third)
    daily = service.decide(facts, "email", "daily_email", NOW, sales=SALES)
    assert daily.send
    capped = service.decide_trigger(
        facts,
        "email",
        "price_drop",
        NOW + timedelta(minutes=5),
        trigger="t",
        items=[SHOE],
        sales=SALES,
    )
    assert not capped.send and "cap:email_daily" in capped.reasons


def test_the_holdout_gets_no_trigger_message(service: DecisionService) -> None:
    i = 0
    while not is_holdout(service.assignment_key, f"C{i}", 0.1):
        i += 1
    decision = service.decide_trigger(
        make_facts(f"C{i}"), "email", "price_drop", NOW, trigger="t", items=[SHOE], sales=SALES
    )
    assert not decision.send and decision.is_holdout and "holdout" in decision.reasons


def test_trigger_and_asked_placements_do_not_mix(service: DecisionService) -> None:
    facts = make_facts(_outside_holdout(service))
    with pytest.raises(DecisionRequestError, match="sent by the real-time triggers"):
        service.decide(facts, "email", "price_drop", NOW, sales=SALES)
    with pytest.raises(DecisionRequestError, match="not a trigger placement"):
        service.decide_trigger(
            facts, "email", "daily_email", NOW, trigger="t", items=[SHOE], sales=SALES
        )


def test_a_trigger_placement_has_no_wildcards() -> None:
    bad = {**POLICY, "placements": {**POLICY["placements"]}}
    bad["placements"]["price_drop"] = {**POLICY["placements"]["price_drop"], "wildcard_slots": 1}
    with pytest.raises(PolicyError, match=r"placements\.price_drop\.wildcard_slots"):
        parse_policy(bad)


def test_caps_may_name_their_placements(tmp_path: Path) -> None:
    """One promotional email a day and, separately, one triggered email a day; a weekly cap
    over both. The daily email does not use up the trigger's allowance, nor the other way."""
    scoped = {
        **POLICY,
        "caps": [
            {
                "name": "promo_daily",
                "channels": ["email"],
                "max": 1,
                "window": "24h",
                "placements": ["daily_email"],
            },
            {
                "name": "triggered_daily",
                "channels": ["email"],
                "max": 1,
                "window": "24h",
                "placements": ["price_drop"],
            },
            {"name": "weekly", "channels": ["email"], "max": 2, "window": "7d"},
        ],
        "frequency": {"placements": ["daily_email"]},
        "placements": {
            **POLICY["placements"],
            "price_drop": {**POLICY["placements"]["price_drop"], "period": "1h"},
        },
    }
    with DecisionStore.open(tmp_path / "decisions.sqlite") as store:
        service = DecisionService(parse_policy(scoped), store)
        facts = make_facts(_outside_holdout(service))
        assert service.decide(facts, "email", "daily_email", NOW, sales=SALES).send
        drop = service.decide_trigger(
            facts,
            "email",
            "price_drop",
            NOW + timedelta(minutes=5),
            trigger="t",
            items=[SHOE],
            sales=SALES,
        )
        assert drop.send, drop.reasons
        # the next hour's drop is its own decision, and the triggered cap holds it back
        again = service.decide_trigger(
            facts,
            "email",
            "price_drop",
            NOW + timedelta(hours=3),
            trigger="t",
            items=[SHOE],
            sales=SALES,
        )
        assert again.decision_id != drop.decision_id
        assert not again.send and "cap:triggered_daily" in again.reasons
        assert "cap:promo_daily" not in again.reasons
        # the next day: the weekly cap counts both placements' sends (2 of 2 used)
        day2 = service.decide(facts, "email", "daily_email", NOW + timedelta(days=1), sales=SALES)
        assert not day2.send and "cap:weekly" in day2.reasons
        assert "cap:promo_daily" not in day2.reasons


def test_a_cap_naming_an_unknown_placement_fails_at_start() -> None:
    bad = {
        **POLICY,
        "caps": [
            {"name": "c", "channels": ["email"], "max": 1, "window": "1d", "placements": ["nope"]}
        ],
    }
    with pytest.raises(PolicyError, match=r"caps\.0\.placements\.0: unknown placement 'nope'"):
        parse_policy(bad)
