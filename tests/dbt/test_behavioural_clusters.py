"""Behavioural clustering on constructed populations with known archetypes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dagster_project.defs.segments.assets import cluster_metadata, write_clusters
from dagster_project.lib.clustering import (
    MIN_CUSTOMERS,
    SEGMENT_PREFIX,
    cluster_customers,
)


def _population(seed: int = 3, per_group: int = 60) -> pd.DataFrame:
    """Three clear groups plus customers with no behaviour at all."""
    rng = np.random.default_rng(seed)
    groups = []

    def group(prefix: str, **columns: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(columns)
        frame.insert(0, "customer_id", [f"{prefix}{i:03d}" for i in range(len(frame))])
        return frame

    n = per_group
    groups.append(  # loyal big spenders: many recent orders, engaged
        group(
            "big",
            recency_days=rng.integers(1, 15, n),
            frequency=rng.integers(12, 20, n),
            monetary=rng.uniform(2000, 4000, n),
            days_since_last_visit=rng.integers(0, 5, n),
            engagement_score=rng.uniform(70, 95, n),
            open_rate_90d=rng.uniform(0.6, 0.9, n),
            order_count=rng.integers(12, 20, n),
            email_sends_90d=rng.integers(5, 10, n),
        )
    )
    groups.append(  # window shoppers: frequent recent visits, never ordered
        group(
            "win",
            recency_days=np.full(n, np.nan),
            frequency=np.zeros(n, dtype=int),
            monetary=np.zeros(n),
            days_since_last_visit=rng.integers(0, 7, n),
            engagement_score=rng.uniform(30, 45, n),
            open_rate_90d=np.full(n, np.nan),
            order_count=np.zeros(n, dtype=int),
            email_sends_90d=np.zeros(n, dtype=int),
        )
    )
    groups.append(  # lapsed: one or two orders long ago, no visits
        group(
            "old",
            recency_days=rng.integers(300, 700, n),
            frequency=rng.integers(1, 3, n),
            monetary=rng.uniform(20, 80, n),
            days_since_last_visit=np.full(n, np.nan),
            engagement_score=np.zeros(n),
            open_rate_90d=np.full(n, np.nan),
            order_count=rng.integers(1, 3, n),
            email_sends_90d=np.zeros(n, dtype=int),
        )
    )
    groups.append(  # nothing at all: not clustered
        group(
            "none",
            recency_days=np.full(5, np.nan),
            frequency=np.zeros(5, dtype=int),
            monetary=np.zeros(5),
            days_since_last_visit=np.full(5, np.nan),
            engagement_score=np.zeros(5),
            open_rate_90d=np.full(5, np.nan),
            order_count=np.zeros(5, dtype=int),
            email_sends_90d=np.zeros(5, dtype=int),
        )
    )
    return pd.concat(groups, ignore_index=True)


def test_clusters_recover_the_groups_and_are_named_from_centroids() -> None:
    traits = _population()
    result = cluster_customers(traits)
    assert result.skipped_reason is None
    assert result.k is not None and 3 <= result.k <= 6
    assert result.silhouette is not None and result.silhouette > 0.5
    assert result.silhouette == max(result.silhouette_by_k.values())
    assert result.clustered_customers == 180 and result.inactive_customers == 5
    members = result.assignments.set_index("customer_id")["segment"]
    assert not members.index.str.startswith("none").any()
    # Each constructed group falls into one cluster, and no cluster mixes two groups.
    by_group = {group: set(segments) for group, segments in members.groupby(members.index.str[:3])}
    assert all(len(segments) == 1 for segments in by_group.values())
    assert len(set().union(*by_group.values())) == 3
    assert by_group["big"] == {f"{SEGMENT_PREFIX}loyal_high_spenders"}
    assert by_group["win"] == {f"{SEGMENT_PREFIX}window_shoppers"}
    assert by_group["old"] == {f"{SEGMENT_PREFIX}lapsed_buyers"}
    assert result.profiles["customers"].sum() == 180
    assert result.profiles["segment"].is_unique


def test_clustering_is_deterministic() -> None:
    traits = _population()
    first, second = cluster_customers(traits), cluster_customers(traits)
    pd.testing.assert_frame_equal(first.assignments, second.assignments)
    assert first.silhouette == second.silhouette


def test_too_few_customers_are_not_clustered(tmp_path) -> None:
    traits = _population(per_group=2)  # 6 active customers
    assert MIN_CUSTOMERS > 6
    result = cluster_customers(traits)
    assert result.k is None and result.assignments.empty
    assert "6 active customer(s)" in (result.skipped_reason or "")
    path = tmp_path / "clusters.parquet"
    write_clusters(result.assignments, path)
    table = pq.read_table(path)
    assert table.num_rows == 0 and table.column_names == ["customer_id", "segment", "description"]
    assert "skipped" in cluster_metadata(result, path)


def test_missing_trait_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="engagement_score"):
        cluster_customers(_population().drop(columns=["engagement_score"]))


def test_written_file_and_metadata_describe_the_clusters(tmp_path) -> None:
    result = cluster_customers(_population())
    path = tmp_path / "nested" / "clusters.parquet"
    write_clusters(result.assignments, path)
    written = pq.read_table(path).to_pandas()
    assert len(written) == 180
    assert written["description"].str.startswith("Behavioural cluster").all()
    assert [p.name for p in path.parent.iterdir()] == ["clusters.parquet"]  # no temp files
    metadata = cluster_metadata(result, path)
    assert metadata["k"] == result.k
    assert "loyal_high_spenders" in metadata["cluster_profiles"].value
