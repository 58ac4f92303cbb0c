"""Pairwise precision and recall of a clustering against known truth.

Pairwise counts come from the contingency table of (predicted cluster, true entity): a cell of
``n`` records holds ``n * (n - 1) / 2`` correctly linked pairs, so no pair is ever enumerated and
millions of records evaluate in seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PairwiseScores:
    """Pairwise quality of predicted clusters against true entities."""

    precision: float
    recall: float
    f1: float
    true_positive_pairs: int
    predicted_pairs: int
    true_pairs: int
    records: int
    predicted_clusters: int
    true_clusters: int
    records_without_truth: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for reports."""
        return asdict(self)


def _pairs(counts: np.ndarray) -> int:
    counts = counts.astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def pairwise_scores(predicted: pd.Series, truth: pd.Series) -> PairwiseScores:
    """Scores of cluster labels against entity labels for the same records (aligned index).

    Records whose truth is missing are left out and counted in ``records_without_truth``.
    """
    frame = pd.DataFrame({"predicted": predicted, "truth": truth})
    missing = int(frame["truth"].isna().sum())
    frame = frame.dropna(subset=["truth", "predicted"])
    if frame.empty:
        return PairwiseScores(1.0, 1.0, 1.0, 0, 0, 0, 0, 0, 0, missing)
    predicted_codes = pd.factorize(frame["predicted"])[0]
    truth_codes = pd.factorize(frame["truth"])[0]
    cells = pd.Series(1, index=pd.MultiIndex.from_arrays([predicted_codes, truth_codes]))
    true_positive = _pairs(cells.groupby(level=[0, 1]).size().to_numpy())
    predicted_pairs = _pairs(np.bincount(predicted_codes))
    true_pairs = _pairs(np.bincount(truth_codes))
    precision = true_positive / predicted_pairs if predicted_pairs else 1.0
    recall = true_positive / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairwiseScores(
        precision=precision,
        recall=recall,
        f1=f1,
        true_positive_pairs=true_positive,
        predicted_pairs=predicted_pairs,
        true_pairs=true_pairs,
        records=len(frame),
        predicted_clusters=int(predicted_codes.max()) + 1,
        true_clusters=int(truth_codes.max()) + 1,
        records_without_truth=missing,
    )


def evaluate_clusters(
    clusters: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    keys: tuple[str, ...] = ("source", "record_id"),
    cluster_column: str = "customer_id",
    entity_column: str = "entity_id",
) -> PairwiseScores:
    """Join predicted clusters to truth on ``keys`` (those present in both) and score them.

    Records in ``clusters`` without a truth row count as ``records_without_truth``; truth rows
    without a prediction are ignored (they were not part of the input).
    """
    on = [k for k in keys if k in clusters.columns and k in truth.columns]
    if not on:
        raise ValueError(f"clusters and truth share none of the key columns {list(keys)}")
    left = clusters[[*on, cluster_column]].astype({k: "str" for k in on})
    right = truth[[*on, entity_column]].astype({k: "str" for k in on}).drop_duplicates(on)
    joined = left.merge(right, on=on, how="left")
    return pairwise_scores(joined[cluster_column], joined[entity_column])
