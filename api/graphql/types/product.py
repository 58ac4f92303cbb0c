"""Products and recommendations (dbt marts products, customer_recommendations,
similar_products)."""

from __future__ import annotations

from typing import Final

import strawberry

from api.graphql.budget import list_size
from api.graphql.errors import BadInputError
from api.repositories.database import Row

#: Most recommendations or similar products one list returns (and its size for the budget).
MAX_RECOMMENDATIONS: Final[int] = 50
MAX_SIMILAR: Final[int] = 20
#: Tables a snapshot published before recommendations existed lacks.
RECOMMENDATION_TABLES: Final[tuple[str, ...]] = (
    "products",
    "customer_recommendations",
    "similar_products",
)


def list_limit(first: int, maximum: int, argument: str = "first") -> int:
    """``first`` checked against 1..maximum (a client error otherwise)."""
    if not 1 <= first <= maximum:
        raise BadInputError(f"`{argument}` must be between 1 and {maximum}")
    return first


def has_recommendations(info: strawberry.Info) -> bool:
    """Whether the request's snapshot holds the recommendation tables."""
    tables = info.context.snapshot.manifest.tables
    return all(name in tables for name in RECOMMENDATION_TABLES)


@strawberry.type(description="A product of the catalogue (latest catalogue row).")
class Product:
    id: strawberry.ID = strawberry.field(description="product_id.")
    name: str | None
    category: str | None
    brand: str | None
    price: float | None = strawberry.field(description="Current list price.")

    @classmethod
    def from_row(cls, row: Row) -> Product:
        """Build from a row with product_id and the catalogue columns."""
        return cls(
            id=strawberry.ID(row["product_id"]),
            name=row.get("product_name"),
            category=row.get("category"),
            brand=row.get("brand"),
            price=row.get("price"),
        )

    @strawberry.field(
        description=f"Most similar products, best first (at most {MAX_SIMILAR}).",
        metadata=list_size(MAX_SIMILAR),
    )
    async def similar(self, info: strawberry.Info, first: int = 10) -> list[SimilarProduct]:
        limit = list_limit(first, MAX_SIMILAR)
        if not has_recommendations(info):
            return []
        rows = await info.context.loaders.similar_products.load(str(self.id))
        return [
            SimilarProduct(product=Product.from_row(r), score=r["score"], rank=r["rank"])
            for r in rows[:limit]
        ]


@strawberry.type(description="A product similar to another, with its cosine similarity.")
class SimilarProduct:
    product: Product
    score: float
    rank: int


@strawberry.type(description="One recommended product for a customer.")
class Recommendation:
    product: Product
    score: float = strawberry.field(description="Higher is better; comparable within a list.")
    rank: int = strawberry.field(description="1 = best.")
    strategy: str = strawberry.field(
        description="What produced the list: hybrid, content, popular or collaborative."
    )

    @classmethod
    def from_row(cls, row: Row) -> Recommendation:
        """Build from a customer_recommendations row joined with its product."""
        return cls(
            product=Product.from_row(row),
            score=row["score"],
            rank=row["rank"],
            strategy=row["strategy"],
        )
