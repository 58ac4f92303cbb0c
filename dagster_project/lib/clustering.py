"""Behavioural clusters: k-means on standardized RFM and engagement features, named from centroids.

Pure functions over a pandas frame of ``customer_traits`` rows, plus the step's reading of the
warehouse and writing of the membership file, so the asset stays orchestration only and tests
can cluster constructed data directly.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

logger = logging.getLogger(__name__)

#: customer_traits columns the clustering reads.
TRAIT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "days_since_last_visit",
    "engagement_score",
    "open_rate_90d",
    "order_count",
    "email_sends_90d",
)

#: Feature names, in the order of the model's columns.
FEATURES: tuple[str, ...] = (
    "frequency",
    "monetary",
    "recency_days",
    "days_since_last_visit",
    "engagement_score",
    "open_rate_90d",
)

SEGMENT_PREFIX = "cluster_"
MIN_CUSTOMERS = 8


@dataclass(frozen=True)
class ClusterResult:
    """Members, the chosen k, its silhouette and one profile row per cluster."""

    assignments: pd.DataFrame  # customer_id, segment, description
    k: int | None
    silhouette: float | None
    silhouette_by_k: dict[int, float] = field(default_factory=dict)
    profiles: pd.DataFrame = field(default_factory=pd.DataFrame)
    clustered_customers: int = 0
    inactive_customers: int = 0
    skipped_reason: str | None = None


def _empty_assignments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype="string"),
            "segment": pd.Series(dtype="string"),
            "description": pd.Series(dtype="string"),
        }
    )


def active_customers(traits: pd.DataFrame) -> pd.DataFrame:
    """Customers with some behaviour to cluster: an order, a web visit or an email sent."""
    has_orders = traits["order_count"].fillna(0) > 0
    has_visits = traits["days_since_last_visit"].notna()
    has_email = traits["email_sends_90d"].fillna(0) > 0
    return traits.loc[has_orders | has_visits | has_email].reset_index(drop=True)


def feature_matrix(active: pd.DataFrame) -> pd.DataFrame:
    """Raw features with the gaps filled so every customer has a value.

    Never having ordered (or visited) is treated as a day count longer than any observed one,
    so "no order" sits beyond "old order" on the recency axis instead of being dropped.
    """
    frame = pd.DataFrame(index=active.index)
    frame["frequency"] = active["frequency"].fillna(0).astype(float)
    frame["monetary"] = active["monetary"].fillna(0).astype(float).clip(lower=0)
    for column in ("recency_days", "days_since_last_visit"):
        values = active[column].astype(float)
        horizon = float(np.nanmax(values.to_numpy())) + 30.0 if values.notna().any() else 365.0
        frame[column] = values.fillna(horizon)
    frame["engagement_score"] = active["engagement_score"].fillna(0).astype(float)
    frame["open_rate_90d"] = active["open_rate_90d"].fillna(0).astype(float)
    return frame[list(FEATURES)]


def _scaled(features: pd.DataFrame) -> np.ndarray:
    # Counts, money and day spans are right-skewed; log1p keeps a few whales from owning a
    # cluster each, then every feature gets unit variance.
    transformed = features.copy()
    for column in ("frequency", "monetary", "recency_days", "days_since_last_visit"):
        transformed[column] = np.log1p(transformed[column])
    return StandardScaler().fit_transform(transformed.to_numpy())


#: Day thresholds used to name clusters; absolute so names read the same in every world.
RECENT_VISIT_DAYS = 30
LAPSED_ORDER_DAYS = 180


def _known(value: Any) -> float | None:
    """A number, or None for a missing value (None or NaN)."""
    return None if value is None or pd.isna(value) else float(value)


def name_cluster(profile: Mapping[str, Any], buyers: Mapping[str, float]) -> str:
    """An archetype name from a cluster's profile (averages and medians in raw units).

    Non-buyers are window shoppers (visited in the last 30 days), email-engaged prospects or
    dormant; buyers are lapsed (median last order over 180 days ago), loyal high spenders
    (1.5x the average buyer's revenue or orders), engaged regulars or occasional buyers.
    """
    recency = _known(profile["median_recency_days"])
    visit = _known(profile["median_days_since_visit"])
    if profile["avg_orders"] < 0.5:
        if visit is not None and visit <= RECENT_VISIT_DAYS:
            return "window_shoppers"
        if profile["avg_open_rate_90d"] >= 0.2 or profile["avg_engagement"] >= 10:
            return "email_engaged_prospects"
        return "dormant"
    if recency is None or recency > LAPSED_ORDER_DAYS:
        return "lapsed_buyers"
    if (
        profile["avg_revenue"] >= 1.5 * buyers["revenue"]
        or profile["avg_orders"] >= 1.5 * buyers["orders"]
    ):
        return "loyal_high_spenders"
    if profile["avg_engagement"] >= 30:
        return "engaged_regulars"
    return "occasional_buyers"


def _unique_names(names: Sequence[str], order: Sequence[float]) -> list[str]:
    """Suffix repeated names (_2, _3 ...) by descending ``order`` (e.g. revenue)."""
    result = list(names)
    for name in set(names):
        indexes = [i for i, n in enumerate(names) if n == name]
        if len(indexes) > 1:
            for rank, index in enumerate(sorted(indexes, key=lambda i: -order[i]), start=1):
                result[index] = name if rank == 1 else f"{name}_{rank}"
    return result


def cluster_customers(
    traits: pd.DataFrame,
    *,
    k_values: Sequence[int] = (3, 4, 5, 6),
    seed: int = 0,
    silhouette_sample: int = 5000,
) -> ClusterResult:
    """Cluster active customers; k is the candidate with the best silhouette (ties: smaller k)."""
    missing = [c for c in TRAIT_COLUMNS if c not in traits.columns]
    if missing:
        raise ValueError(f"customer_traits lacks column(s) {missing}; rebuild the dbt marts")
    active = active_customers(traits)
    inactive = len(traits) - len(active)
    features = feature_matrix(active)
    scaled = _scaled(features) if len(active) else np.empty((0, len(FEATURES)))
    distinct_points = len(np.unique(scaled.round(9), axis=0)) if len(active) else 0
    candidates = [k for k in k_values if 2 <= k < distinct_points]
    if len(active) < MIN_CUSTOMERS or not candidates:
        reason = (
            f"{len(active)} active customer(s) with {distinct_points} distinct profile(s): "
            f"need at least {MIN_CUSTOMERS} and more profiles than the smallest k"
        )
        logger.info("behavioural clustering skipped: %s", reason)
        return ClusterResult(
            assignments=_empty_assignments(),
            k=None,
            silhouette=None,
            clustered_customers=0,
            inactive_customers=inactive,
            skipped_reason=reason,
        )
    sample = min(silhouette_sample, len(active))
    best: tuple[float, int, np.ndarray] | None = None
    scores: dict[int, float] = {}
    for k in candidates:
        labels = KMeans(n_clusters=k, n_init=5, random_state=seed).fit_predict(scaled)
        if len(set(labels)) < 2:
            continue
        score = float(silhouette_score(scaled, labels, sample_size=sample, random_state=seed))
        scores[k] = round(score, 4)
        if best is None or score > best[0] + 1e-9:
            best = (score, k, labels)
    if best is None:
        return ClusterResult(
            assignments=_empty_assignments(),
            k=None,
            silhouette=None,
            inactive_customers=inactive,
            skipped_reason="k-means found no split into two or more clusters",
        )
    score, k, labels = best
    profiles = _profiles(active, features, labels)
    assignments = pd.DataFrame(
        {
            "customer_id": active["customer_id"].astype("string"),
            "segment": profiles.set_index("cluster").loc[labels, "segment"].to_numpy(),
            "description": profiles.set_index("cluster").loc[labels, "description"].to_numpy(),
        }
    ).astype("string")
    return ClusterResult(
        assignments=assignments,
        k=k,
        silhouette=round(score, 4),
        silhouette_by_k=scores,
        profiles=profiles.drop(columns=["cluster"]),
        clustered_customers=len(active),
        inactive_customers=inactive,
    )


def _median_days(values: pd.Series) -> float | None:
    known = values.dropna()
    return float(known.median()) if len(known) else None


def _days_text(days: float | None, what: str) -> str:
    known = _known(days)
    return f"no {what}" if known is None else f"median {known:g} days since the last {what}"


def _profiles(active: pd.DataFrame, features: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """One row per cluster: size, average features, name and description."""
    rows = []
    for cluster in sorted(set(labels.tolist())):
        mask = labels == cluster
        values = features.loc[mask]
        rows.append(
            {
                "cluster": cluster,
                "customers": int(mask.sum()),
                "share": round(float(mask.mean()), 4),
                "avg_orders": round(float(values["frequency"].mean()), 2),
                "avg_revenue": round(float(values["monetary"].mean()), 2),
                "median_recency_days": _median_days(active.loc[mask, "recency_days"]),
                "median_days_since_visit": _median_days(active.loc[mask, "days_since_last_visit"]),
                "avg_engagement": round(float(values["engagement_score"].mean()), 1),
                "avg_open_rate_90d": round(float(values["open_rate_90d"].mean()), 3),
            }
        )
    profiles = pd.DataFrame(rows)
    buyer_rows = features.loc[features["frequency"] > 0]
    buyers = {
        "revenue": float(buyer_rows["monetary"].mean()) if len(buyer_rows) else 0.0,
        "orders": float(buyer_rows["frequency"].mean()) if len(buyer_rows) else 0.0,
    }
    profiles.insert(
        1, "archetype", [name_cluster(row, buyers) for row in profiles.to_dict("records")]
    )
    names = _unique_names(profiles["archetype"].tolist(), profiles["avg_revenue"].tolist())
    profiles["segment"] = [SEGMENT_PREFIX + name for name in names]
    profiles["description"] = [
        (
            f"Behavioural cluster ({row.customers} customers): {row.avg_orders:g} kept orders "
            f"and {row.avg_revenue:g} revenue on average, "
            f"{_days_text(row.median_recency_days, 'order')}, "
            f"{_days_text(row.median_days_since_visit, 'visit')}, "
            f"engagement {row.avg_engagement:g}."
        )
        for row in profiles.itertuples()
    ]
    columns = [
        "cluster",
        "segment",
        *[c for c in profiles.columns if c not in ("cluster", "segment")],
    ]
    return profiles[columns]


CLUSTERS_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string()),
        pa.field("segment", pa.string()),
        pa.field("description", pa.string()),
    ]
)


class ClusteringInputError(RuntimeError):
    """The warehouse the clustering reads is missing; the message says what to run."""


def read_traits(warehouse: Path) -> pd.DataFrame:
    """customer_traits from the warehouse, read-only (dbt is not writing during this step)."""
    if not warehouse.exists():
        raise ClusteringInputError(f"no warehouse at {warehouse}: materialize the dbt models first")
    columns = ", ".join(TRAIT_COLUMNS)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.sql(f"select {columns} from customer_traits order by customer_id").df()


def write_clusters(assignments: pd.DataFrame, path: Path) -> None:
    """Atomically replace the clusters Parquet (an empty file when clustering was skipped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(
        assignments[list(CLUSTERS_SCHEMA.names)], schema=CLUSTERS_SCHEMA, preserve_index=False
    )
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)
