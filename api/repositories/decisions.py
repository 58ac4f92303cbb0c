"""What decisions read from the snapshot: customer facts, the sales running now, sales by id.

Facts and running sales are the decision library's own reads (``decisions.facts``, one home
for what a decision may know, shared with the Dagster batch); they run here on the request's
connection under its deadline. ``sales_by_id`` is the API's: a logged decision may name a sale
that has ended since, which ``load_sales`` (running sales only) no longer returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from api.repositories.database import RequestDatabase
from decisions.facts import load_facts, load_sales
from decisions.types import CustomerFacts, Sale, SaleItem


def load_customer_facts(
    db: RequestDatabase, customer_ids: Sequence[str]
) -> dict[str, CustomerFacts]:
    """Facts of the given (current) customer ids; a missing id is absent from the result."""
    ids = list(customer_ids)
    return db.with_connection(lambda conn: load_facts(conn, ids))


def load_running_sales(db: RequestDatabase, now: datetime) -> list[Sale]:
    """The sales running at ``now`` with their items."""
    return db.with_connection(lambda conn: load_sales(conn, now))


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def sales_by_id(db: RequestDatabase, sale_ids: Sequence[str]) -> dict[str, Sale]:
    """Sales (running or not) by id, with their items; unknown ids are absent."""
    ids = list(dict.fromkeys(sale_ids))
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    headers = db.dicts(
        "select sale_id, title, theme, category, brand, discount_percent, starts_at, ends_at "
        f"from sales where sale_id in ({marks})",
        ids,
    )
    items: dict[str, list[SaleItem]] = {}
    for row in db.dicts(
        "select sale_id, product_id, product_name, category, brand, regular_price, sale_price "
        f"from sale_items where sale_id in ({marks}) order by sale_id, product_id",
        ids,
    ):
        items.setdefault(row["sale_id"], []).append(
            SaleItem(
                product_id=row["product_id"],
                product_name=row["product_name"] or "",
                category=row["category"] or "",
                brand=row["brand"] or "",
                regular_price=float(row["regular_price"] or 0.0),
                sale_price=float(row["sale_price"] or 0.0),
            )
        )
    return {
        row["sale_id"]: Sale(
            sale_id=row["sale_id"],
            title=row["title"] or "",
            theme=row["theme"] or "",
            category=row["category"] or "",
            brand=row["brand"],
            discount_percent=float(row["discount_percent"] or 0.0),
            starts_at=_instant(row["starts_at"]),
            ends_at=_instant(row["ends_at"]),
            items=tuple(items.get(row["sale_id"], ())),
        )
        for row in headers
    }
