"""Builders for decision tests: a day of sales shaped like the sample world's, and customers.

Categories and durability follow the generator's vocabulary (display names as the offers source
writes them); everything is seeded so tests are reproducible.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from decisions.types import DISPLAY_CHANNELS, MESSAGE_CHANNELS, CustomerFacts, Sale, SaleItem

#: (display name, durable?)
CATEGORIES: tuple[tuple[str, bool], ...] = (
    ("Apparel", False),
    ("Footwear", True),
    ("Electronics", True),
    ("Home & Kitchen", True),
    ("Beauty", False),
    ("Sports & Outdoors", True),
    ("Toys & Games", False),
    ("Books", False),
    ("Grocery", False),
    ("Pet Supplies", False),
    ("Jewelry & Accessories", True),
    ("Health & Wellness", False),
)
THEMES: tuple[str, ...] = ("brand-spotlight", "new-arrivals", "clearance", "flash-deal")
BRANDS: tuple[str, ...] = tuple(f"Brand{i:02d}" for i in range(30))

#: A day's sales start at 14:00 UTC (the policy's default period start).
NOW = datetime(2026, 10, 20, 15, 0, tzinfo=UTC)


def make_sales(
    n_sales: int = 40,
    items_per_sale: int = 10,
    now: datetime = NOW,
    seed: int = 1,
    days: int = 2,
) -> list[Sale]:
    """``n_sales`` sales running from 14:00 before ``now`` for ``days`` days, distinct products."""
    rng = random.Random(seed)
    starts = now.replace(hour=14, minute=0, second=0, microsecond=0)
    if starts > now:
        starts -= timedelta(days=1)
    sales = []
    for s in range(n_sales):
        category = CATEGORIES[s % len(CATEGORIES)][0]
        brand = rng.choice(BRANDS) if rng.random() < 0.7 else None
        discount = rng.choice((10, 20, 30, 40, 50))
        items = []
        for i in range(items_per_sale):
            regular = round(rng.uniform(10, 200), 2)
            items.append(
                SaleItem(
                    product_id=f"P{s:03d}{i:02d}",
                    product_name=f"{category} item {s}-{i}",
                    category=category,
                    brand=brand or rng.choice(BRANDS),
                    regular_price=regular,
                    sale_price=round(regular * (1 - discount / 100), 2),
                )
            )
        sales.append(
            Sale(
                sale_id=f"S{s:03d}",
                title=f"{THEMES[s % len(THEMES)]}: {category}, up to {discount}% off",
                theme=THEMES[s % len(THEMES)],
                category=category,
                brand=brand,
                discount_percent=float(discount),
                starts_at=starts,
                ends_at=starts + timedelta(days=days),
                items=tuple(items),
            )
        )
    return sales


def make_facts(
    customer_id: str = "C000001",
    *,
    assignment_id: str | None = None,
    seed: int = 0,
    consents: dict[str, bool | None] | None = None,
    **overrides: object,
) -> CustomerFacts:
    """A customer with affinities to a few categories, some brands and recommendations."""
    rng = random.Random(seed)
    liked = rng.sample([c for c, _ in CATEGORIES], 3)
    weights = sorted((rng.random() for _ in liked), reverse=True)
    total = sum(weights) * 1.3
    values: dict[str, object] = {
        "customer_id": customer_id,
        "assignment_id": assignment_id or customer_id,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "consents": {"email": True, "sms": None, "push": False} if consents is None else consents,
        # an address on every channel unless a test says otherwise (``reachable=...``)
        "reachable": MESSAGE_CHANNELS | DISPLAY_CHANNELS,
        "segments": frozenset({"frequent_buyers"}),
        "traits": {
            "purchase_probability": rng.random(),
            "favourite_category": liked[0],
            "open_rate_90d": 0.3,
            "click_rate_90d": 0.05,
            "email_sends_90d": 20,
            "predicted_clv": rng.uniform(0, 500),
        },
        "category_affinity": {c: w / total for c, w in zip(liked, weights, strict=True)},
        "brands_bought": frozenset(rng.sample(BRANDS, 3)),
        "last_viewed_category": liked[1],
        "recommended_products": {
            f"P{rng.randrange(40):03d}{rng.randrange(10):02d}": 1.0 - k / 10 for k in range(5)
        },
    }
    values.update(overrides)
    return CustomerFacts(**values)  # type: ignore[arg-type]
