"""Behavioural traits of a customer (dbt mart customer_traits)."""

from __future__ import annotations

import dataclasses
from typing import Any

import strawberry

from api.graphql.types.scalars import Date, DateTime


@strawberry.type(description="Traits computed as of the snapshot's as-of date (see dbt docs).")
class CustomerTraits:
    as_of_date: Date | None
    recency_days: int | None = strawberry.field(description="Days since the last placed order.")
    frequency: int | None = strawberry.field(description="Kept orders.")
    monetary: float | None = strawberry.field(description="Lifetime revenue.")
    r_score: int | None = strawberry.field(description="Recency score 1-5 (5 = most recent).")
    f_score: int | None
    m_score: int | None
    order_count: int | None = strawberry.field(description="Placed orders.")
    lifetime_revenue: float | None
    average_order_value: float | None
    first_order_at: DateTime | None
    last_order_at: DateTime | None
    return_count: int | None
    order_count_30d: int | None
    order_count_90d: int | None
    days_since_last_visit: int | None
    web_active_days_30d: int | None
    product_view_count_30d: int | None
    add_to_cart_count_30d: int | None
    favourite_category: str | None
    favourite_brand: str | None
    email_sends_30d: int | None
    email_sends_90d: int | None
    open_rate_30d: float | None
    open_rate_90d: float | None
    click_rate_30d: float | None
    click_rate_90d: float | None
    engagement_score: float | None = strawberry.field(description="0-100.")
    last_active_at: DateTime | None
    purchase_probability: float | None = strawberry.field(
        default=None,
        description=(
            "Probability of an order in the next purchase horizon (cdp.yml "
            "models.purchase_propensity.horizon_days, default 30); null without history."
        ),
    )
    churn_risk: float | None = strawberry.field(
        default=None,
        description=(
            "Probability that a previous buyer places no order in the next churn horizon "
            "(models.churn.horizon_days, default 90); null for customers who never bought."
        ),
    )
    predicted_clv: float | None = strawberry.field(
        default=None,
        description=(
            "Expected revenue in the next CLV horizon (models.clv.horizon_days, default 365): "
            "expected orders x expected order value; null without history."
        ),
    )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CustomerTraits:
        """Build from a customer_traits row (columns the snapshot lacks become null)."""
        return cls(**{name: row.get(name) for name in _FIELDS})


_FIELDS = tuple(f.name for f in dataclasses.fields(CustomerTraits))
