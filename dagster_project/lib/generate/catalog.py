"""The product catalog and its price history, the same size whatever the number of persons."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dagster_project.lib.generate import vocab
from dagster_project.lib.generate.common import (
    DAY,
    Stream,
    Window,
    padded,
    stream,
    strings,
    zipf_weights,
)

N_PRODUCTS = 2_000
_KEY_SHIFT = 1 << 32  # price lookup key: product * shift + seconds since window start
_U_SCALE = 0.999_999  # keeps segment + u below the next segment despite float rounding
_GRID = 4096  # resolution of the sampling tables: a product's chance is exact to 1/4096


@dataclass
class Catalog:
    """Products as parallel arrays plus the price history sorted by (product, time)."""

    product_id: pa.Array
    name: pa.Array
    category: np.ndarray  # index into vocab.CATEGORIES
    brand: np.ndarray  # index into vocab.BRANDS
    list_price_cents: np.ndarray  # regular price when the window opens
    popularity: np.ndarray  # relative appeal within its category
    change_product: np.ndarray  # price history, sorted by product then time
    change_at: np.ndarray
    change_cents: np.ndarray
    window_start: int
    # Sampling tables: products sorted by (category, brand) with a cumulative popularity that
    # runs from k to k+1 inside segment k, so one searchsorted samples within a segment.
    by_category_order: np.ndarray
    by_category_cum: np.ndarray
    by_brand_order: np.ndarray
    by_brand_cum: np.ndarray
    has_category_brand: np.ndarray  # (categories * brands) bool

    @property
    def size(self) -> int:
        """Number of products."""
        return len(self.category)

    @property
    def current_price_cents(self) -> np.ndarray:
        """Each product's last price in the window (what the catalog file shows)."""
        last = np.ones(len(self.change_product), dtype=bool)
        last[:-1] = self.change_product[1:] != self.change_product[:-1]
        out = self.list_price_cents.copy()
        out[self.change_product[last]] = self.change_cents[last]
        return out

    def price_at(self, product: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Price in cents of each product at each time, from the price history."""
        keys = self.change_product.astype(np.int64) * _KEY_SHIFT + (
            self.change_at - self.window_start
        )
        query = product.astype(np.int64) * _KEY_SHIFT + (at - self.window_start)
        pos = np.searchsorted(keys, query, side="right") - 1
        return self.change_cents[pos]

    def sample_in_category(self, category: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A product of each given category, weighted by popularity."""
        table = self._table(
            "_category_table", self.by_category_order, self.by_category_cum, len(vocab.CATEGORIES)
        )
        grid = table.shape[1]
        return table[category, np.minimum((u * grid).astype(np.int64), grid - 1)]

    def sample_in_brand(self, category: np.ndarray, brand: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A product of each (category, brand); the caller checks the pair exists."""
        segment = category.astype(np.int64) * len(vocab.BRANDS) + brand
        table = self._table(
            "_brand_table", self.by_brand_order, self.by_brand_cum, len(self.has_category_brand)
        )
        grid = table.shape[1]
        return table[segment, np.minimum((u * grid).astype(np.int64), grid - 1)]

    def _table(self, name: str, order: np.ndarray, cum: np.ndarray, segments: int) -> np.ndarray:
        """Inverse-CDF lookup table per segment (draws become one gather, not a search)."""
        table = getattr(self, name, None)
        if table is None:
            grid = _GRID
            points = (np.arange(grid) + 0.5) / grid
            target = (np.arange(segments)[:, None] + points[None, :] * _U_SCALE).reshape(-1)
            pos = np.minimum(np.searchsorted(cum, target, side="right"), self.size - 1)
            table = order[pos].reshape(segments, grid).astype(np.int32)
            setattr(self, name, table)
        return table


def _segment_cdf(segment: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((np.arange(len(segment)), segment))
    seg = segment[order]
    w = weight[order]
    totals = np.bincount(seg, weights=w)
    cum_in_seg = np.cumsum(w) - np.concatenate([[0.0], np.cumsum(totals)])[seg]
    cdf = seg + cum_in_seg / totals[seg]
    # The last product of a segment owns the top of it, whatever the rounding.
    last = np.ones(len(seg), dtype=bool)
    last[:-1] = seg[1:] != seg[:-1]
    cdf[last] = seg[last] + 1.0
    return order, cdf


def build_catalog(seed: int, window: Window) -> Catalog:
    """2,000 products in 12 categories from 40 brands, with markdowns and price rises.

    The price history is the regular price; flash sales (``sales.py``) discount it for a few
    days and are published as offers, not as price changes.
    """
    rng = stream(seed, Stream.CATALOG)
    n_cat, n_brand = len(vocab.CATEGORIES), len(vocab.BRANDS)

    # Each brand sells in a home category and maybe one or two more.
    carries = np.zeros((n_cat, n_brand), dtype=bool)
    carries[np.arange(n_brand) % n_cat, np.arange(n_brand)] = True
    extra = rng.random((n_cat, n_brand)) < 0.12
    carries |= extra

    popularity = np.array([c[2] for c in vocab.CATEGORIES])
    category = rng.choice(n_cat, size=N_PRODUCTS, p=popularity / popularity.sum())
    category[:n_cat] = np.arange(n_cat)  # every category has products
    brand = np.empty(N_PRODUCTS, dtype=np.int64)
    brand_weight = zipf_weights(n_brand, 0.6)
    for c in range(n_cat):
        rows = np.flatnonzero(category == c)
        allowed = np.flatnonzero(carries[c])
        w = brand_weight[allowed] / brand_weight[allowed].sum()
        brand[rows] = rng.choice(allowed, size=len(rows), p=w)

    median = np.array([c[3] for c in vocab.CATEGORIES])[category]
    price = median * np.exp(rng.normal(0.0, 0.45, N_PRODUCTS))
    list_cents = (np.floor(price) * 100 + 99).astype(np.int64)  # $x.99 pricing
    item_popularity = rng.pareto(1.5, N_PRODUCTS) + 0.2

    noun_draw = rng.integers(0, 1 << 30, N_PRODUCTS)
    adjective = rng.integers(0, len(vocab.PRODUCT_ADJECTIVES), N_PRODUCTS)
    names: list[str] = []
    seen: dict[str, int] = {}
    for i in range(N_PRODUCTS):
        category_nouns = vocab.CATEGORIES[category[i]][4]
        noun = category_nouns[noun_draw[i] % len(category_nouns)]
        name = f"{vocab.BRANDS[brand[i]]} {vocab.PRODUCT_ADJECTIVES[adjective[i]]} {noun}"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} {seen[name]}")

    # Price history: the listing at window start, then markdowns and rises at random times.
    n_changes = rng.poisson(2.0, N_PRODUCTS)
    change_product = np.concatenate(
        [np.arange(N_PRODUCTS), np.repeat(np.arange(N_PRODUCTS), n_changes)]
    )
    total = int(n_changes.sum())
    change_at = np.concatenate(
        [
            np.full(N_PRODUCTS, window.start, dtype=np.int64),
            window.start + DAY + rng.integers(0, window.seconds - 2 * DAY, total),
        ]
    )
    factor = rng.choice([0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.05, 1.1, 1.15], size=total)
    changed_cents = np.floor(list_cents[change_product[N_PRODUCTS:]] * factor / 100) * 100 + 99
    change_cents = np.concatenate([list_cents, changed_cents.astype(np.int64)])
    order = np.lexsort((change_at, change_product))

    by_cat_order, by_cat_cum = _segment_cdf(category, item_popularity)
    segment = category * n_brand + brand
    by_brand_order, by_brand_cum = _segment_cdf(segment, item_popularity)
    has_pair = np.zeros(n_cat * n_brand, dtype=bool)
    has_pair[segment] = True

    return Catalog(
        product_id=padded(np.arange(1, N_PRODUCTS + 1), 5, "P"),
        name=pa.array(names, type=pa.string()),
        category=category,
        brand=brand,
        list_price_cents=list_cents,
        popularity=item_popularity,
        change_product=change_product[order],
        change_at=change_at[order],
        change_cents=change_cents[order],
        window_start=window.start,
        by_category_order=by_cat_order,
        by_category_cum=by_cat_cum,
        by_brand_order=by_brand_order,
        by_brand_cum=by_brand_cum,
        has_category_brand=has_pair,
    )


def category_names() -> pa.Array:
    """Category display names in index order."""
    return strings([c[0] for c in vocab.CATEGORIES])
