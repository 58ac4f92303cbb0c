"""Choosing what one customer sees: a pure function of facts, running sales and the policy.

Order of the rules, each leaving its trace in the decision (reasons, exclusion counts):

1. **Assignment**: the holdout gets the non-personalized fallback (the biggest discounts running)
   and no message; otherwise the placement's experiment arm may change the subject, the number of
   wildcard slots, the exploration share or the novelty weight.
2. **Eligibility**: sales not running now are out; an offer rule that matches a sale admits only
   the customers in its segments and trait ranges.
3. **Timing**: a durable category bought within its suppression window is left out
   (``suppressed:post_purchase:<category>``); consumables are not listed, so never suppressed.
4. **Ranking**: an item's score adds category affinity, the recommender's score, brand fit or
   novelty (a brand never bought), its discount (weighted more for customers unlikely to buy at
   full price) and the last viewed category.
5. **One theme per message**: candidate themes are categories and sale themes; a theme scores the
   mean of its best ``items - wildcard_slots`` items. With probability ``exploration.share`` the
   theme is drawn uniformly among the eligible ones, otherwise the best is taken; its best items
   fill the slots. Each item's ``propensity`` is the probability the policy would have shown it
   (summed over the themes that would have), the input of inverse-propensity estimates.
6. **Wildcards**: ``wildcard_slots`` items from categories outside the customer's known taste
   (their top categories), drawn by softmax of score (or uniformly); the propensity logged is the
   draw's probability given the theme items.

Randomness is derived from sha256 of the decision key (customer, placement, period) and a seed,
so a retry reproduces the decision exactly. Everything that depends only on the sales and the
policy (arrays of items, theme membership, offer masks) is built once per batch in
:class:`Engine`; per customer the work is a handful of numpy operations over ~400 items.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

from decisions.assignment import assign
from decisions.policy import (
    ADAPTIVE_CAP,
    ArmPolicy,
    DecisionsPolicy,
    FrequencyPolicy,
    OfferRule,
    Placement,
    duration_seconds,
    normalize_category,
    policy_version,
)
from decisions.templates import render, uses_pii
from decisions.types import (
    MESSAGE_CHANNELS,
    CapRule,
    CustomerFacts,
    Decision,
    DecisionItem,
    Engagement,
    Sale,
    TriggerItem,
)

_DAY = 86400.0

#: Reasons a decision carries for the choice (shared by every channel); delivery reasons (consent,
#: caps, holdout on a message channel) are added per channel.
HOLDOUT_REASON = "holdout"
NO_ITEMS_REASON = "no_eligible_items"


@lru_cache(maxsize=4096)
def _category_key(name: str) -> str:
    return normalize_category(name)


def theme_title(theme: str) -> str:
    """``sale_theme:black-friday`` -> ``Black Friday``; ``category:Books`` -> ``Books``."""
    kind, _, value = theme.partition(":")
    return value.replace("-", " ").title() if kind == "sale_theme" else value


def period_bounds(
    now: datetime, placement: Placement, start_hour: int
) -> tuple[datetime, datetime]:
    """The period containing ``now``: periods of the placement's length from ``start_hour`` UTC."""
    period = _period_seconds(placement.period)
    anchor = start_hour * 3600.0
    ts = now.timestamp()
    start_ts = anchor + math.floor((ts - anchor) / period) * period
    start = datetime.fromtimestamp(start_ts, tz=UTC)
    return start, start + timedelta(seconds=period)


@lru_cache(maxsize=64)
def _period_seconds(period: str) -> float:
    return duration_seconds(period)


def decision_id(customer_id: str, placement: str, period_start: datetime) -> str:
    """Deterministic id of the decision for (customer, placement, period): retries reproduce it."""
    key = f"{customer_id}|{placement}|{period_start.isoformat()}"
    return "d_" + hashlib.sha256(key.encode()).hexdigest()[:24]


class _Draws:
    """Uniform draws from sha256 of the decision key: cheap, reproducible, independent per key."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._n = 0

    def uniform(self) -> float:
        self._n += 1
        digest = hashlib.blake2b(self._seed + self._n.to_bytes(4, "big"), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64


class Catalogue:
    """The items of a set of sales as arrays, built once per batch (or per day for the API).

    A product on several sales is kept once, on the sale with the largest discount (what the
    customer would pay).
    """

    def __init__(self, sales: Sequence[Sale]) -> None:
        self.sales: tuple[Sale, ...] = tuple(sales)
        best: dict[str, tuple[float, int, int]] = {}
        for s_index, sale in enumerate(self.sales):
            for i_index, item in enumerate(sale.items):
                discount = _discount(item.regular_price, item.sale_price, sale.discount_percent)
                current = best.get(item.product_id)
                if current is None or discount > current[0]:
                    best[item.product_id] = (discount, s_index, i_index)
        rows = sorted(best.items(), key=lambda kv: (kv[1][1], kv[1][2]))
        self.items: list[tuple[Sale, Any]] = [
            (self.sales[s], self.sales[s].items[i]) for _, (_, s, i) in rows
        ]
        n = len(self.items)
        self.product_ids: list[str] = [item.product_id for _, item in self.items]
        self.product_index: dict[str, int] = {p: j for j, p in enumerate(self.product_ids)}
        self.discount = np.array([d for _, (d, _, _) in rows], dtype=np.float64)
        self.starts = np.array([s.starts_at.timestamp() for s, _ in self.items], dtype=np.float64)
        self.ends = np.array([s.ends_at.timestamp() for s, _ in self.items], dtype=np.float64)
        # Categories (by normalized key) and brands (index len(brands) = no brand).
        self.category_names: list[str] = []
        self.category_index: dict[str, int] = {}
        category = np.empty(n, dtype=np.int64)
        brand_names: list[str] = []
        self.brand_index: dict[str, int] = {}
        brand = np.empty(n, dtype=np.int64)
        for j, (_, item) in enumerate(self.items):
            key = _category_key(item.category)
            if key not in self.category_index:
                self.category_index[key] = len(self.category_names)
                self.category_names.append(item.category)
            category[j] = self.category_index[key]
            if item.brand and item.brand not in self.brand_index:
                self.brand_index[item.brand] = len(brand_names)
                brand_names.append(item.brand)
            brand[j] = self.brand_index[item.brand] if item.brand else -1
        self.category = category
        self.n_brands = len(brand_names)
        self.brand = np.where(brand < 0, self.n_brands, brand)
        self.has_brand = brand >= 0
        # Plain lists for the per-item work on the few chosen items (no numpy scalars).
        self.category_list: list[int] = self.category.tolist()
        self.brand_list: list[int] = self.brand.tolist()
        self.discount_percent: list[int] = [round(d * 100) for d in self.discount.tolist()]
        # Themes: every category, every sale theme.
        themes = [f"category:{name}" for name in self.category_names]
        sale_themes = sorted({sale.theme for sale, _ in self.items if sale.theme})
        themes += [f"sale_theme:{t}" for t in sale_themes]
        self.themes: list[str] = themes
        membership = np.zeros((len(themes), n), dtype=bool)
        membership[category, np.arange(n)] = True
        offset = len(self.category_names)
        theme_index = {t: offset + k for k, t in enumerate(sale_themes)}
        for j, (sale, _) in enumerate(self.items):
            if sale.theme:
                membership[theme_index[sale.theme], j] = True
        self.membership = membership
        # Theme -> its item indices, padded with ``n`` (a sentinel scored -1), so one gather
        # and one partition give every theme's best items at once.
        members = [np.flatnonzero(row) for row in membership]
        width = max([1, *(len(m) for m in members)])
        self.theme_items = np.full((len(themes), width), n, dtype=np.int64)
        for g, m in enumerate(members):
            self.theme_items[g, : len(m)] = m
        self.item_themes: list[tuple[int, ...]] = [
            tuple(int(g) for g in np.flatnonzero(membership[:, j])) for j in range(n)
        ]
        #: items by discount, best first (the non-personalized fallback)
        self.by_discount = np.lexsort((np.arange(n), -self.discount))

    def __len__(self) -> int:
        return len(self.items)

    def match(self, rule: OfferRule) -> np.ndarray:
        """Items of the sales an offer rule is about."""
        themes = set(rule.sales.themes)
        categories = {_category_key(c) for c in rule.sales.categories}
        brands = set(rule.sales.brands)
        return np.array(
            [
                (not themes or sale.theme in themes)
                and (not categories or _category_key(item.category) in categories)
                and (not brands or item.brand in brands)
                for sale, item in self.items
            ],
            dtype=bool,
        )


def _discount(regular: float, sale_price: float, percent: float) -> float:
    if regular and regular > 0:
        return max(0.0, min(1.0, 1.0 - sale_price / regular))
    return max(0.0, min(1.0, percent / 100.0 if percent > 1 else percent))


def _float(value: Any, default: float | None = None) -> float | None:
    if value is None or isinstance(value, bool):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(number) else number


def admits(rule: OfferRule, facts: CustomerFacts) -> bool:
    """Whether an offer rule lets this customer see the sales it matches."""
    if rule.segments and not facts.segments.intersection(rule.segments):
        return False
    if rule.exclude_segments and facts.segments.intersection(rule.exclude_segments):
        return False
    for trait, bounds in rule.traits.items():
        value = _float(facts.traits.get(trait))
        if value is None:
            return False
        if bounds.min is not None and value < bounds.min:
            return False
        if bounds.max is not None and value > bounds.max:
            return False
    return True


def adaptive_cap(
    frequency: FrequencyPolicy, engagement: Engagement | None, traits: Mapping[str, Any]
) -> CapRule:
    """The customer's own cap: more sends for the responsive, fewer for those who stopped.

    Evidence is whichever of the decision log (``engagement``) and the 90-day traits has seen
    more sends (they overlap once the log's sends come back as email events, so never summed);
    rates are Beta-smoothed towards the references with ``prior_sends`` pseudo sends.
    """
    trait_sends = _float(traits.get("email_sends_90d"), 0.0) or 0.0
    log_sends = float(engagement.sends) if engagement else 0.0
    if engagement is not None and log_sends >= trait_sends:
        sends, opens, clicks = log_sends, float(engagement.opens), float(engagement.clicks)
    else:
        sends = trait_sends
        opens = (_float(traits.get("open_rate_90d"), 0.0) or 0.0) * sends
        clicks = (_float(traits.get("click_rate_90d"), 0.0) or 0.0) * sends
    low, high = frequency.min_sends, frequency.max_sends
    if sends >= frequency.dormant_after_sends and opens <= 0 and clicks <= 0:
        allowed = low
    else:
        prior = frequency.prior_sends
        open_rate = (opens + frequency.reference_open_rate * prior) / (sends + prior)
        click_rate = (clicks + frequency.reference_click_rate * prior) / (sends + prior)
        receptivity = 0.5 * open_rate / frequency.reference_open_rate + 0.5 * (
            click_rate / frequency.reference_click_rate
        )
        share = min(1.0, max(0.0, (receptivity - 0.25) / 0.75))
        allowed = low + round((high - low) * share)
    channels = frozenset(frequency.channels)
    placements = frozenset(frequency.placements) or None
    return CapRule(ADAPTIVE_CAP, channels, allowed, _period_seconds(frequency.window), placements)


@dataclass(frozen=True)
class _Choice:
    theme: str | None
    items: tuple[DecisionItem, ...]
    reasons: tuple[str, ...]
    excluded: dict[str, int]


class Engine:
    """The policy compiled against a set of sales; ``choose`` decides for one customer."""

    def __init__(
        self,
        policy: DecisionsPolicy,
        sales: Catalogue | Sequence[Sale],
        assignment_key: bytes,
        *,
        version: str | None = None,
    ) -> None:
        self.policy = policy
        self.catalogue = sales if isinstance(sales, Catalogue) else Catalogue(sales)
        self.assignment_key = assignment_key
        self.version = version or policy_version(policy)
        self._offer_masks = [(rule, self.catalogue.match(rule)) for rule in policy.offers]
        self._offer_masks = [(rule, mask) for rule, mask in self._offer_masks if mask.any()]
        # normalized category -> (catalogue category index, display name, days)
        self._suppression: dict[str, tuple[int | None, str, float]] = {}
        for rule in policy.suppression:
            for name in rule.categories:
                key = _category_key(name)
                previous = self._suppression.get(key)
                days = max(rule.days, previous[2]) if previous else rule.days
                index = self.catalogue.category_index.get(key)
                display = self.catalogue.category_names[index] if index is not None else name
                self._suppression[key] = (index, display, days)
        self._running_cache: tuple[float, np.ndarray, int] | None = None
        self._caps: dict[tuple[str, str | None], tuple[CapRule, ...]] = {}
        self._category_items = [
            self.catalogue.category == c for c in range(len(self.catalogue.category_names))
        ]

    def _running(self, ts: float) -> tuple[np.ndarray, int]:
        """Items on sale at ``ts`` (shared, read-only) and how many are not; cached per instant."""
        cached = self._running_cache
        if cached is None or cached[0] != ts:
            mask = (self.catalogue.starts <= ts) & (ts < self.catalogue.ends)
            mask.flags.writeable = False
            cached = (ts, mask, len(mask) - int(mask.sum()))
            self._running_cache = cached
        return cached[1], cached[2]

    # -- caps -------------------------------------------------------------------------------
    def caps_for(
        self,
        channel: str,
        facts: CustomerFacts,
        engagement: Engagement | None,
        placement: str | None = None,
    ) -> list[CapRule]:
        """The caps a delivery on ``channel`` (for ``placement``: caps may name theirs) must
        respect, the adaptive one included."""
        fixed = self._caps.get((channel, placement))
        if fixed is None:
            fixed = self._caps[(channel, placement)] = tuple(
                self.policy.cap_rules(channel, placement)
            )
        rules = list(fixed)
        if self.policy.frequency.limits(channel, placement):
            rules.append(adaptive_cap(self.policy.frequency, engagement, facts.traits))
        return rules

    # -- choice -----------------------------------------------------------------------------
    def choose(
        self,
        facts: CustomerFacts,
        placement: str,
        now: datetime,
        *,
        channel: str,
        context: Mapping[str, Any] | None = None,
        rng_seed: int = 0,
    ) -> Decision:
        """The decision for one customer, placement and channel at ``now`` (nothing is stored)."""
        policy = self.policy
        spec = policy.placement(placement)
        period_start, expires_at = period_bounds(now, spec, policy.period_start_hour)
        did = decision_id(facts.customer_id, placement, period_start)
        experiment, arm = assign(policy, self.assignment_key, facts.assignment_id, placement)
        is_holdout = experiment is not None and experiment.is_holdout
        if is_holdout:
            choice = self._fallback(spec, now, facts)
        else:
            seed = hashlib.sha256(f"{did}|{rng_seed}".encode()).digest()
            choice = self._personal(facts, spec, arm, now, context or {}, _Draws(seed))
        reasons = list(choice.reasons)
        if experiment is not None and not is_holdout:
            reasons.append(f"experiment:{experiment.experiment}:{experiment.arm}")
        send, reasons = _delivery(reasons, is_holdout, bool(choice.items), channel)
        subject, blocks, subject_masked, blocks_masked = self._render(
            spec, arm, facts, choice, context or {}
        )
        decision = Decision(
            decision_id=did,
            customer_id=facts.customer_id,
            channel=channel,
            placement=placement,
            policy_version=self.version,
            decided_at=now,
            expires_at=expires_at,
            send=send,
            reasons=reasons,
            theme=choice.theme,
            items=choice.items,
            subject=subject,
            blocks=blocks,
            subject_masked=subject_masked,
            blocks_masked=blocks_masked,
            experiment=experiment,
            is_holdout=is_holdout,
            excluded=choice.excluded,
        )
        return decision

    def suppressed_category(self, facts: CustomerFacts, category: str | None, ts: float) -> str:
        """``suppressed:post_purchase:<category>`` when the customer bought in ``category``
        within its suppression window before ``ts``; else an empty string."""
        if not category or not self._suppression:
            return ""
        entry = self._suppression.get(_category_key(category))
        if entry is None:
            return ""
        _, display, days = entry
        for name, bought_at in facts.category_last_purchased_at.items():
            recent = (ts - bought_at.timestamp()) < days * _DAY
            if recent and _category_key(name) == _category_key(category):
                return f"suppressed:post_purchase:{display}"
        return ""

    def choose_trigger(
        self,
        facts: CustomerFacts,
        placement: str,
        now: datetime,
        *,
        channel: str,
        trigger: str,
        items: Sequence[TriggerItem],
    ) -> Decision:
        """The decision for a real-time trigger: its items are what fired it (nothing is ranked).

        The rules that protect the customer still hold: the holdout gets no message (so
        triggers' lift is measurable), and an item of a durable category bought within its
        suppression window is left out (no "price drop on a TV" the day after a TV). The
        decision is keyed by (customer, placement, period) like every other: one message per
        trigger placement and period, whatever fires again within it.
        """
        policy = self.policy
        spec = policy.placement(placement)
        period_start, expires_at = period_bounds(now, spec, policy.period_start_hour)
        did = decision_id(facts.customer_id, placement, period_start)
        experiment, arm = assign(policy, self.assignment_key, facts.assignment_id, placement)
        is_holdout = experiment is not None and experiment.is_holdout
        ts = now.timestamp()
        kept: list[TriggerItem] = []
        excluded: dict[str, int] = {}
        for item in items:
            reason = self.suppressed_category(facts, item.category, ts)
            if reason:
                excluded[reason] = excluded.get(reason, 0) + 1
            elif len(kept) < spec.items:
                kept.append(item)
        chosen = tuple(
            DecisionItem(
                item.product_id,
                None,
                round(_drop_share(item), 4),
                1.0,
                False,
                (f"trigger:{trigger}",),
            )
            for item in kept
        )
        reasons = [f"trigger:{trigger}"]
        if experiment is not None and not is_holdout:
            reasons.append(f"experiment:{experiment.experiment}:{experiment.arm}")
        send, delivery_reasons = _delivery(reasons, is_holdout, bool(chosen), channel)
        choice = _Choice(None, chosen, delivery_reasons, excluded)
        variables = self.trigger_variables(facts, trigger, kept)
        subject, blocks, subject_masked, blocks_masked = self._render(
            spec, arm, facts, choice, {}, variables
        )
        return Decision(
            decision_id=did,
            customer_id=facts.customer_id,
            channel=channel,
            placement=placement,
            policy_version=self.version,
            decided_at=now,
            expires_at=expires_at,
            send=send,
            reasons=delivery_reasons,
            theme=None,
            items=chosen,
            subject=subject,
            blocks=blocks,
            subject_masked=subject_masked,
            blocks_masked=blocks_masked,
            experiment=experiment,
            is_holdout=is_holdout,
            excluded=excluded,
        )

    @staticmethod
    def trigger_variables(
        facts: CustomerFacts, trigger: str, items: Sequence[TriggerItem]
    ) -> dict[str, Any]:
        """Template values of a trigger's message: the customer and the first product."""
        variables: dict[str, Any] = {
            "first_name": facts.first_name,
            "last_name": facts.last_name,
            "favourite_category": facts.traits.get("favourite_category"),
            "favourite_brand": facts.traits.get("favourite_brand"),
            "last_viewed_category": facts.last_viewed_category,
            "trigger": trigger,
            "item_count": sum(max(item.quantity, 1) for item in items) or None,
        }
        if items:
            first = items[0]
            drop = _drop_share(first)
            variables.update(
                product_name=first.product_name,
                product_brand=first.brand,
                product_category=first.category,
                top_item_name=first.product_name,
                top_item_brand=first.brand,
                top_item_category=first.category,
                price=_money(first.price),
                previous_price=_money(first.previous_price),
                price_drop_percent=round(drop * 100) if drop > 0 else None,
                discount=round(drop * 100) if drop > 0 else None,
            )
        return variables

    def _fallback(self, spec: Placement, now: datetime, facts: CustomerFacts) -> _Choice:
        """Non-personalized: the biggest discounts running (what the holdout sees).

        Offer rules still hold (they are business rules, not personalization); post-purchase
        suppression does not (it is part of what the holdout measures).
        """
        cat = self.catalogue
        ts = now.timestamp()
        blocked = [mask for rule, mask in self._offer_masks if not admits(rule, facts)]
        picked: list[DecisionItem] = []
        for j in cat.by_discount:
            if any(mask[j] for mask in blocked):
                continue
            if cat.starts[j] <= ts < cat.ends[j]:
                sale, item = cat.items[j]
                picked.append(
                    DecisionItem(
                        item.product_id,
                        sale.sale_id,
                        round(float(cat.discount[j]), 4),
                        1.0,
                        False,
                        ("fallback:biggest_discount",),
                    )
                )
                if len(picked) == spec.items:
                    break
        reasons = (HOLDOUT_REASON,) if picked else (HOLDOUT_REASON, NO_ITEMS_REASON)
        return _Choice(None, tuple(picked), reasons, {})

    def _personal(
        self,
        facts: CustomerFacts,
        spec: Placement,
        arm: ArmPolicy | None,
        now: datetime,
        context: Mapping[str, Any],
        draws: _Draws,
    ) -> _Choice:
        cat = self.catalogue
        ranking = self.policy.ranking
        ts = now.timestamp()
        eligible, not_running = self._running(ts)
        excluded: dict[str, int] = {}
        if not_running:
            excluded["not_running"] = not_running
        for rule, mask in self._offer_masks:
            if not admits(rule, facts):
                hit = eligible & mask
                count = int(hit.sum())
                if count:
                    excluded[f"ineligible:{rule.name}"] = count
                    eligible = eligible & ~mask
        if self._suppression:
            for name, bought_at in facts.category_last_purchased_at.items():
                entry = self._suppression.get(_category_key(name))
                if entry is None or entry[0] is None:
                    continue
                index, display, days = entry
                if (ts - bought_at.timestamp()) < days * _DAY:
                    hit = eligible & self._category_items[index]
                    count = int(hit.sum())
                    if count:
                        excluded[f"suppressed:post_purchase:{display}"] = count
                        eligible = eligible & ~hit
        if not eligible.any():
            return _Choice(None, (), (NO_ITEMS_REASON,), excluded)

        # Scores: per-category and per-brand terms gathered onto the items, plus the discount.
        n_cat = len(cat.category_names)
        affinity = np.zeros(n_cat)
        for name, share in facts.category_affinity.items():
            index = cat.category_index.get(_category_key(name))
            if index is not None and share and share > 0:
                affinity[index] = float(share)
        top = affinity.max()
        if top > 0:
            affinity /= top
        category_term = ranking.affinity * affinity
        viewed = context.get("category") or facts.last_viewed_category
        if viewed:
            index = cat.category_index.get(_category_key(str(viewed)))
            if index is not None:
                category_term[index] += ranking.recent_view
        novelty = arm.novelty if arm is not None and arm.novelty is not None else ranking.novelty
        brand_term = np.full(cat.n_brands + 1, novelty)
        brand_term[cat.n_brands] = 0.0  # a collection of several brands: neither new nor known
        bought: set[int] = set()
        for brand in facts.brands_bought:
            k = cat.brand_index.get(brand)
            if k is not None:
                brand_term[k] = ranking.brand_fit
                bought.add(k)
        intent = _float(facts.traits.get("purchase_probability"), 0.5)
        intent = min(1.0, max(0.0, intent if intent is not None else 0.5))
        score = category_term[cat.category] + brand_term[cat.brand]
        score += (ranking.discount * (1.5 - intent)) * cat.discount
        recs = facts.recommended_products
        recommended: set[int] = set()
        if recs:
            best_rec = max(max(recs.values()), 0.0) or 1.0
            for product_id, rec_score in recs.items():
                j = cat.product_index.get(product_id)
                if j is not None and rec_score > 0:  # scores stay >= 0 (see ``masked``)
                    score[j] += ranking.recommended * float(rec_score) / best_rec
                    recommended.add(j)
        viewed_product = context.get("product_id") or facts.last_viewed_product_id
        if viewed_product:
            j = cat.product_index.get(str(viewed_product))
            if j is not None:
                score[j] += ranking.recent_view

        # One theme: each theme's best k eligible items; the best theme or, exploring, any.
        wildcard_slots = spec.wildcard_slots
        if arm is not None and arm.wildcard_slots is not None:
            wildcard_slots = arm.wildcard_slots
        k = spec.items - wildcard_slots
        epsilon = self.policy.exploration.share
        if arm is not None and arm.exploration_share is not None:
            epsilon = arm.exploration_share
        chosen: list[DecisionItem] = []
        taken: set[int] = set()
        theme: str | None = None
        reasons: list[str] = []
        # Ineligible items score -1 (every real score is >= 0), the padding sentinel too.
        masked = np.where(eligible, score, -1.0)
        if k > 0:
            per_theme = np.append(masked, -1.0)[cat.theme_items]
            width = per_theme.shape[1]
            best_k = (
                per_theme
                if width <= k
                else np.partition(per_theme, width - k, axis=1)[:, width - k :]
            )
            theme_score = np.maximum(best_k, 0.0).sum(axis=1).tolist()
            # The k-th best eligible score of each theme: its items at or above it are shown.
            threshold = np.where(best_k >= 0, best_k, np.inf).min(axis=1).tolist()
            valid = [g for g, t in enumerate(threshold) if t != math.inf]
            best = max(valid, key=theme_score.__getitem__)
            share = epsilon / len(valid)
            if epsilon > 0 and draws.uniform() < epsilon:
                g = valid[min(len(valid) - 1, int(draws.uniform() * len(valid)))]
                reasons.append("explore:theme")
            else:
                g = best
            theme = cat.themes[g]
            theme_reason = f"theme:{theme}"
            row = per_theme[g]
            positions = np.argsort(-row, kind="stable")[:k].tolist()
            members = cat.theme_items[g]
            for position in positions:
                value = float(row[position])
                if value < 0:
                    break
                j = int(members[position])
                # P(shown): the themes holding j that would show it, times their probability.
                shown = sum(
                    share + (1.0 - epsilon if h == best else 0.0)
                    for h in cat.item_themes[j]
                    if threshold[h] != math.inf and value >= threshold[h]
                )
                chosen.append(self._item(j, value, shown, False, theme_reason, recommended, bought))
                taken.add(j)
            reasons.insert(0, theme_reason)

        # Wildcards: outside the customer's top categories, drawn with a logged probability.
        if wildcard_slots > 0:
            taste = np.zeros(n_cat + 1, dtype=bool)
            if ranking.known_taste_categories > 0 and top > 0:
                shares = affinity.tolist()
                liked = sorted(range(n_cat), key=lambda c: -shares[c])
                top_n = liked[: ranking.known_taste_categories]
                taste[[c for c in top_n if shares[c] > 0]] = True
            favourite = facts.traits.get("favourite_category")
            if isinstance(favourite, str):
                index = cat.category_index.get(_category_key(favourite))
                if index is not None:
                    taste[index] = True
            # The theme's own categories are not new either (this also leaves out its items).
            taste[[cat.category_list[j] for j in taken]] = True
            candidates = np.flatnonzero(eligible & ~taste[cat.category])
            source = "wildcard:new_category"
            if len(candidates) == 0:
                candidates = np.array([j for j in np.flatnonzero(eligible) if j not in taken])
                source = "wildcard:any_category"
            for _ in range(wildcard_slots):
                if len(candidates) == 0:
                    break
                if ranking.wildcard_sampling == "uniform":
                    pick = min(int(draws.uniform() * len(candidates)), len(candidates) - 1)
                    probability = 1.0 / len(candidates)
                else:
                    z = masked[candidates]
                    weights = np.exp((z - z.max()) / ranking.wildcard_temperature)
                    cumulative = np.cumsum(weights)
                    total = float(cumulative[-1])
                    pick = int(np.searchsorted(cumulative, draws.uniform() * total, side="right"))
                    pick = min(pick, len(candidates) - 1)
                    probability = float(weights[pick]) / total
                j = int(candidates[pick])
                chosen.append(
                    self._item(j, float(score[j]), probability, True, source, recommended, bought)
                )
                if len(chosen) < spec.items:
                    candidates = np.delete(candidates, pick)
            if any(item.is_wildcard for item in chosen):
                reasons.append(source)
        if not chosen:
            return _Choice(None, (), (NO_ITEMS_REASON,), excluded)
        return _Choice(theme, tuple(chosen), tuple(reasons), excluded)

    def _item(
        self,
        j: int,
        score: float,
        propensity: float,
        is_wildcard: bool,
        why: str,
        recommended: set[int],
        bought: set[int],
    ) -> DecisionItem:
        cat = self.catalogue
        sale, item = cat.items[j]
        reasons = [why]
        if j in recommended:
            reasons.append("recommended")
        brand = cat.brand_list[j]
        if brand < cat.n_brands:
            reasons.append("brand:bought" if brand in bought else "brand:new")
        percent = cat.discount_percent[j]
        if percent > 0:
            reasons.append(f"discount:{percent}%")
        return DecisionItem(
            item.product_id,
            sale.sale_id,
            round(score, 4),
            min(1.0, max(propensity, 1e-9)),
            is_wildcard,
            tuple(reasons),
        )

    # -- rendering --------------------------------------------------------------------------
    def variables(
        self, facts: CustomerFacts, choice: _Choice, context: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The values templates may use for this customer and choice."""
        variables: dict[str, Any] = {
            "first_name": facts.first_name,
            "last_name": facts.last_name,
            "favourite_category": facts.traits.get("favourite_category"),
            "favourite_brand": facts.traits.get("favourite_brand"),
            "last_viewed_category": context.get("category") or facts.last_viewed_category,
            "theme": theme_title(choice.theme) if choice.theme else None,
            "item_count": len(choice.items) or None,
        }
        if choice.items:
            first = choice.items[0]
            j = self.catalogue.product_index.get(first.product_id)
            if j is not None:
                sale, item = self.catalogue.items[j]
                variables.update(
                    top_item_name=item.product_name,
                    top_item_brand=item.brand,
                    top_item_category=item.category,
                    sale_title=sale.title,
                )
            discounts = [
                self.catalogue.discount[self.catalogue.product_index[i.product_id]]
                for i in choice.items
                if i.product_id in self.catalogue.product_index
            ]
            best = round(float(max(discounts)) * 100) if discounts else 0
            variables["discount"] = best or None
        return variables

    def _render(
        self,
        spec: Placement,
        arm: ArmPolicy | None,
        facts: CustomerFacts,
        choice: _Choice,
        context: Mapping[str, Any],
        variables: Mapping[str, Any] | None = None,
    ) -> tuple[str | None, dict[str, str], str | None, dict[str, str]]:
        subject_name = arm.subject if arm is not None and arm.subject else spec.subject
        if subject_name is None and not spec.blocks:
            return None, {}, None, {}
        if variables is None:
            variables = self.variables(facts, choice, context)
        templates = self.policy.templates
        subject = subject_masked = None
        if subject_name is not None:
            t = templates[subject_name]
            subject = render(t.text, variables, t.fallbacks, html=False)
            subject_masked = (
                render(t.text, variables, t.fallbacks, html=False, masked=True)
                if uses_pii(t.text)
                else subject
            )
        blocks: dict[str, str] = {}
        blocks_masked: dict[str, str] = {}
        for block, name in spec.blocks.items():
            t = templates[name]
            blocks[block] = render(t.text, variables, t.fallbacks, html=True)
            blocks_masked[block] = (
                render(t.text, variables, t.fallbacks, html=True, masked=True)
                if uses_pii(t.text)
                else blocks[block]
            )
        return subject, blocks, subject_masked, blocks_masked


#: Per-channel verdicts a stored choice may carry from its first delivery (not the choice's).
_DELIVERY_PREFIXES = ("no_address:", "consent:", "cap:", HOLDOUT_REASON)


def _delivery(
    choice_reasons: Sequence[str], is_holdout: bool, has_items: bool, channel: str
) -> tuple[bool, tuple[str, ...]]:
    reasons = [r for r in choice_reasons if not r.startswith(_DELIVERY_PREFIXES)]
    send = True
    if is_holdout:
        reasons.insert(0, HOLDOUT_REASON)
        send = channel not in MESSAGE_CHANNELS
    if not has_items:
        send = False
        if NO_ITEMS_REASON not in reasons:
            reasons.append(NO_ITEMS_REASON)
    return send, tuple(reasons)


def for_channel(choice: Decision, channel: str) -> Decision:
    """A decision's choice as delivered on ``channel``, before consent and caps.

    The choice (id, theme, items, subject) is shared by every channel in the period; whether it
    goes out is per channel: the holdout gets no message, an empty choice sends nothing.
    """
    send, reasons = _delivery(choice.reasons, choice.is_holdout, bool(choice.items), channel)
    return replace(choice, channel=channel, send=send, reasons=reasons)


def _drop_share(item: TriggerItem) -> float:
    """How much cheaper the item got (0.25 for 25 % off); 0 without both prices."""
    if item.price is None or not item.previous_price or item.previous_price <= 0:
        return 0.0
    return max(0.0, (item.previous_price - item.price) / item.previous_price)


def _money(value: float | None) -> str | None:
    return None if value is None else f"{value:,.2f}"


def choose(
    policy: DecisionsPolicy,
    facts: CustomerFacts,
    sales: Catalogue | Sequence[Sale],
    placement: str,
    now: datetime,
    context: Mapping[str, Any] | None = None,
    engagement: Engagement | None = None,
    rng_seed: int = 0,
    *,
    channel: str,
    assignment_key: bytes,
) -> Decision:
    """One decision without a long-lived :class:`Engine` (builds one; use Engine in loops).

    ``engagement`` is accepted for symmetry with the service; it shapes only the adaptive cap
    (:meth:`Engine.caps_for`), not the choice.
    """
    del engagement
    engine = Engine(policy, sales, assignment_key)
    return engine.choose(facts, placement, now, channel=channel, context=context, rng_seed=rng_seed)


__all__ = [
    "Catalogue",
    "Engine",
    "adaptive_cap",
    "admits",
    "choose",
    "decision_id",
    "for_channel",
    "period_bounds",
    "theme_title",
]
