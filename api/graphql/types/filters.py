"""Inputs of ``customers(filter:)``: segment membership and trait thresholds."""

from __future__ import annotations

import strawberry


@strawberry.input(description="A threshold on one numeric trait; all given bounds must hold.")
class TraitCondition:
    name: str = strawberry.field(
        description="A numeric trait, camelCase or snake_case (orderCount, lifetime_revenue)."
    )
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    eq: float | None = None


@strawberry.input(description="Customers matching every given criterion.")
class CustomerFilter:
    segment: str | None = strawberry.field(default=None, description="Member of this segment.")
    traits: list[TraitCondition] | None = strawberry.field(
        default=None, description="Every condition must hold."
    )
