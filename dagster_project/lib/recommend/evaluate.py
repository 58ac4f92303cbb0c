"""Offline evaluation: hold out the last days before the as-of date, score what was bought.

Train on interactions before ``as_of + 1 day - holdout_days``; the relevant products of a
customer are the distinct products they bought in the holdout. Customers evaluated: those who
bought in the holdout and have some history before it (a customer without history gets the
same popularity list from every strategy). recall@k = hits / relevant products; NDCG@k with
binary relevance. Every strategy applies the same exclusions, computed at the holdout start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from dagster_project.lib.config import RecommendationsConfig
from dagster_project.lib.recommend.inputs import RecommendInputs, end_of_day
from dagster_project.lib.recommend.strategies import (
    CATEGORY_AFFINITY,
    COLLABORATIVE,
    CONTENT,
    HYBRID,
    POPULAR,
    Fitted,
    fit,
    recommend,
)

#: Strategies the evaluation compares, the hybrid first.
EVALUATED: tuple[str, ...] = (HYBRID, COLLABORATIVE, CONTENT, CATEGORY_AFFINITY, POPULAR)


@dataclass
class Evaluation:
    """recall@k and NDCG@k per strategy on the holdout (empty with a reason when impossible)."""

    k: int
    holdout_days: int
    customers: int
    recall: dict[str, float] = field(default_factory=dict)
    ndcg: dict[str, float] = field(default_factory=dict)
    skipped_reason: str | None = None

    def ratio(self, strategy: str, baseline: str, metric: str = "recall") -> float | None:
        """``strategy`` over ``baseline`` on a metric (None when the baseline is 0 or absent)."""
        values = self.recall if metric == "recall" else self.ndcg
        base = values.get(baseline)
        if strategy not in values or not base:
            return None
        return values[strategy] / base


def ranking_metrics(
    recommended: pd.DataFrame, relevant: pd.DataFrame, k: int
) -> tuple[float, float]:
    """Mean recall@k and NDCG@k over the customers of ``relevant`` (customer_id, product_id)."""
    customers = relevant["customer_id"].unique()
    if len(customers) == 0:
        return 0.0, 0.0
    top = recommended[recommended["rank"] <= k]
    hits = top.merge(relevant.drop_duplicates(), on=["customer_id", "product_id"])
    gain = 1.0 / np.log2(hits["rank"].to_numpy() + 1.0)
    per_customer = pd.DataFrame({"customer_id": hits["customer_id"], "gain": gain})
    dcg = per_customer.groupby("customer_id")["gain"].sum()
    hit_count = hits.groupby("customer_id").size()
    relevant_count = relevant.drop_duplicates().groupby("customer_id").size()
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    ideal = relevant_count.clip(upper=k).map(lambda m: discounts[m - 1])
    recall = (hit_count.reindex(relevant_count.index, fill_value=0) / relevant_count).mean()
    ndcg = (dcg.reindex(ideal.index, fill_value=0.0) / ideal).mean()
    return float(recall), float(ndcg)


def evaluate(
    inputs: RecommendInputs, config: RecommendationsConfig, as_of: date, k: int = 10
) -> tuple[Evaluation, Fitted | None]:
    """Backtest every strategy on the last ``holdout_days`` before the end of ``as_of``."""
    end = end_of_day(as_of)
    cutoff = end - timedelta(days=config.holdout_days)
    result = Evaluation(k=k, holdout_days=config.holdout_days, customers=0)
    events = inputs.interactions
    holdout = events[
        (events["event_type"] == "purchase")
        & (events["occurred_at"] >= pd.Timestamp(cutoff))
        & (events["occurred_at"] < pd.Timestamp(end))
    ][["customer_id", "product_id"]].drop_duplicates()
    if holdout.empty:
        result.skipped_reason = (
            f"no purchases in the last {config.holdout_days} days: no evaluation"
        )
        return result, None
    fitted = fit(inputs.before(cutoff), config, cutoff)
    prepared = fitted.prepared
    index = pd.Index(prepared.customer_ids)
    rows = index.get_indexer(holdout["customer_id"].unique())
    rows = rows[rows >= 0]
    rows = rows[prepared.has_history[rows]]
    if len(rows) == 0:
        result.skipped_reason = "no customer who bought in the holdout has history before it"
        return result, fitted
    relevant = holdout[holdout["customer_id"].isin(prepared.customer_ids[rows])]
    result.customers = len(rows)
    for strategy in EVALUATED:
        if strategy == COLLABORATIVE and fitted.user_factors is None:
            continue
        recommended = recommend(fitted, config, strategy, rows=rows, n=k)
        result.recall[strategy], result.ndcg[strategy] = ranking_metrics(recommended, relevant, k)
    return result, fitted
