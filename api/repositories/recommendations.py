"""Recommendation reads: products, each customer's top-N, each product's similar products.

Batch-shaped like every repository (one statement per batch of keys). Products are joined in,
so a list of recommendations with their products is one statement.
"""

from __future__ import annotations

from collections.abc import Sequence

from api.repositories.batch import many_per_key, one_per_key
from api.repositories.database import Database, Row

_PRODUCT_COLUMNS = "p.product_name, p.category, p.brand, p.price"


def products_by_id(db: Database, ids: Sequence[str]) -> dict[str, Row]:
    """Catalogue rows by product id (unknown ids are absent)."""
    return one_per_key(db, "select * from products where product_id in ({keys})", ids, "product_id")


def recommendations_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """Each customer's recommendations in rank order, with their product's catalogue row."""
    return many_per_key(
        db,
        "select r.customer_id, r.rank, r.product_id, r.score, r.strategy, "
        f"{_PRODUCT_COLUMNS} from customer_recommendations as r "
        "left join products as p on p.product_id = r.product_id "
        "where r.customer_id in ({keys}) order by r.customer_id, r.rank",
        ids,
        "customer_id",
    )


def similar_by_product(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """Each product's similar products in rank order, with their catalogue rows."""
    return many_per_key(
        db,
        "select s.product_id as source_product_id, s.rank, s.score, "
        f"s.similar_product_id as product_id, {_PRODUCT_COLUMNS} from similar_products as s "
        "left join products as p on p.product_id = s.similar_product_id "
        "where s.product_id in ({keys}) order by s.product_id, s.rank",
        ids,
        "source_product_id",
    )
