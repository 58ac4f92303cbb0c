"""What the recommenders read: interactions, purchases, the catalogue and the customers.

Read from the warehouse dbt built (read-only; dbt is not writing during this step): web events
with a product (``customer_events``), order lines with their customer (``int_order_lines_priced``
joined to ``int_orders_resolved``), the catalogue (the ``products`` mart) and every customer
(``customers``). Nothing after the end of the as-of day is read, whatever the warehouse holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from dagster_project.lib.config import RecommendationsConfig

#: Web event types that count as interest in a product, with their config weight's name.
WEB_EVENT_TYPES: tuple[str, ...] = ("product_view", "add_to_cart")
#: Order statuses whose lines are not a purchase.
UNDONE_STATUSES: tuple[str, ...] = ("cancelled", "canceled", "returned", "refunded")


class RecommendInputError(ValueError):
    """The warehouse cannot be read (not built yet, or a model is missing)."""


@dataclass(frozen=True)
class RecommendInputs:
    """Frames the recommenders work on.

    ``interactions``: customer_id, product_id, event_type ('product_view' | 'add_to_cart' |
    'purchase'), occurred_at (UTC). ``products``: product_id, product_name, category, brand,
    price. ``customers``: customer_id (everyone who gets recommendations).
    """

    interactions: pd.DataFrame
    products: pd.DataFrame
    customers: pd.DataFrame

    def before(self, cutoff: datetime) -> RecommendInputs:
        """The same inputs with only the interactions before ``cutoff``."""
        kept = self.interactions[self.interactions["occurred_at"] < pd.Timestamp(cutoff)]
        return RecommendInputs(kept.reset_index(drop=True), self.products, self.customers)


def end_of_day(as_of: date) -> datetime:
    """The first instant after the as-of day (UTC): everything before it is visible."""
    return datetime.combine(as_of + timedelta(days=1), time(), tzinfo=UTC)


def category_key(category: str | None) -> str:
    """A category as compared with the durable list: lowercase letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", (category or "").lower())


def is_durable(categories: pd.Series, config: RecommendationsConfig) -> pd.Series:
    """Whether each category is a durable one (from ``recommendations.durable_categories``)."""
    durable = {category_key(c) for c in config.durable_categories}
    return categories.map(lambda c: category_key(c) in durable if isinstance(c, str) else False)


_PRODUCTS_SQL = """
    select product_id, product_name, category, brand, price from products
"""

_WEB_SQL = """
    select customer_id, product_id, event_type, occurred_at
    from customer_events
    where channel = 'web' and product_id is not null and customer_id is not null
      and event_type in ({types}) and occurred_at < ?
"""

_PURCHASES_SQL = """
    with orders as (
        select distinct order_id, customer_id from int_orders_resolved
        where customer_id is not null
    )
    select orders.customer_id, lines.product_id, 'purchase' as event_type,
           lines.ordered_at as occurred_at
    from int_order_lines_priced as lines
    inner join orders on orders.order_id = lines.order_id
    where lines.product_id is not null and lines.ordered_at < ?
      and coalesce(lines.status, '') not in ({undone})
"""


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def read_inputs(warehouse: Path, as_of: date) -> RecommendInputs:
    """The inputs as of the end of ``as_of``, from the warehouse (read-only)."""
    if not warehouse.exists():
        raise RecommendInputError(f"no warehouse at {warehouse}: materialize the dbt models first")
    cutoff = end_of_day(as_of)
    try:
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            products = connection.sql(_PRODUCTS_SQL).df()
            customers = connection.sql("select customer_id from customers").df()
            web = connection.execute(_WEB_SQL.format(types=_quoted(WEB_EVENT_TYPES)), [cutoff]).df()
            bought = connection.execute(
                _PURCHASES_SQL.format(undone=_quoted(UNDONE_STATUSES)), [cutoff]
            ).df()
    except duckdb.CatalogException as exc:
        raise RecommendInputError(
            f"the warehouse at {warehouse} lacks a model the recommenders read ({exc}); "
            "run dbt first"
        ) from exc
    return build_inputs(pd.concat([web, bought], ignore_index=True), products, customers)


def build_inputs(
    interactions: pd.DataFrame, products: pd.DataFrame, customers: pd.DataFrame
) -> RecommendInputs:
    """Typed, cleaned inputs from raw frames (also how tests and benchmarks build them)."""
    interactions = interactions.dropna(subset=["customer_id", "product_id", "occurred_at"])
    interactions = pd.DataFrame(
        {
            "customer_id": interactions["customer_id"].astype(str),
            "product_id": interactions["product_id"].astype(str),
            "event_type": interactions["event_type"].astype(str),
            "occurred_at": pd.to_datetime(interactions["occurred_at"], utc=True),
        }
    ).reset_index(drop=True)
    products = products.drop_duplicates("product_id", keep="last").reset_index(drop=True)
    products = pd.DataFrame(
        {
            "product_id": products["product_id"].astype(str),
            "product_name": products.get("product_name", pd.Series(dtype=object)),
            "category": products["category"],
            "brand": products["brand"],
            "price": pd.to_numeric(products["price"], errors="coerce"),
        }
    )
    customers = pd.DataFrame(
        {"customer_id": customers["customer_id"].dropna().astype(str).drop_duplicates()}
    ).reset_index(drop=True)
    return RecommendInputs(interactions, products, customers)
