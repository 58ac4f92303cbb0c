"""Recommendations: top-N products per customer and similar products, between the dbt stages.

Orchestration only; the work is ``dagster_project.lib.recommend``. Like the behavioural
clusters, the asset runs after the first dbt stage (reading the warehouse read-only), writes
Parquet under lake/_recommendations/, and the second dbt stage reads it as source
``recommendations.*`` into the contract-enforced marts the snapshot publishes.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

import time
from collections.abc import Iterator
from typing import Any

import dagster as dg

from dagster_project.defs.dbt.translator import dbt_asset_key
from dagster_project.defs.recommendations.checks import (
    CUSTOMER_RECOMMENDATIONS_KEY,
    HYBRID_CHECK,
    SIMILAR_PRODUCTS_KEY,
    hybrid_check_result,
)
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.markdown import markdown_table
from dagster_project.lib.recommend import (
    CUSTOMER_RECOMMENDATIONS_SCHEMA,
    EVALUATED,
    HYBRID,
    POPULAR,
    SIMILAR_PRODUCTS_SCHEMA,
    RecommendationResult,
    RecommendInputError,
    customer_recommendations_path,
    read_inputs,
    run_recommendations,
    similar_products_path,
    write_parquet,
)
from dagster_project.lib.recommend.strategies import CATEGORY_AFFINITY

#: dbt models the recommenders read.
RECOMMENDATION_INPUTS: tuple[str, ...] = (
    "customers",
    "customer_events",
    "int_orders_resolved",
    "int_order_lines_priced",
    "products",
)
GROUP = "recommendations"


def recommendation_metadata(result: RecommendationResult, seconds: float) -> dict[str, Any]:
    """Counts per strategy, coverage and the holdout evaluation, as the UI shows them."""
    evaluation = result.evaluation
    metadata: dict[str, Any] = {
        "dagster/row_count": len(result.recommendations),
        "customers": result.customers,
        "customers_with_recommendations": result.covered_customers,
        "coverage": dg.MetadataValue.float(round(result.coverage, 4)),
        "products_recommended": result.catalogue_coverage,
        "customers_by_strategy": dg.MetadataValue.md(
            markdown_table(["strategy", "customers"], sorted(result.by_strategy.items()))
        ),
        "seconds": dg.MetadataValue.float(round(seconds, 2)),
        "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in result.notes) or "none"),
    }
    if evaluation.skipped_reason:
        metadata["evaluation"] = evaluation.skipped_reason
        return metadata
    rows = [
        [
            strategy,
            round(evaluation.recall[strategy], 4),
            round(evaluation.ndcg[strategy], 4),
        ]
        for strategy in EVALUATED
        if strategy in evaluation.recall
    ]
    metadata["evaluation"] = dg.MetadataValue.md(
        f"Holdout: last {evaluation.holdout_days} days, {evaluation.customers} customers who "
        f"bought in it.\n\n"
        + markdown_table(["strategy", f"recall@{evaluation.k}", f"ndcg@{evaluation.k}"], rows)
    )
    metadata["recall_at_10_hybrid"] = dg.MetadataValue.float(round(evaluation.recall[HYBRID], 4))
    metadata["recall_at_10_popular"] = dg.MetadataValue.float(round(evaluation.recall[POPULAR], 4))
    for baseline in (POPULAR, CATEGORY_AFFINITY):
        ratio = evaluation.ratio(HYBRID, baseline)
        if ratio is not None:
            metadata[f"hybrid_vs_{baseline}_recall"] = dg.MetadataValue.float(round(ratio, 3))
    return metadata


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CUSTOMER_RECOMMENDATIONS_KEY,
            deps=[dbt_asset_key(name) for name in RECOMMENDATION_INPUTS],
            group_name=GROUP,
            kinds={"python", "parquet"},
            description=(
                "Top-N products per customer: implicit ALS on weighted views, cart adds and "
                "purchases, content from category and brand affinity and recent popularity, "
                "blended (hybrid); popularity for customers without history. Recently bought "
                "durables and out-of-range products excluded. Writes "
                "lake/_recommendations/customer_recommendations.parquet (dbt source "
                "recommendations.customer_recommendations); evaluated on the last 14 days."
            ),
        ),
        dg.AssetSpec(
            SIMILAR_PRODUCTS_KEY,
            deps=[dbt_asset_key(name) for name in RECOMMENDATION_INPUTS],
            group_name=GROUP,
            kinds={"python", "parquet"},
            description=(
                "Similar products per product: cosine of the ALS item factors (co-occurrence "
                "without a model). Writes lake/_recommendations/similar_products.parquet."
            ),
        ),
    ],
    check_specs=[HYBRID_CHECK],
    name="recommendations",
)
def recommendations(context: dg.AssetExecutionContext, cdp: CdpResource) -> Iterator[Any]:
    """Read the warehouse, evaluate, recommend, write both files."""
    workspace = cdp.workspace()
    config = cdp.loaded_config().config.recommendations
    as_of = cdp.as_of_date() or cdp.now().date()
    started = time.perf_counter()
    try:
        inputs = read_inputs(workspace.warehouse, as_of)
    except RecommendInputError as exc:
        raise dg.Failure(description=str(exc)) from exc
    result = run_recommendations(inputs, config, as_of)
    seconds = time.perf_counter() - started
    recommendations_path = customer_recommendations_path(workspace.lake)
    similar_path = similar_products_path(workspace.lake)
    write_parquet(result.recommendations, CUSTOMER_RECOMMENDATIONS_SCHEMA, recommendations_path)
    write_parquet(result.similar, SIMILAR_PRODUCTS_SCHEMA, similar_path)
    for note in result.notes:
        context.log.warning(f"recommendations: {note}")
    metadata = recommendation_metadata(result, seconds)
    metadata["path"] = dg.MetadataValue.path(str(recommendations_path))
    yield dg.MaterializeResult(asset_key=CUSTOMER_RECOMMENDATIONS_KEY, metadata=metadata)
    yield dg.MaterializeResult(
        asset_key=SIMILAR_PRODUCTS_KEY,
        metadata={
            "dagster/row_count": len(result.similar),
            "products": int(result.similar["product_id"].nunique()),
            "method": result.similar_method,
            "path": dg.MetadataValue.path(str(similar_path)),
        },
    )
    yield hybrid_check_result(result.evaluation)
