"""Product recommendations: top-N per customer and similar products per product.

Semantics in brief:

* **Input** (``inputs``): implicit feedback per customer and product from the warehouse (web
  product views and cart adds, purchased order lines), weighted by ``recommendations.
  interaction_weights``; the catalogue (category, brand, price); every customer. As of the end
  of the as-of day.
* **Strategies** (``strategies``): collaborative filtering with ``implicit``'s ALS on log-scaled
  weights; content from the customer's category and brand shares (favouring popular products
  within them); popularity over the last ``popularity_window_days``; a **hybrid** that blends
  the three per-customer-scaled scores with ``recommendations.weights``.
* **Exclusions**: out-of-range products (no catalogue row or no positive price), durables
  already bought, and every product of a durable category bought within
  ``durable_suppression_days`` (``durable_categories`` in cdp.yml: the catalogue does not say
  which categories are durable). Consumables bought before stay eligible.
* **Fallbacks, never a crash**: a customer without history gets the popularity list (strategy
  ``popular``); fewer than ``min_customers`` active customers or fewer than two products
  interacted with: no ALS model, the hybrid is content + popularity (strategy ``content``) and
  similar products come from co-occurrence; no interactions at all: no recommendations. Each
  fallback is stated in ``RecommendationResult.notes``.
* **Evaluation** (``evaluate``): recall@10 and NDCG@10 on the last ``holdout_days`` before the
  as-of date, of every strategy and the category-affinity baseline.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Final

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dagster_project.lib.config import RecommendationsConfig
from dagster_project.lib.recommend.evaluate import EVALUATED, Evaluation, evaluate, ranking_metrics
from dagster_project.lib.recommend.inputs import (
    RecommendInputError,
    RecommendInputs,
    build_inputs,
    end_of_day,
    read_inputs,
)
from dagster_project.lib.recommend.strategies import (
    CATEGORY_AFFINITY,
    COLLABORATIVE,
    CONTENT,
    HYBRID,
    POPULAR,
    STRATEGIES,
    Fitted,
    fit,
    recommend,
    similar_products,
)

__all__ = [
    "CATEGORY_AFFINITY",
    "COLLABORATIVE",
    "CONTENT",
    "CUSTOMER_RECOMMENDATIONS_SCHEMA",
    "EVALUATED",
    "HYBRID",
    "POPULAR",
    "RECOMMENDATIONS_FOLDER",
    "SIMILAR_PRODUCTS_SCHEMA",
    "STRATEGIES",
    "Evaluation",
    "Fitted",
    "RecommendInputError",
    "RecommendInputs",
    "RecommendationResult",
    "build_inputs",
    "customer_recommendations_path",
    "evaluate",
    "fit",
    "ranking_metrics",
    "read_inputs",
    "recommend",
    "run_recommendations",
    "similar_products",
    "similar_products_path",
    "write_parquet",
]

#: Folder under the lake that dbt's ``recommendations`` source reads.
RECOMMENDATIONS_FOLDER: Final[str] = "_recommendations"

CUSTOMER_RECOMMENDATIONS_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        ("customer_id", pa.string()),
        ("rank", pa.int32()),
        ("product_id", pa.string()),
        ("score", pa.float64()),
        ("strategy", pa.string()),
    ]
)
SIMILAR_PRODUCTS_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        ("product_id", pa.string()),
        ("rank", pa.int32()),
        ("similar_product_id", pa.string()),
        ("score", pa.float64()),
    ]
)


def customer_recommendations_path(lake: Path) -> Path:
    """Where the recommendations asset writes the top-N per customer."""
    return lake / RECOMMENDATIONS_FOLDER / "customer_recommendations.parquet"


def similar_products_path(lake: Path) -> Path:
    """Where the recommendations asset writes the similar products."""
    return lake / RECOMMENDATIONS_FOLDER / "similar_products.parquet"


@dataclass
class RecommendationResult:
    """Both outputs, what produced them, and what an operator should know."""

    recommendations: pd.DataFrame
    similar: pd.DataFrame
    similar_method: str
    customers: int
    evaluation: Evaluation
    notes: list[str] = field(default_factory=list)

    @property
    def by_strategy(self) -> dict[str, int]:
        """Customers per strategy of their list."""
        firsts = self.recommendations[self.recommendations["rank"] == 1]
        counts = Counter(firsts["strategy"])
        return {strategy: counts.get(strategy, 0) for strategy in STRATEGIES}

    @property
    def covered_customers(self) -> int:
        """Customers with at least one recommendation."""
        return int(self.recommendations["customer_id"].nunique())

    @property
    def coverage(self) -> float:
        """Share of customers with at least one recommendation."""
        return self.covered_customers / self.customers if self.customers else 0.0

    @property
    def catalogue_coverage(self) -> int:
        """Distinct products recommended to anyone."""
        return int(self.recommendations["product_id"].nunique())


def run_recommendations(
    inputs: RecommendInputs,
    config: RecommendationsConfig,
    as_of: date,
    *,
    with_evaluation: bool = True,
) -> RecommendationResult:
    """Evaluate on the holdout, then fit on everything up to ``as_of`` and recommend."""
    if with_evaluation:
        evaluation, _ = evaluate(inputs, config, as_of)
    else:
        evaluation = Evaluation(k=10, holdout_days=config.holdout_days, customers=0)
        evaluation.skipped_reason = "not evaluated"
    fitted = fit(inputs, config, end_of_day(as_of))
    notes = list(fitted.prepared.notes)
    if fitted.collaborative_skipped:
        notes.append(fitted.collaborative_skipped)
    if inputs.products.empty:
        notes.append("no products in the catalogue: nothing to recommend")
    if not fitted.prepared.has_history.any():
        notes.append("no interactions: no recommendations (popularity has nothing to rank)")
    recommendations = recommend(fitted, config)
    similar, method = similar_products(fitted, config.similar_n)
    if evaluation.skipped_reason:
        notes.append(evaluation.skipped_reason)
    return RecommendationResult(
        recommendations=recommendations,
        similar=similar,
        similar_method=method,
        customers=len(fitted.prepared.customer_ids),
        evaluation=evaluation,
        notes=notes,
    )


def write_parquet(frame: pd.DataFrame, schema: pa.Schema, path: Path) -> None:
    """Atomically replace one output file (an empty file when there are no rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame[list(schema.names)], schema=schema, preserve_index=False)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)
