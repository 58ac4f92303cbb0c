"""Graph-health checks on the identity outputs, recomputed from what is on disk."""

# No `from __future__ import annotations`: Dagster inspects the real annotation objects of
# asset and check functions (a string `context` annotation is rejected).

from collections.abc import Sequence
from typing import Any, Final

import dagster as dg
import pandas as pd

from dagster_project.defs.identity.assets import identity_asset_key, identity_settings
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import CdpConfig
from dagster_project.lib.markdown import markdown_table
from identity import EDGES_FILE, HISTORY_FILE, IDENTITY_MAP_FILE, read_stats

#: More singletons than this share of customers means linking barely worked.
MAX_SINGLETON_SHARE: Final[float] = 0.85
#: Merges plus splits above this share of the previous customers means ids are churning.
MAX_ID_CHURN: Final[float] = 0.05
#: Guards rejecting more than this share of the candidate links means bad data or bad guards.
MAX_REJECTED_SHARE: Final[float] = 0.25


def _sizes(cdp: CdpResource) -> pd.Series:
    path = cdp.workspace().identity / IDENTITY_MAP_FILE
    frame = pd.read_parquet(path, columns=["customer_id", "record_uid"])
    return frame.groupby("customer_id").size()


def _largest_cluster_check() -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=identity_asset_key("identity_map"),
        name="largest_cluster_within_cap",
        description="No customer holds more records than identity.max_cluster_size.",
        blocking=True,
    )
    def _check(cdp: CdpResource) -> dg.AssetCheckResult:
        cap = identity_settings(cdp.loaded_config()).max_cluster_size
        sizes = _sizes(cdp)
        largest = int(sizes.max()) if len(sizes) else 0
        over = int((sizes > cap).sum())
        top = sizes.sort_values(ascending=False).head(5)
        return dg.AssetCheckResult(
            passed=largest <= cap,
            description=f"largest customer has {largest} records (cap {cap})",
            metadata={
                "largest_cluster": largest,
                "cap": cap,
                "customers_over_cap": over,
                "largest_customers": dg.MetadataValue.md(
                    markdown_table(["customer_id", "records"], list(top.items()))
                ),
            },
        )

    return _check


def _singleton_check() -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=identity_asset_key("identity_map"),
        name="singleton_share_below_85_percent",
        description="Warns when almost no records were linked (broken normalization or rules).",
    )
    def _check(cdp: CdpResource) -> dg.AssetCheckResult:
        sizes = _sizes(cdp)
        share = float((sizes == 1).mean()) if len(sizes) else 0.0
        histogram = sizes.value_counts().sort_index()
        return dg.AssetCheckResult(
            passed=share <= MAX_SINGLETON_SHARE,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{share:.1%} of customers have a single record",
            metadata={
                "singleton_share": round(share, 4),
                "customers": len(sizes),
                "cluster_size_histogram": dg.MetadataValue.md(
                    markdown_table(["records per customer", "customers"], list(histogram.items()))
                ),
            },
        )

    return _check


def _churn_check() -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=identity_asset_key("customer_id_history"),
        name="merges_and_splits_this_run_below_5_percent",
        description="Warns when this run merged or split more than 5% of the previous customers.",
    )
    def _check(cdp: CdpResource) -> dg.AssetCheckResult:
        folder = cdp.workspace().identity
        stats = read_stats(folder)
        history = pd.read_parquet(folder / HISTORY_FILE)
        events = history[history["run_id"] == stats["run_id"]]
        counts = events["event_type"].value_counts()
        merged, split = int(counts.get("merged", 0)), int(counts.get("split", 0))
        previous = int(stats["ids"].get("previous_customers", 0))
        churn = (merged + split) / previous if previous else 0.0
        metadata: dict[str, Any] = {
            "merged": merged,
            "split": split,
            "created": int(counts.get("created", 0)),
            "retired": int(counts.get("retired", 0)),
            "previous_customers": previous,
            "churn": round(churn, 6),
        }
        same = stats["ids"].get("previous_records_same_id")
        if same is not None:
            metadata["previous_records_same_id"] = round(float(same), 6)
        return dg.AssetCheckResult(
            passed=churn <= MAX_ID_CHURN,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{merged} merges and {split} splits against {previous} previous customers",
            metadata=metadata,
        )

    return _check


def _rejected_check() -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=identity_asset_key("identity_edges"),
        name="links_rejected_by_guards_below_25_percent",
        description="Warns when the guards refuse more than 25% of candidate links.",
    )
    def _check(cdp: CdpResource) -> dg.AssetCheckResult:
        edges = pd.read_parquet(
            cdp.workspace().identity / EDGES_FILE, columns=["is_accepted", "rejected_reason"]
        )
        rejected = edges.loc[~edges["is_accepted"], "rejected_reason"].value_counts()
        share = float(rejected.sum() / len(edges)) if len(edges) else 0.0
        return dg.AssetCheckResult(
            passed=share <= MAX_REJECTED_SHARE,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{int(rejected.sum())} of {len(edges)} links rejected ({share:.1%})",
            metadata={
                "links": len(edges),
                "links_rejected": int(rejected.sum()),
                "rejected_share": round(share, 4),
                "by_guard": dg.MetadataValue.md(
                    markdown_table(["guard", "links"], list(rejected.items()))
                    if not rejected.empty
                    else "_none_"
                ),
            },
        )

    return _check


def build_identity_checks(config: CdpConfig) -> Sequence[dg.AssetChecksDefinition]:
    """Graph-health checks for the identity outputs (the same for every cdp.yml)."""
    return [_largest_cluster_check(), _singleton_check(), _churn_check(), _rejected_check()]
