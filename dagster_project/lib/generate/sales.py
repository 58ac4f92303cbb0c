"""The daily sales calendar of a flash-sale retailer, published as the ``offers`` source.

Modelled on Zulily's published format: new sales ("events") start every morning and most last
72 hours; some feature one brand, others a themed collection of several brands. About 40 start
each day at 14:00 UTC (6-7 am on the US west coast), each with a theme (seasonal ones crowd the
calendar in their season), a category, a discount and the products it covers. During a sale a
covered product sells at the sale price; the regular price history stays in ``price_changes``.

Days are *sale days*: day ``d`` runs from 14:00 UTC of the window's day ``d`` to 14:00 UTC the
next day, so a sale covers whole sale days and "the best offer on a product at time t" is a
lookup in a (products x sale days) table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dagster_project.lib.generate import vocab
from dagster_project.lib.generate.catalog import Catalog
from dagster_project.lib.generate.common import (
    DAY,
    HOUR,
    Stream,
    Window,
    join,
    padded,
    stream,
    strings,
    take,
    zipf_weights,
)

SALES_PER_DAY = 40
SALE_START_HOUR = 14
#: Sale lengths in days and their shares (most sales run 72 hours).
DURATIONS = np.array([1, 2, 3, 4, 7])
DURATION_SHARES = np.array([0.12, 0.15, 0.58, 0.05, 0.10])
SINGLE_BRAND_SHARE = 0.6
MAX_SINGLE_BRAND_PRODUCTS = 6
#: Categories a seasonal theme favours (weight x4).
THEME_CATEGORIES: dict[str, tuple[str, ...]] = {
    "valentines": ("jewelry-accessories", "beauty", "grocery"),
    "spring-refresh": ("home-kitchen", "apparel", "sports-outdoors"),
    "mothers-day": ("beauty", "jewelry-accessories", "home-kitchen"),
    "summer-sale": ("apparel", "footwear", "sports-outdoors"),
    "back-to-school": ("apparel", "footwear", "electronics", "books"),
    "halloween": ("toys-games", "apparel", "grocery"),
    "black-friday": ("electronics", "home-kitchen", "toys-games"),
    "holiday-gifts": ("toys-games", "electronics", "jewelry-accessories", "books"),
    "new-year": ("health-wellness", "sports-outdoors", "grocery"),
    "under-25": ("books", "beauty", "grocery", "pet-supplies"),
}
THEME_APPEAL = np.array([t[4] for t in vocab.SALE_THEMES])
_THEME_INDEX = {t[0]: i for i, t in enumerate(vocab.SALE_THEMES)}


@dataclass
class Sales:
    """Sales sorted by start, their offers (one row per covered product) and lookups."""

    window_start: int
    n_days: int
    sale_id: pa.Array
    title: pa.Array
    theme: np.ndarray  # index into vocab.SALE_THEMES
    category: np.ndarray
    brand: np.ndarray  # index into vocab.BRANDS, -1 for a multi-brand collection
    discount: np.ndarray  # 0..1
    start_day: np.ndarray  # sale day of the start
    days: np.ndarray  # length in sale days
    relative_price: np.ndarray  # mean regular price of its products / the category median
    offsets: np.ndarray  # offers of sale s are rows offsets[s]:offsets[s + 1]
    offer_product: np.ndarray
    offer_regular_cents: np.ndarray  # regular price when the sale starts
    offer_sale_cents: np.ndarray
    day_first: np.ndarray  # sales starting on sale day d are day_first[d]:day_first[d + 1]
    best_cents: np.ndarray  # (products, sale days) lowest sale price, 0 when none
    on_sale_offsets: np.ndarray  # products on sale on day d in category c: CSR by d * C + c
    on_sale_product: np.ndarray
    offer_keys: np.ndarray  # sorted sale * products + product, for membership tests

    def __len__(self) -> int:
        return len(self.theme)

    @property
    def start(self) -> np.ndarray:
        """Start of each sale (epoch seconds)."""
        return self.window_start + SALE_START_HOUR * HOUR + self.start_day.astype(np.int64) * DAY

    @property
    def end(self) -> np.ndarray:
        """End of each sale (exclusive)."""
        return self.start + self.days.astype(np.int64) * DAY

    def sale_day(self, at: np.ndarray) -> np.ndarray:
        """Sale day of each time; -1 before the first sale starts."""
        first = self.window_start + SALE_START_HOUR * HOUR
        return np.floor_divide(np.asarray(at) - first, DAY).astype(np.int64)

    def sale_cents(self, product: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Lowest sale price of each product at each time, 0 when no sale covers it."""
        day = self.sale_day(at)
        ok = (day >= 0) & (day < self.n_days)
        return np.where(ok, self.best_cents[product, np.clip(day, 0, self.n_days - 1)], 0)

    def covers(self, sale: np.ndarray, product: np.ndarray) -> np.ndarray:
        """Whether each sale covers each product."""
        n_products = self.best_cents.shape[0]
        key = sale.astype(np.int64) * n_products + product
        pos = np.minimum(np.searchsorted(self.offer_keys, key), max(len(self.offer_keys) - 1, 0))
        return (len(self.offer_keys) > 0) & (self.offer_keys[pos] == key)

    def product_on_sale(self, category: np.ndarray, at: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A product of the category on sale at each time (uniform), or -1 when none is."""
        day = np.clip(self.sale_day(at), 0, self.n_days - 1)
        key = day * len(vocab.CATEGORIES) + category
        lo, hi = self.on_sale_offsets[key], self.on_sale_offsets[key + 1]
        pick = lo + (u * (hi - lo)).astype(np.int64)
        found = (hi > lo) & (self.sale_day(at) >= 0)
        return np.where(
            found, self.on_sale_product[np.minimum(pick, len(self.on_sale_product) - 1)], -1
        )

    def product_of_sale(self, sale: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A product covered by each sale (uniform)."""
        lo, hi = self.offsets[sale], self.offsets[sale + 1]
        return self.offer_product[lo + (u * (hi - lo)).astype(np.int64)]


def _theme_weights(day: datetime) -> np.ndarray:
    """Weights of the themes on a calendar day: seasonal ones only in season."""
    md = f"{day:%m-%d}"
    weights = np.zeros(len(vocab.SALE_THEMES))
    for i, (slug, _, season, weight, _) in enumerate(vocab.SALE_THEMES):
        if season is None:
            in_season = slug != "weekend-deals" or day.weekday() >= 4
        else:
            first, last = season
            in_season = first <= md <= last if first <= last else md >= first or md <= last
        weights[i] = weight if in_season else 0.0
    return weights / weights.sum()


def build_sales(catalog: Catalog, window: Window, seed: int) -> Sales:
    """About 40 sales a day over the window, each covering a few products at a discount."""
    rng = stream(seed, Stream.SALES)
    n_cat, n_brand = len(vocab.CATEGORIES), len(vocab.BRANDS)
    first_start = window.start + SALE_START_HOUR * HOUR
    n_days = max(0, (window.end - first_start + DAY - 1) // DAY)
    per_day = rng.poisson(SALES_PER_DAY, n_days)
    start_day = np.repeat(np.arange(n_days), per_day)
    n = len(start_day)

    # Theme per sale from its day's calendar; flash deals last a day.
    theme = np.zeros(n, dtype=np.int64)
    day_first = np.concatenate([[0], np.cumsum(per_day)])
    for d in range(n_days):
        date = datetime.fromtimestamp(first_start + d * DAY, tz=UTC)
        w = _theme_weights(date)
        theme[day_first[d] : day_first[d + 1]] = rng.choice(len(w), size=per_day[d], p=w)
    days = rng.choice(DURATIONS, size=n, p=DURATION_SHARES)
    days = np.where(theme == _THEME_INDEX["flash-deal"], 1, days)

    # Category by popularity, favouring the theme's own categories.
    popularity = np.array([c[2] for c in vocab.CATEGORIES])
    slug_index = {c[1]: i for i, c in enumerate(vocab.CATEGORIES)}
    cat_weights = np.tile(popularity, (len(vocab.SALE_THEMES), 1))
    for slug, cats in THEME_CATEGORIES.items():
        for c in cats:
            cat_weights[_THEME_INDEX[slug], slug_index[c]] *= 4.0
    cum = np.cumsum(cat_weights, axis=1)
    cum /= cum[:, -1:]
    category = np.minimum((cum[theme] <= rng.random(n)[:, None]).sum(axis=1), n_cat - 1)

    # Discounts in steps of 5 %: clearance and flash deals deeper, Black Friday deepest.
    base = rng.integers(2, 9, n)  # 10 % .. 40 %
    deep = np.isin(theme, [_THEME_INDEX[t] for t in ("clearance", "flash-deal", "black-friday")])
    discount = np.where(deep, base + rng.integers(2, 6, n), base) * 0.05

    # Products: one brand's range in the category, or a collection across brands.
    pair = np.zeros((n_cat, n_brand), dtype=bool)
    pair[catalog.category, catalog.brand] = True
    brand_w = zipf_weights(n_brand, 0.6)
    single = (rng.random(n) < SINGLE_BRAND_SHARE) | (theme == _THEME_INDEX["brand-spotlight"])
    pair_key = catalog.category * n_brand + catalog.brand
    by_pair = {int(k): np.flatnonzero(pair_key == k) for k in np.unique(pair_key)}
    by_cat = {c: np.flatnonzero(catalog.category == c) for c in range(n_cat)}
    brand = np.full(n, -1, dtype=np.int64)
    size_draw = rng.integers(3, 9, n)
    parts: list[np.ndarray] = []
    counts = np.zeros(n, dtype=np.int64)
    u_brand = rng.random(n)
    for s in range(n):
        c = int(category[s])
        if single[s]:
            allowed = np.flatnonzero(pair[c])
            w = np.cumsum(brand_w[allowed])
            b = int(allowed[min(np.searchsorted(w, u_brand[s] * w[-1]), len(allowed) - 1)])
            brand[s] = b
            pool = by_pair[c * n_brand + b]
            k = min(len(pool), MAX_SINGLE_BRAND_PRODUCTS)
            chosen = pool if k == len(pool) else rng.choice(pool, size=k, replace=False)
        else:
            pool = by_cat[c]
            k = min(len(pool), int(size_draw[s]))
            gumbel = np.log(catalog.popularity[pool]) + rng.gumbel(size=len(pool))
            chosen = pool[np.argsort(-gumbel, kind="stable")[:k]]
        chosen = np.sort(chosen)
        parts.append(chosen)
        counts[s] = len(chosen)
    offer_product = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    offer_sale = np.repeat(np.arange(n), counts)
    starts = first_start + start_day.astype(np.int64) * DAY
    regular = catalog.price_at(offer_product, starts[offer_sale])
    sale_cents = np.maximum(np.round(regular * (1.0 - discount[offer_sale])).astype(np.int64), 1)
    sale_cents = np.minimum(sale_cents, regular - 1)

    # Lowest sale price per (product, sale day) and the products on sale per (day, category).
    best = np.zeros((catalog.size, max(n_days, 1)), dtype=np.int64)
    span = days[offer_sale]
    row = np.repeat(np.arange(len(offer_product)), span)
    covered_day = start_day[offer_sale][row] + (
        np.arange(len(row)) - np.repeat(np.cumsum(span) - span, span)
    )
    inside = covered_day < n_days
    row, covered_day = row[inside], covered_day[inside]
    flat = offer_product[row] * best.shape[1] + covered_day
    order = np.lexsort((sale_cents[row], flat))
    first_of = np.ones(len(order), dtype=bool)
    first_of[1:] = flat[order][1:] != flat[order][:-1]
    best.reshape(-1)[flat[order][first_of]] = sale_cents[row][order][first_of]
    on_key = covered_day * n_cat + category[offer_sale[row]]
    pairs = np.unique(on_key * catalog.size + offer_product[row])
    on_sale_product = pairs % catalog.size
    on_sale_offsets = np.searchsorted(
        pairs // catalog.size, np.arange(max(n_days, 1) * n_cat + 1), side="left"
    )

    medians = np.array([c[3] for c in vocab.CATEGORIES])
    mean_regular = np.bincount(offer_sale, weights=regular, minlength=n) / np.maximum(counts, 1)
    relative_price = mean_regular / 100.0 / medians[category]

    return Sales(
        window_start=window.start,
        n_days=int(n_days),
        sale_id=_sale_ids(first_start, start_day, day_first),
        title=_titles(theme, category, brand, discount),
        theme=theme,
        category=category,
        brand=brand,
        discount=discount,
        start_day=start_day,
        days=days,
        relative_price=relative_price,
        offsets=offsets,
        offer_product=offer_product,
        offer_regular_cents=regular,
        offer_sale_cents=sale_cents,
        day_first=day_first,
        best_cents=best,
        on_sale_offsets=on_sale_offsets,
        on_sale_product=on_sale_product,
        offer_keys=np.sort(offer_sale.astype(np.int64) * catalog.size + offer_product),
    )


def _sale_ids(first_start: int, start_day: np.ndarray, day_first: np.ndarray) -> pa.Array:
    """``S20250301-07``: the start date and the sale's number that day."""
    n_days = len(day_first) - 1
    dates = strings(
        [f"{datetime.fromtimestamp(first_start + d * DAY, tz=UTC):%Y%m%d}" for d in range(n_days)]
    )
    number = np.arange(len(start_day)) - day_first[start_day] + 1
    return join("S", take(dates, start_day), "-", padded(number, 2))


def _titles(
    theme: np.ndarray, category: np.ndarray, brand: np.ndarray, discount: np.ndarray
) -> pa.Array:
    """``Summer Sale: Northwind Footwear, up to 30% off``."""
    themes = strings([t[1] for t in vocab.SALE_THEMES])
    categories = strings([c[0] for c in vocab.CATEGORIES])
    brands = strings(list(vocab.BRANDS))
    who = join(take(brands, brand), take(categories, category), sep=" ")
    collection = join(take(categories, category), "from several brands", sep=" ")
    subject = pc.coalesce(who, collection)
    percent = padded(np.round(discount * 100).astype(np.int64), 1)
    return join(take(themes, theme), ": ", subject, ", up to ", percent, "% off")
