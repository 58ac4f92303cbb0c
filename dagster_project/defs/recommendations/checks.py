"""Checks of the recommendations: a hybrid that ranks worse than popularity is flagged (warn)."""

from __future__ import annotations

from typing import Final

import dagster as dg

from dagster_project.lib.recommend import HYBRID, POPULAR, Evaluation

CUSTOMER_RECOMMENDATIONS_KEY: Final[dg.AssetKey] = dg.AssetKey(
    ["recommendations", "customer_recommendations"]
)
SIMILAR_PRODUCTS_KEY: Final[dg.AssetKey] = dg.AssetKey(["recommendations", "similar_products"])
HYBRID_CHECK_NAME: Final[str] = "hybrid_beats_popularity"

HYBRID_CHECK: Final[dg.AssetCheckSpec] = dg.AssetCheckSpec(
    name=HYBRID_CHECK_NAME,
    asset=CUSTOMER_RECOMMENDATIONS_KEY,
    description=(
        "Warns when the hybrid's recall@10 on the holdout (the last holdout_days before the "
        "as-of date) is below the popularity baseline's: the personalised lists would then be "
        "worse than showing everyone the best sellers."
    ),
)


def hybrid_check_result(evaluation: Evaluation) -> dg.AssetCheckResult:
    """Pass when the hybrid's recall@k is at least popularity's (or nothing could be measured)."""
    hybrid = evaluation.recall.get(HYBRID)
    popular = evaluation.recall.get(POPULAR)
    metadata: dict[str, float | int | str] = {"customers_evaluated": evaluation.customers}
    if hybrid is None or popular is None:
        metadata["not_evaluated"] = evaluation.skipped_reason or "no evaluation"
        return dg.AssetCheckResult(
            check_name=HYBRID_CHECK_NAME,
            asset_key=CUSTOMER_RECOMMENDATIONS_KEY,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=metadata,
        )
    metadata["hybrid_recall_at_k"] = hybrid
    metadata["popular_recall_at_k"] = popular
    return dg.AssetCheckResult(
        check_name=HYBRID_CHECK_NAME,
        asset_key=CUSTOMER_RECOMMENDATIONS_KEY,
        passed=hybrid >= popular,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )
