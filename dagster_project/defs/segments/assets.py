"""Behavioural clusters: a segment family computed in Python between the two dbt stages."""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

from pathlib import Path

import dagster as dg

from dagster_project.defs.dbt.translator import BEHAVIOURAL_CLUSTERS_KEY, dbt_asset_key
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.clustering import (
    ClusteringInputError,
    ClusterResult,
    cluster_customers,
    read_traits,
    write_clusters,
)
from dagster_project.lib.dbt_project import behavioural_clusters_path
from dagster_project.lib.markdown import markdown_table


def cluster_metadata(result: ClusterResult, path: Path) -> dict[str, dg.MetadataValue | int | str]:
    """Silhouette, k, sizes and the profile table the UI shows."""
    metadata: dict[str, dg.MetadataValue | int | str] = {
        "dagster/row_count": len(result.assignments),
        "clustered_customers": result.clustered_customers,
        "inactive_customers": result.inactive_customers,
        "path": dg.MetadataValue.path(str(path)),
    }
    if result.skipped_reason:
        metadata["skipped"] = result.skipped_reason
        return metadata
    assert result.k is not None and result.silhouette is not None
    metadata["k"] = result.k
    metadata["silhouette"] = dg.MetadataValue.float(result.silhouette)
    metadata["silhouette_by_k"] = dg.MetadataValue.md(
        markdown_table(["k", "silhouette"], sorted(result.silhouette_by_k.items()))
    )
    headers = [c for c in result.profiles.columns if c != "description"]
    metadata["cluster_profiles"] = dg.MetadataValue.md(
        markdown_table(headers, list(result.profiles[headers].itertuples(index=False, name=None)))
    )
    return metadata


@dg.asset(
    key=BEHAVIOURAL_CLUSTERS_KEY,
    deps=[dbt_asset_key("customer_traits")],
    group_name="segments",
    kinds={"python", "scikitlearn", "parquet"},
    description=(
        "Behavioural clusters: k-means (scikit-learn) on standardized RFM and engagement "
        "features of customer_traits, k in 3..6 chosen by silhouette, clusters named from their "
        "centroids (cluster_loyal_high_spenders, cluster_window_shoppers, cluster_dormant, ...). "
        "Cycle-free: it runs after the first dbt stage (read-only DuckDB), writes "
        "lake/_segments/behavioural_clusters.parquet, and the second dbt stage reads that file "
        "as source clusters.behavioural_clusters into customer_segments and segments."
    ),
)
def behavioural_clusters(
    context: dg.AssetExecutionContext, cdp: CdpResource
) -> dg.MaterializeResult:
    """Cluster the customers of the current customer_traits and write the membership file."""
    workspace = cdp.workspace()
    try:
        traits = read_traits(workspace.warehouse)
    except ClusteringInputError as exc:
        raise dg.Failure(description=str(exc)) from exc
    result = cluster_customers(traits)
    path = behavioural_clusters_path(workspace)
    write_clusters(result.assignments, path)
    if result.skipped_reason:
        context.log.warning(f"behavioural clustering skipped: {result.skipped_reason}")
    else:
        context.log.info(
            f"{result.clustered_customers} customers in {result.k} clusters "
            f"(silhouette {result.silhouette})"
        )
    return dg.MaterializeResult(metadata=cluster_metadata(result, path))
