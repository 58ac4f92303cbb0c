"""Training, backtesting and scoring of the three customer models.

Why scikit-learn's ``HistGradientBoostingClassifier`` / ``Regressor``: the features are a few
dozen skewed counts, day spans and rates with structural nulls (no order yet: no recency), which
histogram gradient boosting takes as they are (NaN is a learnt branch, no scaling, no
imputation that would present "never" as a number); it trains on a million rows in seconds on
two cores, is deterministic with a seed, and optimizes log loss, so its probabilities come out
close to calibrated without a separate calibration fit (which would cost a second model and a
held-out fold per horizon). The reliability table of every backtest shows how close. A
well-kept GBM library (LightGBM, XGBoost) would add a compiled dependency for no gain at
this size.

The time split: every example is a customer's features at a past cutoff with the outcome in
the horizon after it (dbt ``int_training_examples_labelled``). The backtest holds out the
latest cutoff whose horizon ends by the as-of date (``as_of - horizon``) and trains only on
cutoffs whose horizon ended by then, so no training label overlaps the test horizon. The model
that scores today is then refit on every labelled cutoff and applied to the features at the
as-of date. Nothing after the as-of date exists in the warehouse, so nothing after it is read.

- ``purchase_probability``: P(>= 1 order in ``models.purchase_propensity.horizon_days``), all
  customers with history.
- ``churn_risk``: P(no order in ``models.churn.horizon_days``), customers who bought before.
- ``predicted_clv``: expected orders in ``models.clv.horizon_days`` (Poisson-loss regressor)
  x expected value of an order then (squared-loss regressor on customers who ordered): the
  expected revenue, compared with BG/NBD + Gamma-Gamma.

Too little history (fewer than ``min_training_rows`` labelled examples, or fewer than
``min_positive_rows`` of either class) means a documented fallback heuristic
(``baselines.py``) with ``status: fallback`` and the reason; it never raises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance
from threadpoolctl import threadpool_limits

from dagster_project.lib.config import ModelsConfig
from dagster_project.lib.models import baselines, evaluate
from dagster_project.lib.models.data import FEATURE_COLUMNS, ModelInputs, model_frame

logger = logging.getLogger(__name__)

PURCHASE = "purchase_probability"
CHURN = "churn_risk"
CLV = "predicted_clv"
MODEL_NAMES: tuple[str, ...] = (PURCHASE, CHURN, CLV)

TRAINED = "trained"
FALLBACK = "fallback"

#: Training rows per fit at most (a seeded random sample beyond): examples repeat customers
#: across cutoffs, so more rows add little and cost linear time.
MAX_TRAINING_ROWS = 120_000
#: Held-out rows the permutation importance is computed on at most.
IMPORTANCE_ROWS = 5_000
SEED = 42
#: OpenMP threads per fit. Measured on this 2-core machine while other jobs ran (load 7-11):
#: one HistGradientBoosting fit on 9,600 rows took 113 s with OpenMP's default threads (spinning
#: threads fighting the other jobs) and 5 s with one.
TRAINING_THREADS = 1


@dataclass
class ModelReport:
    """What one model did: status, version, training facts and its backtest against baselines."""

    name: str
    horizon_days: int
    status: str = FALLBACK
    version: str = baselines.FALLBACK_VERSION
    reason: str | None = None
    training_rows: int = 0
    positive_rows: int | None = None
    training_cutoffs: list[str] = field(default_factory=list)
    scored_customers: int = 0
    training_seconds: float = 0.0
    backtest: dict[str, Any] = field(default_factory=dict)
    reliability: list[tuple[Any, ...]] = field(default_factory=list)
    lift: list[tuple[Any, ...]] = field(default_factory=list)
    importance: list[tuple[str, float]] = field(default_factory=list)
    estimators: dict[str, Any] = field(default_factory=dict)

    @property
    def worse_than_baseline(self) -> bool | None:
        """True when the backtest's metric is below the best baseline's; None if not judged."""
        return self.backtest.get("worse_than_baseline")

    def metadata(self) -> dict[str, Any]:
        """JSON-ready training metadata (saved beside the model, shown on the asset)."""
        return {
            "name": self.name,
            "status": self.status,
            "version": self.version,
            "reason": self.reason,
            "horizon_days": self.horizon_days,
            "training_rows": self.training_rows,
            "positive_rows": self.positive_rows,
            "training_cutoffs": self.training_cutoffs,
            "scored_customers": self.scored_customers,
            "training_seconds": round(self.training_seconds, 2),
            "features": list(FEATURE_COLUMNS),
            "backtest": self.backtest,
            "reliability": [list(row) for row in self.reliability],
            "lift_by_decile": [list(row) for row in self.lift],
            "feature_importance": [[n, round(v, 5)] for n, v in self.importance],
            "sklearn_version": sklearn.__version__,
        }


@dataclass
class ModelsResult:
    """Scores of every customer with history, one report per model."""

    scores: pd.DataFrame
    reports: dict[str, ModelReport]
    as_of: date
    seconds: float = 0.0


def _classifier() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.08,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        random_state=SEED,
    )


def _regressor(loss: str) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        loss=loss,
        max_iter=200,
        learning_rate=0.08,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        random_state=SEED,
    )


def _training_matrix(rows: pd.DataFrame) -> pd.DataFrame:
    """The features to fit on. A feature no training row has (no web events at all, say) is
    set to a constant: scikit-learn cannot bin an all-NaN column, and a constant is never split
    on, so scoring rows that do have it are unaffected."""
    features = model_frame(rows)
    empty = [c for c in features.columns if features[c].isna().all()]
    if empty:
        features[empty] = 0.0
    return features


def _sample(frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) <= MAX_TRAINING_ROWS:
        return frame
    return frame.sample(MAX_TRAINING_ROWS, random_state=SEED)


def _version(name: str, as_of: date, rows: pd.DataFrame, label: str, config: ModelsConfig) -> str:
    """``<as_of>-<hash>``: the same data, settings and library give the same version."""
    digest = hashlib.sha256()
    digest.update(json.dumps([name, config.model_dump(), sklearn.__version__]).encode())
    digest.update(pd.util.hash_pandas_object(rows[["customer_id", label]], index=False).values)
    return f"{as_of:%Y%m%d}-{digest.hexdigest()[:10]}"


def _too_little(labels: pd.Series, config: ModelsConfig, *, binary: bool, what: str) -> str | None:
    """Why these labels are too few to train on, or None."""
    rows = len(labels)
    if rows < config.min_training_rows:
        return (
            f"{what}: {rows:,} labelled examples, fewer than models.min_training_rows "
            f"({config.min_training_rows:,})"
        )
    positives = int((labels > 0).sum()) if not binary else int(labels.astype(bool).sum())
    negatives = rows - positives
    if min(positives, negatives) < config.min_positive_rows:
        return (
            f"{what}: {positives:,} positive and {negatives:,} negative examples; each needs "
            f"models.min_positive_rows ({config.min_positive_rows:,})"
        )
    return None


def _split(labelled: pd.DataFrame, horizon_days: int) -> tuple[pd.DataFrame, pd.DataFrame, date]:
    """(train, test, test cutoff): test = the latest labelled cutoff, train = cutoffs whose
    horizon ended by it."""
    test_cutoff = max(labelled["cutoff_date"])
    last_train = test_cutoff - timedelta(days=horizon_days)
    train = labelled.loc[labelled["cutoff_date"] <= last_train]
    test = labelled.loc[labelled["cutoff_date"] == test_cutoff]
    return train, test, test_cutoff


def _importance(
    estimator: Any, features: pd.DataFrame, target: np.ndarray, scoring: str
) -> list[tuple[str, float]]:
    if len(features) > IMPORTANCE_ROWS:
        index = np.random.default_rng(SEED).choice(len(features), IMPORTANCE_ROWS, replace=False)
        features, target = features.iloc[index], target[index]
    result = permutation_importance(
        estimator, features, target, scoring=scoring, n_repeats=3, random_state=SEED, n_jobs=1
    )
    pairs = sorted(zip(features.columns, result.importances_mean, strict=True), key=lambda p: -p[1])
    return [(name, float(value)) for name, value in pairs]


def _classification_backtest(
    report: ModelReport,
    labelled: pd.DataFrame,
    label: str,
    config: ModelsConfig,
    predicts_absence: bool,
) -> None:
    """Fill report.backtest, reliability, lift and importance from the time-split backtest."""
    train, test, test_cutoff = _split(labelled, report.horizon_days)
    backtest: dict[str, Any] = {"test_cutoff": test_cutoff.isoformat(), "test_rows": len(test)}
    reason = _too_little(train[label], config, binary=True, what="backtest training")
    if reason is None and test[label].nunique() < 2:
        reason = f"the held-out cutoff {test_cutoff} has a single class"
    if reason:
        backtest["skipped"] = reason
        report.backtest = backtest
        return
    train = _sample(train)
    model = _classifier().fit(_training_matrix(train), train[label].astype(bool))
    test_features = model_frame(test)
    y = test[label].astype(bool).to_numpy()
    probability = model.predict_proba(test_features)[:, 1]
    backtest["train_rows"] = len(train)
    backtest["auc"] = evaluate.auc(y, probability)
    backtest["brier"] = evaluate.brier(y, probability)
    backtest["observed_rate"] = float(y.mean())
    backtest["mean_predicted"] = float(probability.mean())
    # The baselines' scores point at an order; a model of no order (churn) ranks by their opposite.
    sign = -1.0 if predicts_absence else 1.0
    baseline = {"recency_only": evaluate.auc(y, sign * baselines.recency_score(test_features))}
    forecast = baselines.bgnbd_forecast(
        test_features, test_features, report.horizon_days, with_value=False
    )
    if forecast.unavailable:
        baseline["bgnbd"] = None
        backtest["bgnbd_unavailable"] = forecast.unavailable
    else:
        expected = forecast.expected_orders
        baseline["bgnbd"] = evaluate.auc(y, sign * expected)
    backtest["baseline_auc"] = baseline
    known = [v for v in baseline.values() if v is not None]
    if backtest["auc"] is not None and known:
        backtest["best_baseline_auc"] = max(known)
        backtest["worse_than_baseline"] = backtest["auc"] < max(known)
    report.backtest = backtest
    report.reliability = evaluate.reliability_table(y, probability)
    backtest["expected_calibration_error"] = evaluate.expected_calibration_error(report.reliability)
    report.lift = evaluate.lift_by_decile(y, probability)
    report.importance = _importance(model, test_features, y, "roc_auc")


def _train_classifier(
    name: str,
    label: str,
    examples: pd.DataFrame,
    current: pd.DataFrame,
    horizon_days: int,
    config: ModelsConfig,
    as_of: date,
    fallback: Callable[[pd.DataFrame], np.ndarray],
    *,
    predicts_absence: bool = False,
) -> tuple[ModelReport, np.ndarray]:
    """A probability model with its backtest, or the fallback; returns scores for ``current``."""
    report = ModelReport(name=name, horizon_days=horizon_days)
    labelled = examples.loc[examples[label].notna()]
    report.training_rows = len(labelled)
    report.positive_rows = int(labelled[label].astype(bool).sum())
    report.training_cutoffs = sorted({d.isoformat() for d in labelled["cutoff_date"]})
    started = time.perf_counter()
    reason = _too_little(labelled[label], config, binary=True, what="training")
    current_features = model_frame(current)
    if reason:
        report.reason = reason
        report.training_seconds = time.perf_counter() - started
        return report, fallback(current_features)
    _classification_backtest(report, labelled, label, config, predicts_absence)
    train = _sample(labelled)
    model = _classifier().fit(_training_matrix(train), train[label].astype(bool))
    report.status = TRAINED
    report.version = _version(name, as_of, labelled, label, config)
    report.estimators = {"classifier": model}
    report.training_seconds = time.perf_counter() - started
    if current.empty:
        return report, np.array([], dtype=float)
    return report, model.predict_proba(current_features)[:, 1]


def _clv_backtest(report: ModelReport, labelled: pd.DataFrame, config: ModelsConfig) -> None:
    train, test, test_cutoff = _split(labelled, report.horizon_days)
    backtest: dict[str, Any] = {"test_cutoff": test_cutoff.isoformat(), "test_rows": len(test)}
    reason = _too_little(
        train["clv_order_count_label"], config, binary=False, what="backtest training"
    )
    if reason:
        backtest["skipped"] = reason
        report.backtest = backtest
        return
    counts, values = _fit_clv(_sample(train))
    test_features = model_frame(test)
    predicted = _predict_clv(counts, values, test_features)
    actual = test["clv_revenue_label"].to_numpy(dtype=float)
    backtest["train_rows"] = len(train)
    backtest.update(
        {f"model_{k}": v for k, v in evaluate.regression_errors(actual, predicted).items()}
    )
    forecast = baselines.bgnbd_forecast(test_features, test_features, report.horizon_days)
    baseline_clv = forecast.clv()
    if baseline_clv is None:
        backtest["bgnbd_unavailable"] = forecast.unavailable
    else:
        errors = evaluate.regression_errors(actual, baseline_clv)
        backtest.update({f"bgnbd_{k}": v for k, v in errors.items()})
        if backtest["model_mae"] is not None and errors["mae"] is not None:
            backtest["worse_than_baseline"] = backtest["model_mae"] > errors["mae"]
    # Ranking quality as for a classifier: who will spend at all in the horizon.
    spenders = actual > 0
    backtest["auc_any_revenue"] = evaluate.auc(spenders, predicted)
    report.lift = evaluate.lift_by_decile(spenders, predicted)
    report.backtest = backtest
    report.importance = _importance(
        counts,
        test_features,
        test["clv_order_count_label"].to_numpy(float),
        "neg_mean_poisson_deviance",
    )


def _fit_clv(
    rows: pd.DataFrame,
) -> tuple[HistGradientBoostingRegressor, HistGradientBoostingRegressor]:
    """(expected orders, expected value per order) regressors."""
    features = _training_matrix(rows)
    counts = _regressor("poisson").fit(features, rows["clv_order_count_label"].astype(float))
    ordered = rows["clv_order_count_label"].astype(float) > 0
    per_order = rows.loc[ordered, "clv_revenue_label"].astype(float) / rows.loc[
        ordered, "clv_order_count_label"
    ].astype(float)
    values = _regressor("squared_error").fit(_training_matrix(rows.loc[ordered]), per_order)
    return counts, values


def _predict_clv(
    counts: HistGradientBoostingRegressor,
    values: HistGradientBoostingRegressor,
    features: pd.DataFrame,
) -> np.ndarray:
    if features.empty:
        return np.array([], dtype=float)
    return np.clip(counts.predict(features), 0, None) * np.clip(values.predict(features), 0, None)


def _train_clv(
    examples: pd.DataFrame, current: pd.DataFrame, config: ModelsConfig, as_of: date
) -> tuple[ModelReport, np.ndarray]:
    horizon = config.clv.horizon_days
    report = ModelReport(name=CLV, horizon_days=horizon)
    labelled = examples.loc[examples["clv_order_count_label"].notna()]
    report.training_rows = len(labelled)
    report.positive_rows = int((labelled["clv_order_count_label"] > 0).sum())
    report.training_cutoffs = sorted({d.isoformat() for d in labelled["cutoff_date"]})
    started = time.perf_counter()
    current_features = model_frame(current)
    reason = _too_little(labelled["clv_order_count_label"], config, binary=False, what="training")
    if reason is None and report.positive_rows < config.min_positive_rows:
        reason = f"training: {report.positive_rows} customers ordered in a CLV horizon"
    if reason:
        report.reason = reason
        report.training_seconds = time.perf_counter() - started
        return report, baselines.fallback_clv(current_features, horizon)
    _clv_backtest(report, labelled, config)
    counts, values = _fit_clv(_sample(labelled))
    report.status = TRAINED
    report.version = _version(CLV, as_of, labelled, "clv_revenue_label", config)
    report.estimators = {"expected_orders": counts, "expected_order_value": values}
    report.training_seconds = time.perf_counter() - started
    return report, _predict_clv(counts, values, current_features)


def train_and_score(inputs: ModelInputs, config: ModelsConfig, as_of: date) -> ModelsResult:
    """Train (or fall back) every model on examples up to ``as_of``; score the current rows.

    Returns one score row per customer with history: purchase_probability and predicted_clv
    for each of them, churn_risk for those who bought before (null otherwise), and the version
    behind each score. Customers without history are not in ``inputs.current``, so the join in
    customer_traits leaves them null.
    """
    with threadpool_limits(limits=TRAINING_THREADS):
        return _train_and_score(inputs, config, as_of)


def _train_and_score(inputs: ModelInputs, config: ModelsConfig, as_of: date) -> ModelsResult:
    started = time.perf_counter()
    examples, current = inputs.examples, inputs.current
    if examples["cutoff_date"].size and max(examples["cutoff_date"]) > as_of:
        raise ValueError(f"training examples after the as-of date {as_of}")
    purchase_h = config.purchase_propensity.horizon_days
    churn_h = config.churn.horizon_days
    purchase, purchase_scores = _train_classifier(
        PURCHASE,
        "purchase_label",
        examples,
        current,
        purchase_h,
        config,
        as_of,
        lambda f: baselines.fallback_probability(f, purchase_h),
    )
    buyers = current.loc[current["order_count"].fillna(0) > 0]
    churn, churn_scores = _train_classifier(
        CHURN,
        "churn_label",
        examples.loc[examples["order_count"].fillna(0) > 0],
        buyers,
        churn_h,
        config,
        as_of,
        lambda f: 1.0 - baselines.fallback_probability(f, churn_h),
        predicts_absence=True,
    )
    clv, clv_scores = _train_clv(examples, current, config, as_of)
    scores = pd.DataFrame(
        {
            "customer_id": current["customer_id"].astype(str).to_numpy(),
            "purchase_probability": np.asarray(purchase_scores, dtype=float),
            "predicted_clv": np.asarray(clv_scores, dtype=float),
        }
    )
    churn_frame = pd.DataFrame(
        {"customer_id": buyers["customer_id"].astype(str).to_numpy(), "churn_risk": churn_scores}
    )
    scores = scores.merge(churn_frame, on="customer_id", how="left")
    scores["purchase_model_version"] = purchase.version
    scores["churn_model_version"] = churn.version
    scores["clv_model_version"] = clv.version
    purchase.scored_customers = int(scores["purchase_probability"].notna().sum())
    churn.scored_customers = int(scores["churn_risk"].notna().sum())
    clv.scored_customers = int(scores["predicted_clv"].notna().sum())
    scores = scores[
        [
            "customer_id",
            "purchase_probability",
            "churn_risk",
            "predicted_clv",
            "purchase_model_version",
            "churn_model_version",
            "clv_model_version",
        ]
    ]
    return ModelsResult(
        scores=scores,
        reports={PURCHASE: purchase, CHURN: churn, CLV: clv},
        as_of=as_of,
        seconds=time.perf_counter() - started,
    )
