"""The decision service every channel asks: one answer per customer, placement and period.

``decide`` is what the API's ``decide`` mutation, the Dagster batch and a simulation call. It
keeps channels coherent (the choice stored for the period is reused, so the call center sees
what the email said), checks consent at decision time (no consent recorded means no message)
and leaves the atomic part (store the choice once, refuse a withdrawn channel, count caps over
sliding windows across channels and alias ids, log the delivery) to the store, in one
transaction. Every outcome of ``decide``, a refusal included, is logged.

A message channel that cannot carry a message to the customer (no address for it, consent not
given, a withdrawal in the log) is known before ranking anything. The batch refuses those
customers without running the engine and without logging: a stored choice is what every
channel of the period adopts, and an item-less one stored by an email refusal would leave the
site with nothing to show (three in four customers of the sample world cannot get email, and
ranking them was most of the batch's time). ``decide`` still logs its refusals, so it ranks
unless a choice is stored already or no other channel can ask for the placement.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from decisions.assignment import assign
from decisions.engine import Catalogue, Engine, decision_id, for_channel, period_bounds
from decisions.policy import DecisionsPolicy, policy_version
from decisions.types import (
    MESSAGE_CHANNELS,
    CapRule,
    CustomerFacts,
    Decision,
    Engagement,
    Sale,
    TriggerItem,
)

#: How far back the decision log's sends, opens and clicks shape the adaptive frequency cap.
ENGAGEMENT_LOOKBACK = timedelta(days=90)


class DecisionRequestError(ValueError):
    """A request the caller must fix (unknown placement or channel); says what is known."""


class _Store(Protocol):
    """The parts of ``decisions.store.DecisionStore`` the service uses."""

    def assignment_key(self) -> bytes: ...

    def find_choice(
        self, customer_id: str, placement: str, period_start: datetime
    ) -> Decision | None: ...

    def deliver(
        self,
        decision: Decision,
        *,
        caps: Sequence[CapRule],
        customer_ids: Any,
        now: datetime,
        consent_required: bool | datetime,
    ) -> Decision: ...

    def deliver_many(self, items: Any, now: datetime) -> list[Decision]: ...

    def engagement(self, customer_ids: Any, since: datetime) -> Engagement: ...

    def engagement_many(self, groups: Any, since: datetime) -> dict[str, Engagement]: ...

    def withdrawn_many(self, groups: Any, channel: str, granted_since: Any = None) -> set[str]: ...

    def record_consent(
        self, customer_id: str, channel: str, granted: bool, at: datetime, source: str
    ) -> None: ...


def person_ids(facts: CustomerFacts) -> frozenset[str]:
    """Every id whose sends and withdrawals count for this person."""
    return frozenset({facts.customer_id, *facts.alias_ids})


def refusal(facts: CustomerFacts, channel: str) -> str | None:
    """Why ``channel`` cannot carry a message to the customer, from the facts alone; else None.

    No address comes first (``no_address:<channel>``: consent cannot send to nowhere), then
    consent: True is needed, None (never asked) and False refuse. Display channels: None.
    """
    if channel not in MESSAGE_CHANNELS:
        return None
    if channel not in facts.reachable:
        return f"no_address:{channel}"
    consent = facts.consents.get(channel)
    if consent is True:
        return None
    return f"consent:{'denied' if consent is False else 'missing'}:{channel}"


def consent_basis(facts: CustomerFacts, channel: str) -> bool | datetime:
    """What the store's consent check needs: False for a display channel, else True, or the
    time of the facts' grant so a withdrawal in the log older than it (a re-subscription the
    batch has seen since) no longer refuses."""
    if channel not in MESSAGE_CHANNELS:
        return False
    if facts.consents.get(channel) is True and channel in facts.consent_changed_at:
        return facts.consent_changed_at[channel]
    return True


def refused(decision: Decision, reason: str) -> Decision:
    """``decision`` not sent because of ``reason``, which is named before any other."""
    rest = tuple(r for r in decision.reasons if r != reason)
    return replace(decision, send=False, reasons=(reason, *rest))


class DecisionService:
    """Decisions for every channel over one policy and one decision log."""

    def __init__(
        self,
        policy: DecisionsPolicy,
        store: _Store,
        assignment_key: bytes | None = None,
        *,
        engine_cache: int = 4,
    ) -> None:
        self.policy = policy
        self.store = store
        if assignment_key is None:
            assignment_key = store.assignment_key()
        self.assignment_key = assignment_key
        self.version = policy_version(policy)
        self._engines: OrderedDict[int, tuple[object, Engine]] = OrderedDict()
        self._engine_cache = max(1, engine_cache)

    def engine(self, sales: Catalogue | Sequence[Sale]) -> Engine:
        """The policy compiled against ``sales`` (cached by the object: pass the same list)."""
        key = id(sales)
        cached = self._engines.get(key)
        if cached is not None and cached[0] is sales:
            self._engines.move_to_end(key)
            return cached[1]
        engine = Engine(self.policy, sales, self.assignment_key, version=self.version)
        self._engines[key] = (sales, engine)  # holding ``sales`` keeps its id unique
        while len(self._engines) > self._engine_cache:
            self._engines.popitem(last=False)
        return engine

    def check_request(self, channel: str, placement: str, *, trigger: bool = False) -> None:
        """DecisionRequestError unless the placement exists and ``channel`` may ask for it.

        Placements of ``kind: trigger`` are decided when a real-time trigger fires (it brings
        the items), never asked for by a channel; the others never by a trigger.
        """
        spec = self.policy.placements.get(placement)
        if spec is None:
            known = ", ".join(sorted(self.policy.placements))
            raise DecisionRequestError(f"unknown placement '{placement}' (known: {known})")
        if (spec.kind == "trigger") != trigger:
            raise DecisionRequestError(
                f"placement '{placement}' is sent by the real-time triggers (realtime.triggers)"
                if spec.kind == "trigger"
                else f"placement '{placement}' is not a trigger placement (kind: {spec.kind})"
            )
        if channel not in spec.channels:
            raise DecisionRequestError(
                f"channel '{channel}' cannot ask for placement '{placement}' "
                f"(its channels: {', '.join(spec.channels)})"
            )

    def refusal_decision(
        self, facts: CustomerFacts, channel: str, placement: str, now: datetime, reason: str
    ) -> Decision:
        """A refusal decided without ranking: no items, the period's decision id, the arm.

        The holdout and experiment assignment (a keyed hash, no ranking) is kept so that counts
        by arm stay complete. Nothing is stored here.
        """
        spec = self.policy.placements[placement]
        period_start, expires_at = period_bounds(now, spec, self.policy.period_start_hour)
        experiment, _ = assign(self.policy, self.assignment_key, facts.assignment_id, placement)
        return Decision(
            decision_id=decision_id(facts.customer_id, placement, period_start),
            customer_id=facts.customer_id,
            channel=channel,
            placement=placement,
            policy_version=self.version,
            decided_at=now,
            expires_at=expires_at,
            send=False,
            reasons=(reason,),
            theme=None,
            items=(),
            subject=None,
            blocks={},
            subject_masked=None,
            blocks_masked={},
            experiment=experiment,
            is_holdout=experiment is not None and experiment.is_holdout,
        )

    def decide(
        self,
        facts: CustomerFacts,
        channel: str,
        placement: str,
        now: datetime,
        context: Mapping[str, Any] | None = None,
        *,
        sales: Catalogue | Sequence[Sale],
    ) -> Decision:
        """Decide (or reuse the period's decision) for one customer on one channel, and log it.

        A refusal known from the facts (``no_address:``, ``consent:``) is logged with the
        period's choice, which is ranked as usual when none is stored yet: the site asking later
        must find a real choice to show. Only a placement no other channel can ask for is
        refused without ranking (its item-less choice can be adopted by no one).
        """
        self.check_request(channel, placement)
        spec = self.policy.placements[placement]
        period_start, _ = period_bounds(now, spec, self.policy.period_start_hour)
        reason = refusal(facts, channel)
        stored = self.store.find_choice(facts.customer_id, placement, period_start)
        if stored is not None:
            decision = for_channel(stored, channel)
        elif reason is not None and set(spec.channels) <= {channel}:
            decision = self.refusal_decision(facts, channel, placement, now, reason)
        else:
            decision = self.engine(sales).choose(
                facts, placement, now, channel=channel, context=context
            )
        if reason is not None:
            decision = refused(decision, reason)
        return self._deliver(decision, facts, now, sales)

    def _deliver(
        self,
        decision: Decision,
        facts: CustomerFacts,
        now: datetime,
        sales: Catalogue | Sequence[Sale],
    ) -> Decision:
        """Log ``decision`` with the caps a send must respect (the engine is built only for a
        send: a refusal needs none) and the person's consent basis, atomically in the store."""
        channel, placement = decision.channel, decision.placement
        ids = person_ids(facts)
        caps: list[CapRule] = []
        if decision.send:
            engagement = None
            if self.policy.frequency.limits(channel, placement):
                engagement = self.store.engagement(ids, since=now - ENGAGEMENT_LOOKBACK)
            caps = self.engine(sales).caps_for(channel, facts, engagement, placement)
        return self.store.deliver(
            decision,
            caps=caps,
            customer_ids=ids,
            now=now,
            consent_required=consent_basis(facts, channel),
        )

    def decide_trigger(
        self,
        facts: CustomerFacts,
        channel: str,
        placement: str,
        now: datetime,
        *,
        trigger: str,
        items: Sequence[TriggerItem],
        sales: Catalogue | Sequence[Sale],
    ) -> Decision:
        """Decide and log the message a real-time trigger asks for, on one channel.

        The same gates as every message: address and consent (missing means no), a withdrawal
        in the log, the holdout, post-purchase suppression of the items, and the caps over
        sliding windows across channels (a trigger's email counts against the daily email's
        cap and the other way round). Idempotent per (customer, placement, period): a trigger
        fired again (a replay after a crash, or a second price drop within the period) gets the
        stored decision and delivery back, so it is never sent twice with different keys.
        """
        self.check_request(channel, placement, trigger=True)
        spec = self.policy.placements[placement]
        period_start, _ = period_bounds(now, spec, self.policy.period_start_hour)
        stored = self.store.find_choice(facts.customer_id, placement, period_start)
        if stored is not None:
            decision = for_channel(stored, channel)
        else:
            decision = self.engine(sales).choose_trigger(
                facts, placement, now, channel=channel, trigger=trigger, items=items
            )
        reason = refusal(facts, channel)
        if reason is not None:
            decision = refused(decision, reason)
        return self._deliver(decision, facts, now, sales)

    def decide_many(
        self,
        customers: Sequence[CustomerFacts],
        channel: str,
        placement: str,
        now: datetime,
        *,
        sales: Catalogue | Sequence[Sale],
    ) -> list[Decision]:
        """The batch: decide for many customers on one channel; one result per customer, in order.

        Customers the channel cannot reach (``no_address:``, ``consent:missing``/``denied``, or
        ``consent:withdrawn`` in the log) are refused before ranking and NOT logged: their result
        (``refusal_decision``: send False, that one reason, no items) is for counting only. No
        choice is stored for them, so a site visit later in the period still gets a real,
        personalized choice, and the email sent to no one leaves no trace in the log's
        measurement. The others are ranked and logged in chunked transactions; a choice already
        stored for the period (a customer who visited the site first) is adopted by the store,
        so the email matches what the site showed.
        """
        self.check_request(channel, placement)
        consent_required = channel in MESSAGE_CHANNELS
        reasons = [refusal(facts, channel) for facts in customers]
        if consent_required:
            groups = {
                facts.customer_id: person_ids(facts)
                for facts, reason in zip(customers, reasons, strict=True)
                if reason is None
            }
            since = {
                facts.customer_id: basis
                for facts in customers
                if isinstance(basis := consent_basis(facts, channel), datetime)
            }
            withdrawn = self.store.withdrawn_many(groups, channel, since) if groups else set()
            if withdrawn:
                reasons = [
                    f"consent:withdrawn:{channel}"
                    if reason is None and facts.customer_id in withdrawn
                    else reason
                    for facts, reason in zip(customers, reasons, strict=True)
                ]
        results: list[Decision | None] = [
            None
            if reason is None
            else self.refusal_decision(facts, channel, placement, now, reason)
            for facts, reason in zip(customers, reasons, strict=True)
        ]
        chosen = [i for i, reason in enumerate(reasons) if reason is None]
        if chosen:
            engine = self.engine(sales)
            engagement: dict[str, Engagement] = {}
            if self.policy.frequency.limits(channel, placement):
                groups = {customers[i].customer_id: person_ids(customers[i]) for i in chosen}
                engagement = self.store.engagement_many(groups, since=now - ENGAGEMENT_LOOKBACK)
            items: list[tuple[Decision, Sequence[CapRule], frozenset[str], bool]] = []
            for i in chosen:
                facts = customers[i]
                decision = engine.choose(facts, placement, now, channel=channel)
                caps = (
                    engine.caps_for(channel, facts, engagement.get(facts.customer_id), placement)
                    if decision.send
                    else []
                )
                required = consent_basis(facts, channel) if consent_required else False
                items.append((decision, caps, person_ids(facts), required))
            for i, delivered in zip(chosen, self.store.deliver_many(items, now), strict=True):
                results[i] = delivered
        done = [decision for decision in results if decision is not None]
        assert len(done) == len(customers)  # every customer was refused or delivered
        return done
