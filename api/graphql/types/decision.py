"""Decisions as channels see them: the items to show, the message, and why.

The contract channel teams code against (issue 13): ``Decision { decisionId send reasons theme
items subject blocks expiresAt experiment }`` and ``DecisionItem { product sale score propensity
isWildcard reasons }``. The subject and blocks are rendered from templates with the customer's
first name and the like, so they are personal data, declared ``Pii.RENDERED``: a key without
pii:read gets the same template rendered with those variables at their fallbacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import strawberry
from strawberry.scalars import JSON

from api.graphql.budget import list_size
from api.graphql.pii import Pii, personal
from api.graphql.types.identifier import IdentifierLookup
from api.graphql.types.product import Product
from api.graphql.types.scalars import DateTime
from decisions import types as model

#: Items of a decision as the request budget counts them: placements hold a few (a policy may
#: allow up to 50; the response size cap bounds what an estimate misses).
DECISION_ITEMS_ESTIMATE: Final[int] = 10
#: Most logged decisions ``Customer.decisions`` returns.
MAX_RECENT_DECISIONS: Final[int] = 50
_RENDERED = (
    " Personal data: without pii:read, rendered with the personal variables at their fallbacks."
)


def instant(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as the snapshot writes instants."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@strawberry.input(description="A customer by id or by identifier, as `customer(...)` accepts.")
class CustomerRef:
    id: strawberry.ID | None = strawberry.field(
        default=None, description="Customer id (an id retired by a merge finds the survivor)."
    )
    lookup: IdentifierLookup | None = strawberry.field(
        default=None, description="Any identifier, normalized as identity does."
    )


@strawberry.type(description="One sale of the calendar (the offers source).")
class Sale:
    id: strawberry.ID = strawberry.field(description="sale_id (emails name it as campaign_id).")
    title: str
    theme: str = strawberry.field(description="Theme code (flash-deal, brand-spotlight, ...).")
    category: str
    brand: str | None = strawberry.field(description="Null for a collection of several brands.")
    discount_percent: float
    starts_at: DateTime
    ends_at: DateTime = strawberry.field(description="Exclusive end.")

    @classmethod
    def from_sale(cls, sale: model.Sale) -> Sale:
        """Build from the decision library's sale."""
        return cls(
            id=strawberry.ID(sale.sale_id),
            title=sale.title,
            theme=sale.theme,
            category=sale.category,
            brand=sale.brand,
            discount_percent=sale.discount_percent,
            starts_at=instant(sale.starts_at),  # type: ignore[arg-type]
            ends_at=instant(sale.ends_at),  # type: ignore[arg-type]
        )


@strawberry.type(description="The experiment arm a customer is in, or the holdout.")
class ExperimentArm:
    experiment: str = strawberry.field(description="Experiment name ('holdout' for the holdout).")
    arm: str
    is_holdout: bool = strawberry.field(description="The global control group: no message.")


@strawberry.type(description="One chosen item: the product, its sale, and how it was chosen.")
class DecisionItem:
    product: Product | None = strawberry.field(
        description="The product as the sale lists it (catalogue name, category and brand; "
        "price: the list price before the sale)."
    )
    sale: Sale | None = strawberry.field(description="The sale the item is on (null if unknown).")
    score: float = strawberry.field(description="Ranking score (comparable within a decision).")
    propensity: float = strawberry.field(
        description="Probability with which the policy chose this item (for off-policy evaluation)."
    )
    is_wildcard: bool = strawberry.field(
        description="Outside the customer's known taste, chosen to learn."
    )
    reasons: list[str] = strawberry.field(description="Why it was chosen.")


def _product(product_id: str, item: model.SaleItem | None) -> Product:
    """The item's product from the sale's row (sale_items carries the catalogue's name,
    category and brand), so no second read per item; the id alone if the sale is gone."""
    if item is None:
        return Product(
            id=strawberry.ID(product_id), name=None, category=None, brand=None, price=None
        )
    return Product(
        id=strawberry.ID(item.product_id),
        name=item.product_name or None,
        category=item.category or None,
        brand=item.brand or None,
        price=item.regular_price,
    )


@strawberry.type(
    description="A decision: the same decision id, theme and items for every channel asking "
    "for the customer and placement within the placement's period; `send` and `reasons` are "
    "this channel's."
)
class Decision:
    customer: strawberry.Private[str]
    subject_masked: strawberry.Private[str | None]
    blocks_masked: strawberry.Private[JSON | None]
    decision_id: strawberry.ID
    customer_id: strawberry.ID = strawberry.field(description="The customer decided for.")
    channel: str = strawberry.field(description="The channel this answer is for.")
    placement: str
    policy_version: str = strawberry.field(description="sha256 prefix of the policy decided by.")
    decided_at: DateTime
    expires_at: DateTime | None = strawberry.field(
        description="End of the placement's period: the same decision until then."
    )
    send: bool = strawberry.field(
        description="Whether the message goes out on this channel (always true for display "
        "channels unless nothing is eligible)."
    )
    reasons: list[str] = strawberry.field(
        description="Why: consent:missing:email, cap:email_daily, holdout, no_eligible_items, ..."
    )
    theme: str | None = strawberry.field(description="The one theme the items share.")
    items: list[DecisionItem] = strawberry.field(metadata=list_size(DECISION_ITEMS_ESTIMATE))
    subject: str | None = strawberry.field(
        description="The rendered subject line." + _RENDERED, metadata=personal(Pii.RENDERED)
    )
    blocks: JSON | None = strawberry.field(
        description="Rendered blocks by name (HTML)." + _RENDERED,
        metadata=personal(Pii.RENDERED),
    )
    experiment: ExperimentArm | None = strawberry.field(
        description="The experiment arm, or the holdout."
    )
    is_holdout: bool

    def pii_owner(self) -> str:
        """Whose personal data the rendering holds (for the audit log)."""
        return self.customer

    @classmethod
    def from_decision(cls, decision: model.Decision, sales: Mapping[str, model.Sale]) -> Decision:
        """Build from the library's decision; ``sales`` by id resolve its items' sales."""
        items = []
        for item in decision.items:
            sale = sales.get(item.sale_id) if item.sale_id else None
            if sale is not None:
                shown, products = _sale_view(sale)
                product = products.get(item.product_id) or _product(item.product_id, None)
            else:
                shown, product = None, _product(item.product_id, None)
            items.append(
                DecisionItem(
                    product=product,
                    sale=shown,
                    score=item.score,
                    propensity=item.propensity,
                    is_wildcard=item.is_wildcard,
                    reasons=list(item.reasons),
                )
            )
        arm = decision.experiment
        return cls(
            customer=decision.customer_id,
            subject_masked=decision.subject_masked,
            blocks_masked=_blocks(decision.blocks_masked),
            decision_id=strawberry.ID(decision.decision_id),
            customer_id=strawberry.ID(decision.customer_id),
            channel=decision.channel,
            placement=decision.placement,
            policy_version=decision.policy_version,
            decided_at=instant(decision.decided_at),  # type: ignore[arg-type]
            expires_at=instant(decision.expires_at),  # type: ignore[arg-type]
            send=decision.send,
            reasons=list(decision.reasons),
            theme=decision.theme,
            items=items,
            subject=decision.subject,
            blocks=_blocks(decision.blocks),
            experiment=ExperimentArm(
                experiment=arm.experiment, arm=arm.arm, is_holdout=arm.is_holdout
            )
            if arm is not None
            else None,
            is_holdout=decision.is_holdout,
        )


#: Sale views by the library's sale object (id -> (sale, view, products by id)); the sales are
#: the snapshot's cached ones, so a few dozen entries serve every request of a day.
_SALE_VIEWS: dict[int, tuple[model.Sale, Sale, dict[str, Product]]] = {}
_MAX_SALE_VIEWS: Final[int] = 4096


def _sale_view(sale: model.Sale) -> tuple[Sale, dict[str, Product]]:
    """The GraphQL ``Sale`` and its items' ``Product`` values, built once per sale object.

    Building them per decided item (two timestamp formats and a scan of the sale's items each)
    was a measurable part of a ``decide``; the views are read-only, so requests share them.
    The entry holds ``sale``, so its ``id`` is not reused while cached.
    """
    cached = _SALE_VIEWS.get(id(sale))
    if cached is not None and cached[0] is sale:
        return cached[1], cached[2]
    products: dict[str, Product] = {}
    for sale_item in sale.items:
        products.setdefault(sale_item.product_id, _product(sale_item.product_id, sale_item))
    view = Sale.from_sale(sale)
    if len(_SALE_VIEWS) >= _MAX_SALE_VIEWS:
        _SALE_VIEWS.clear()
    _SALE_VIEWS[id(sale)] = (sale, view, products)
    return view, products


def _blocks(blocks: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(blocks) if blocks else None


def sale_ids(decisions: list[model.Decision]) -> list[str]:
    """Every sale id the decisions' items name."""
    return [item.sale_id for d in decisions for item in d.items if item.sale_id]
