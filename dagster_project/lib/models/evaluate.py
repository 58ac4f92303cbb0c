"""Evaluation of a customer model on a held-out horizon: discrimination, calibration, lift.

Every function takes plain arrays (labels, scores) so the same code judges a model, its
baseline and a benchmark run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, mean_absolute_error, roc_auc_score


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC-AUC, or None when the labels hold a single class (AUC is undefined then)."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, np.asarray(scores, dtype=float)))


def brier(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean squared error of the probabilities (lower is better)."""
    return float(brier_score_loss(np.asarray(labels, dtype=bool), probabilities))


def reliability_table(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> list[tuple[Any, ...]]:
    """Rows (bin, customers, mean predicted, observed rate) over equal-count bins of the score.

    A calibrated model has mean predicted close to the observed rate in every bin.
    """
    frame = pd.DataFrame({"y": np.asarray(labels, dtype=float), "p": probabilities})
    if frame.empty:
        return []
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), min(bins, len(frame)), labels=False)
    grouped = frame.groupby("bin").agg(n=("y", "size"), p=("p", "mean"), y=("y", "mean"))
    return [
        (int(b) + 1, int(row.n), round(float(row.p), 4), round(float(row.y), 4))
        for b, row in grouped.iterrows()
    ]


def expected_calibration_error(table: Sequence[tuple[Any, ...]]) -> float | None:
    """Customer-weighted mean |predicted - observed| over the reliability table's bins."""
    total = sum(row[1] for row in table)
    if not total:
        return None
    return float(sum(row[1] * abs(row[2] - row[3]) for row in table) / total)


def lift_by_decile(labels: np.ndarray, scores: np.ndarray) -> list[tuple[Any, ...]]:
    """Rows (decile, customers, observed rate, lift) with decile 1 = the highest scores.

    Lift is the decile's rate over the overall rate: 3.0 means three times as many positives
    as targeting at random.
    """
    frame = pd.DataFrame({"y": np.asarray(labels, dtype=float), "s": scores})
    if frame.empty or frame["y"].mean() == 0:
        return []
    overall = frame["y"].mean()
    ranks = frame["s"].rank(method="first", ascending=False)
    frame["decile"] = pd.qcut(ranks, min(10, len(frame)), labels=False) + 1
    grouped = frame.groupby("decile").agg(n=("y", "size"), y=("y", "mean"))
    return [
        (int(d), int(row.n), round(float(row.y), 4), round(float(row.y / overall), 2))
        for d, row in grouped.iterrows()
    ]


def regression_errors(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """MAE, Spearman rank correlation and total predicted / total actual for value forecasts."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if len(actual) == 0:
        return {"mae": None, "spearman": None, "total_ratio": None}
    spearman = None
    if np.std(actual) > 0 and np.std(predicted) > 0:
        spearman = float(pd.Series(actual).corr(pd.Series(predicted), method="spearman"))
    total = actual.sum()
    return {
        "mae": float(mean_absolute_error(actual, predicted)),
        "spearman": spearman,
        "total_ratio": float(predicted.sum() / total) if total else None,
    }
