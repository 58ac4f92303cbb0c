"""The live profile (``Customer.live``): what the stream processor saw seconds ago.

Read from ``CDP_HOME/events/state.sqlite`` (``api.repositories.live``), product names joined
from the snapshot's catalogue. No field holds personal data: product ids, times and counts.
"""

from __future__ import annotations

import strawberry

from api.graphql.budget import list_size
from api.graphql.types.product import Product, has_recommendations, list_limit
from api.graphql.types.scalars import DateTime
from api.repositories.database import Row
from api.repositories.live import iso
from events.live import LiveProfile as LiveData
from events.types import EventKind

#: Most recent products one list returns (the processor keeps at most 500), and cart lines.
MAX_LIVE_ITEMS = 100
MAX_CART_LINES = 50


async def products(info: strawberry.Info, ids: list[str]) -> list[Product]:
    """Catalogue rows of ``ids`` from the snapshot; a product it does not list yet (new in
    real time) keeps its id with null name."""
    found: list[Row | None] = [None] * len(ids)
    if ids and has_recommendations(info):  # the snapshot publishes the products table
        found = await info.context.loaders.products.load_many(ids)
    return [
        Product.from_row(row)
        if row is not None
        else Product(id=strawberry.ID(pid), name=None, category=None, brand=None, price=None)
        for pid, row in zip(ids, found, strict=True)
    ]


@strawberry.type(description="A product the customer viewed, most recent view.")
class LiveProductView:
    product: Product
    viewed_at: DateTime


@strawberry.type(description="A line of the customer's cart as of the last event.")
class LiveCartLine:
    product: Product
    quantity: int


@strawberry.type(description="Events of one canonical kind the live path counted.")
class LiveCounter:
    kind: str = strawberry.field(description="page_view, product_view, add_to_cart, ...")
    count: int


@strawberry.type(
    description="What the customer did in the last seconds, ahead of the next batch run "
    "(the stream processor's live profile, merged over the customer's merged ids)."
)
class LiveProfile:
    state: strawberry.Private[LiveData]
    first_seen_at: DateTime
    last_seen_at: DateTime
    is_provisional: bool = strawberry.field(
        description="Only known to the live path so far: the next batch run reconciles it."
    )

    @classmethod
    def from_state(cls, state: LiveData) -> LiveProfile:
        """Build from the events library's live profile."""
        return cls(
            state=state,
            first_seen_at=DateTime(iso(state.first_seen_at)),
            last_seen_at=DateTime(iso(state.last_seen_at)),
            is_provisional=state.is_provisional,
        )

    @strawberry.field(
        description=f"Products viewed, most recent first (at most {MAX_LIVE_ITEMS}).",
        metadata=list_size(MAX_LIVE_ITEMS, "first"),
    )
    async def recent_products(
        self, info: strawberry.Info, first: int = 10
    ) -> list[LiveProductView]:
        views = self.state.recent_products[: list_limit(first, MAX_LIVE_ITEMS)]
        found = await products(info, [product_id for product_id, _ in views])
        return [
            LiveProductView(product=product, viewed_at=DateTime(iso(at)))
            for product, (_, at) in zip(found, views, strict=True)
        ]

    @strawberry.field(
        description=f"The cart now, by product id (at most {MAX_CART_LINES} lines).",
        metadata=list_size(MAX_CART_LINES),
    )
    async def cart(self, info: strawberry.Info) -> list[LiveCartLine]:
        lines = self.state.cart[:MAX_CART_LINES]
        found = await products(info, [product_id for product_id, _ in lines])
        return [
            LiveCartLine(product=product, quantity=quantity)
            for product, (_, quantity) in zip(found, lines, strict=True)
        ]

    @strawberry.field(
        description="Events counted by the live path, per kind.",
        metadata=list_size(len(EventKind)),
    )
    def counters(self) -> list[LiveCounter]:
        return [LiveCounter(kind=k, count=n) for k, n in sorted(self.state.counters.items())]
