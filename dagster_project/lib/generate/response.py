"""The response model: what a person does with a message or a visit, from their hidden traits.

"Person P receives message M on day D: do they open, click, visit, buy, unsubscribe?" The
generator answers it with this module for every email it sends and every visit it simulates,
and a simulation benchmark can ask it about messages a decision policy would send. It reads
hidden traits (``ground_truth/persons.parquet``), which the platform never does. It is fixed:
tuning a policy against it is only meaningful if it changes deliberately, so any change bumps
``VERSION`` and is described in the README.

Form (all vectorised; one row per person-message or person-visit):

* relevance ``r = clip(log(C * affinity[category]), -3, 1.5)``: 0 for a category of average
  interest to the person (C categories), positive for a favourite;
* fatigue: ``excess = max(0, emails_7d - tolerance)`` where ``emails_7d`` counts the emails
  received in the 7 days up to this one (this one included) and ``tolerance`` is the person's
  own limit; every email beyond it multiplies the chance to open by ``exp(-0.35)`` and raises
  the chance to unsubscribe by up to 0.8 % per email;
* open: ``open_rate * theme_appeal * exp(0.2 r) * exp(-0.35 excess)``, times 0.1 for a person
  who has lapsed; ``open_rate`` is 0 for people who never open;
* click, given an open: ``logit(click_rate) + 0.7 r + deal + brand + 0.5 log(cycle) - 1.5 lapsed``;
* visit, given a click: 1 (a click lands on the sale page);
* buy, given a visit: ``purchase_probability``: ``logit = -6.1 + log(purchase_rate) + 0.5 r +
  deal' + brand + log(cycle) + intent - 2.3 lapsed``, the intent being 0 for plain browsing and
  higher for a visit from an email click, the app, a replenishment need or a return to an item;
* deal (price sensitivity ``s``): ``s * (3.0 discount + 4.0 viewed_price_drop - 0.5
  log(relative_price))`` for clicks, ``s * (3.5 discount + 5.0 viewed_price_drop - 0.6
  log(relative_price) - 0.8 [full price])`` for buying: sales and a price drop on an item the
  person looked at pull price-sensitive people in, expensive items push them away;
* brand: for a single-brand offer, ``2.0 (novelty - 0.35)`` when the person never bought the
  brand (novelty seekers are drawn to new brands, others put off), ``0.6 loyalty`` when they
  did, plus ``0.8 loyalty`` for one of their favourite brands;
* cycle (``category_cycle_multiplier``): durables (TVs, appliances, furniture-like goods) fall to
  3 % of the usual chance right after a purchase and recover over their cycle (months);
  consumables (coffee, beauty, pet food) are less likely just after a purchase and up to 3x as
  likely when due; "semi" goods recover linearly;
* unsubscribe: ``0.06 %`` per email (``0.24 %`` for people who never open) plus
  ``0.8 % * (1 - exp(-0.5 excess))``.

A visit's cart follows from its chance to buy: ``P(cart) = min(1, p_buy / 0.3)`` and a cart is
bought with ``p_buy / P(cart)``, so about 70 % of carts are abandoned (Baymard's average).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import pyarrow as pa

from dagster_project.lib.generate import vocab

VERSION = "1"

N_CATEGORIES = len(vocab.CATEGORIES)
_SLUGS = [c[1] for c in vocab.CATEGORIES]
DURABLE, CONSUMABLE, SEMI = 0, 1, 2
_KINDS = {"durable": DURABLE, "consumable": CONSUMABLE, "semi": SEMI}
#: Per category (index order of vocab.CATEGORIES): how it is bought again, and after how long.
CATEGORY_KIND = np.array([_KINDS[vocab.CATEGORY_CYCLES[s][0]] for s in _SLUGS], dtype=np.int8)
CYCLE_DAYS = np.array([vocab.CATEGORY_CYCLES[s][1] for s in _SLUGS], dtype=np.float64)
#: Median list price per category (USD), the yardstick of ``relative_price``.
CATEGORY_MEDIAN_PRICE = np.array([c[3] for c in vocab.CATEGORIES], dtype=np.float64)

#: Share of carts that end in a purchase (1 - the cart-abandonment rate).
BUY_GIVEN_CART = 0.3
#: Days without an open or click after which the retailer stops emailing (sunset policy).
SUNSET_DAYS = 180

_FATIGUE_OPEN = 0.35
_UNSUB_BASE = 0.0006
_UNSUB_FATIGUE = 0.008
_BUY_BASE = -6.1


class Intent(IntEnum):
    """Why a visit happens; each raises the odds of buying by ``INTENT_LOGIT``."""

    BROWSE = 0  # a habitual web visit
    EMAIL = 1  # a click in an email
    APP = 2  # a visit in the mobile app
    REPLENISH = 3  # a consumable running out
    REVISIT = 4  # back to an item looked at before
    SIGNUP = 5  # the visit that opens a shop account, usually to buy something


INTENT_LOGIT = np.array([0.0, 1.5, 3.0, 3.1, 1.4, 4.6])


@dataclass(frozen=True)
class Traits:
    """Hidden traits, one entry per person (columns of ``ground_truth/persons.parquet``)."""

    open_rate: np.ndarray  # chance to open a wanted email; 0 for people who never open
    click_rate: np.ndarray  # chance to click an opened email with an average offer
    email_tolerance: np.ndarray  # emails in 7 days accepted before fatigue sets in
    purchase_rate: np.ndarray  # multiplier on the odds of buying during a visit
    price_sensitivity: np.ndarray  # 0..1
    novelty: np.ndarray  # 0..1, appetite for brands never bought
    brand_loyalty: np.ndarray  # 0..1
    category_affinity: np.ndarray  # (persons, categories), rows sum to 1
    favorite_brands: np.ndarray  # (persons, 3) indices into vocab.BRANDS

    @classmethod
    def from_persons(cls, persons: pa.Table) -> Traits:
        """Traits from the ground-truth persons table (for benchmarks and simulations)."""

        def col(name: str) -> np.ndarray:
            return persons.column(name).to_numpy(zero_copy_only=False)

        affinity = np.column_stack(
            [col("affinity_" + slug.replace("-", "_")) for slug in _SLUGS]
        ).astype(np.float32)
        index = {b: i for i, b in enumerate(vocab.BRANDS)}
        favourites = np.column_stack(
            [[index[b] for b in col(f"favorite_brand_{k}")] for k in (1, 2, 3)]
        ).astype(np.int16)
        return cls(
            open_rate=col("email_open_rate"),
            click_rate=col("email_click_rate"),
            email_tolerance=col("email_tolerance"),
            purchase_rate=col("purchase_rate"),
            price_sensitivity=col("price_sensitivity"),
            novelty=col("novelty_seeking"),
            brand_loyalty=col("brand_loyalty"),
            category_affinity=affinity,
            favorite_brands=favourites,
        )


@dataclass(frozen=True)
class Offer:
    """What a message or visit puts in front of a person, one row each."""

    person: np.ndarray  # index into Traits
    category: np.ndarray  # index into vocab.CATEGORIES
    brand: np.ndarray  # index into vocab.BRANDS, -1 for several brands
    discount: np.ndarray  # 0..1 off the regular price (0: full price)
    relative_price: np.ndarray  # price / the category's median price
    theme_appeal: np.ndarray | float = 1.0  # factor on opening an email (vocab.SALE_THEMES)


@dataclass(frozen=True)
class History:
    """The person's recent past as of the message or visit, one row each."""

    emails_7d: np.ndarray | int  # emails received in the 7 days up to this one, included
    days_since_category_purchase: np.ndarray  # days; np.inf when never bought in the category
    brand_bought: np.ndarray | bool  # the person has bought the offer's brand before
    viewed_price_drop: np.ndarray | float  # 0..1 price fall since the person viewed the item
    lapsed: np.ndarray | bool = False  # the person has drifted away from the shop


@dataclass(frozen=True)
class Outcome:
    """Sampled outcomes; each implies the ones before it (a buy implies a visit, ...)."""

    opened: np.ndarray
    clicked: np.ndarray
    visited: np.ndarray
    bought: np.ndarray
    unsubscribed: np.ndarray


@dataclass(frozen=True)
class Response:
    """Conditional probabilities: open; click given open; visit given click; buy given visit."""

    open: np.ndarray
    click: np.ndarray
    visit: np.ndarray
    buy: np.ndarray
    unsubscribe: np.ndarray

    def sample(self, rng: np.random.Generator) -> Outcome:
        """Draw outcomes; an unsubscribe is independent of the rest."""
        n = len(self.open)
        u = rng.random((5, n))
        opened = u[0] < self.open
        clicked = opened & (u[1] < self.click)
        visited = clicked & (u[2] < self.visit)
        bought = visited & (u[3] < self.buy)
        return Outcome(opened, clicked, visited, bought, u[4] < self.unsubscribe)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def category_cycle_multiplier(category: np.ndarray, days_since: np.ndarray) -> np.ndarray:
    """Factor on the chance to buy in a category, given the days since the last purchase in it.

    1 when never bought (``np.inf``). Durables: ``0.03 + 0.97 (d / cycle)^2`` up to the cycle.
    Consumables: ``0.4 + 2.6 (d / cycle)^3`` up to the cycle (3x when due), then decaying to 1
    over another cycle. Semi-durables: ``0.3 + 0.7 d / cycle``.
    """
    cycle = CYCLE_DAYS[category]
    kind = CATEGORY_KIND[category]
    x = np.asarray(days_since, dtype=np.float64) / cycle
    x = np.where(np.isfinite(x), np.maximum(x, 0.0), 1e9)
    within = np.minimum(x, 1.0)
    durable = 0.03 + 0.97 * within**2
    consumable = np.where(x < 1.0, 0.4 + 2.6 * within**3, 1.0 + 2.0 * np.exp(-(x - 1.0) * 2.0))
    semi = 0.3 + 0.7 * within
    out = np.where(kind == DURABLE, durable, np.where(kind == CONSUMABLE, consumable, semi))
    return np.where(np.isfinite(np.asarray(days_since, dtype=np.float64)), out, 1.0)


def _relevance(traits: Traits, offer: Offer) -> np.ndarray:
    affinity = traits.category_affinity[offer.person, offer.category].astype(np.float64)
    return np.clip(np.log(np.maximum(affinity, 1e-6) * N_CATEGORIES), -3.0, 1.5)


def _brand_term(traits: Traits, offer: Offer, history: History) -> np.ndarray:
    person, brand = offer.person, offer.brand
    single = brand >= 0
    loyalty = traits.brand_loyalty[person]
    favourite = (traits.favorite_brands[person] == brand[:, None]).any(axis=1) & single
    known = np.broadcast_to(np.asarray(history.brand_bought, dtype=bool), person.shape)
    novelty = 2.0 * (traits.novelty[person] - 0.35)
    term = np.where(single, np.where(known, 0.6 * loyalty, novelty), 0.0)
    return term + 0.8 * loyalty * favourite


def purchase_probability(
    traits: Traits, offer: Offer, history: History, intent: np.ndarray | int
) -> np.ndarray:
    """Chance that a visit showing ``offer`` ends in a purchase (see the module docstring)."""
    person = offer.person
    sensitivity = traits.price_sensitivity[person]
    discount = np.asarray(offer.discount, dtype=np.float64)
    drop = np.asarray(history.viewed_price_drop, dtype=np.float64)
    full_price = (discount <= 0) & (drop <= 0)
    deal = sensitivity * (
        3.5 * discount
        + 5.0 * drop
        - 0.6 * np.log(np.maximum(offer.relative_price, 1e-3))
        - 0.8 * full_price
    )
    cycle = category_cycle_multiplier(offer.category, history.days_since_category_purchase)
    logit = (
        _BUY_BASE
        + np.log(traits.purchase_rate[person])
        + 0.5 * _relevance(traits, offer)
        + deal
        + _brand_term(traits, offer, history)
        + np.log(cycle)
        + INTENT_LOGIT[np.asarray(intent)]
        - 2.3 * np.asarray(history.lapsed, dtype=np.float64)
    )
    return _expit(logit)


def respond(traits: Traits, message: Offer, history: History) -> Response:
    """Probabilities of opening, clicking, visiting, buying and unsubscribing for each email."""
    person = message.person
    relevance = _relevance(traits, message)
    lapsed = np.asarray(history.lapsed, dtype=np.float64)
    excess = np.maximum(0.0, np.asarray(history.emails_7d) - traits.email_tolerance[person])
    fatigue = np.exp(-_FATIGUE_OPEN * excess)
    open_rate = traits.open_rate[person]
    p_open = open_rate * message.theme_appeal * np.exp(0.2 * relevance) * fatigue
    p_open = np.clip(p_open * np.where(lapsed > 0, 0.1, 1.0), 0.0, 0.97)

    sensitivity = traits.price_sensitivity[person]
    deal = sensitivity * (
        3.0 * np.asarray(message.discount, dtype=np.float64)
        + 4.0 * np.asarray(history.viewed_price_drop, dtype=np.float64)
        - 0.5 * np.log(np.maximum(message.relative_price, 1e-3))
    )
    cycle = category_cycle_multiplier(message.category, history.days_since_category_purchase)
    click_logit = (
        _logit(traits.click_rate[person])
        + 0.7 * relevance
        + deal
        + _brand_term(traits, message, history)
        + 0.5 * np.log(cycle)
        - 1.5 * lapsed
    )
    p_click = _expit(click_logit)
    p_buy = purchase_probability(traits, message, history, Intent.EMAIL)
    never = open_rate < 0.02
    p_unsub = _UNSUB_BASE * np.where(never, 4.0, 1.0) + _UNSUB_FATIGUE * (
        1.0 - np.exp(-0.5 * excess)
    )
    return Response(
        open=p_open,
        click=p_click,
        visit=np.ones_like(p_open),
        buy=p_buy,
        unsubscribe=np.clip(p_unsub, 0.0, 0.2),
    )


def cart_and_buy(p_buy: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A visit's cart and purchase: ``P(cart) = min(1, p_buy / 0.3)``, then buy with the rest."""
    p_cart = np.minimum(1.0, p_buy / BUY_GIVEN_CART)
    u = rng.random((2, len(p_buy)))
    carted = u[0] < p_cart
    bought = carted & (u[1] * p_cart < p_buy)
    return carted, bought
