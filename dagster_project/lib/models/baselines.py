"""Baselines the customer models are judged against, and the fallback used without history.

- **Recency only** (propensity and churn): rank customers by days since their last order. The
  classic single-feature benchmark; a model that cannot beat it is not worth its complexity.
- **BG/NBD + Gamma-Gamma** (Fader, Hardie & Lee 2005; Fader & Hardie 2013) through the
  ``lifetimes`` package: the standard probabilistic CLV model from frequency, recency and age
  alone. ``lifetimes`` is unmaintained, so it is an optional (bench/dev) dependency: without it,
  or when its fit fails, the comparison says "unavailable" and the models still run.
- **Fallback heuristic** (what a model falls back to with too little history to train): for a
  customer with orders, an order rate ``rate = order_count / max(tenure_days + 1, 30)`` per day,
  damped by how long ago they last ordered, ``alive = exp(-recency_days / 365)``; then
  ``purchase_probability = alive x (1 - exp(-rate x h_purchase))``,
  ``churn_risk = 1 - alive x (1 - exp(-rate x h_churn))`` and
  ``predicted_clv = alive x rate x h_clv x average order value``. Customers without orders get
  no fallback score (null): there is nothing to extrapolate from.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

FALLBACK_VERSION = "fallback-recency-frequency-1"
#: Rows the BG/NBD and Gamma-Gamma fits use at most (a random sample; both are 3-4 parameter
#: models, so more rows only cost time).
BGNBD_MAX_FIT_ROWS = 20_000


def recency_score(features: pd.DataFrame) -> np.ndarray:
    """Higher = more recent buyer; customers who never ordered rank below every buyer."""
    recency = features["recency_days"].astype(float)
    worst = float(np.nanmax(recency.to_numpy())) + 1.0 if recency.notna().any() else 1.0
    return -recency.fillna(worst).to_numpy()


def _rate_and_alive(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    orders = features["order_count"].fillna(0).to_numpy(dtype=float)
    tenure = features["tenure_days"].fillna(0).to_numpy(dtype=float)
    recency = features["recency_days"].to_numpy(dtype=float)
    rate = orders / np.maximum(tenure + 1.0, 30.0)
    alive = np.exp(-np.nan_to_num(recency, nan=np.inf) / 365.0)
    return rate, alive


def fallback_probability(features: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """P(an order in the next ``horizon_days``) by the heuristic; NaN for non-buyers."""
    rate, alive = _rate_and_alive(features)
    probability = alive * (1.0 - np.exp(-rate * horizon_days))
    buyers = features["order_count"].fillna(0).to_numpy() > 0
    return np.where(buyers, probability, np.nan)


def fallback_clv(features: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Expected revenue in the next ``horizon_days`` by the heuristic; NaN for non-buyers."""
    rate, alive = _rate_and_alive(features)
    value = features["average_gross_order_value"].to_numpy(dtype=float)
    clv = alive * rate * horizon_days * value
    buyers = features["order_count"].fillna(0).to_numpy() > 0
    return np.where(buyers, clv, np.nan)


@dataclass(frozen=True)
class BgNbdForecast:
    """BG/NBD expected orders and Gamma-Gamma expected order value per row (0 for non-buyers)."""

    expected_orders: np.ndarray
    expected_value: np.ndarray | None
    unavailable: str | None = None

    def clv(self) -> np.ndarray | None:
        """Expected orders x expected order value."""
        if self.expected_value is None:
            return None
        return self.expected_orders * self.expected_value


def _rfm_inputs(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # lifetimes' convention: frequency = repeat orders, recency = age at the last order, T = age,
    # in days since the first order (T + 1 so a first order on the cutoff day has age 1).
    orders = features["order_count"].fillna(0).to_numpy(dtype=float)
    tenure = features["tenure_days"].fillna(0).to_numpy(dtype=float)
    recency_days = features["recency_days"].fillna(0).to_numpy(dtype=float)
    frequency = np.maximum(orders - 1.0, 0.0)
    age = tenure + 1.0
    recency = np.clip(tenure - recency_days, 0.0, None)
    recency = np.where(frequency > 0, recency, 0.0)
    return frequency, recency, age


def bgnbd_forecast(
    fit_features: pd.DataFrame,
    predict_features: pd.DataFrame,
    horizon_days: int,
    *,
    with_value: bool = True,
    seed: int = 0,
) -> BgNbdForecast:
    """Fit BG/NBD (+ Gamma-Gamma) on buyers of ``fit_features``, forecast ``predict_features``.

    Both frames are features at cutoffs; the fit sees only their (pre-cutoff) history.
    ``with_value=False`` skips Gamma-Gamma (the probability baselines need orders only).
    """
    empty = np.zeros(len(predict_features))
    if importlib.util.find_spec("lifetimes") is None:
        return BgNbdForecast(empty, None, "lifetimes is not installed (pip install lifetimes)")
    buyers = fit_features.loc[fit_features["order_count"].fillna(0) > 0]
    if len(buyers) < 20:
        return BgNbdForecast(empty, None, f"only {len(buyers)} buyers to fit BG/NBD on")
    if len(buyers) > BGNBD_MAX_FIT_ROWS:
        buyers = buyers.sample(BGNBD_MAX_FIT_ROWS, random_state=seed)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # lifetimes' optimizer probes overflowing parameters on its way; its warnings are noise
        warnings.simplefilter("ignore")
        return _bgnbd_fitted(buyers, predict_features, horizon_days, with_value)


def _bgnbd_fitted(
    buyers: pd.DataFrame, predict_features: pd.DataFrame, horizon_days: int, with_value: bool
) -> BgNbdForecast:
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.fitters import ConvergenceError

    empty = np.zeros(len(predict_features))
    frequency, recency, age = _rfm_inputs(buyers)
    p_freq, p_rec, p_age = _rfm_inputs(predict_features)
    try:
        # In weeks, as lifetimes' examples use: in days its optimizer often fails to converge.
        # A larger penalty is the remedy lifetimes suggests when it still does not.
        for penalizer in (0.001, 0.01, 0.1):
            try:
                bgf = BetaGeoFitter(penalizer_coef=penalizer)
                with contextlib.redirect_stdout(io.StringIO()):  # it prints the failed optimum
                    bgf.fit(frequency, recency / 7, age / 7)
                break
            except ConvergenceError:
                if penalizer == 0.1:
                    raise
        expected = np.asarray(
            bgf.conditional_expected_number_of_purchases_up_to_time(
                horizon_days / 7, p_freq, p_rec / 7, p_age / 7
            ),
            dtype=float,
        )
    except Exception as exc:  # lifetimes raises bare ConvergenceError/ValueError/LinAlgError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        logger.warning("BG/NBD fit failed: %s", reason)
        return BgNbdForecast(empty, None, f"BG/NBD fit failed: {reason}")
    predict_buyers = predict_features["order_count"].fillna(0).to_numpy() > 0
    expected = np.where(predict_buyers, np.nan_to_num(expected, nan=0.0), 0.0)
    if not with_value:
        return BgNbdForecast(expected, None)
    value: np.ndarray | None = None
    repeat = frequency > 0
    aov = buyers["gross_revenue"].to_numpy(dtype=float) / buyers["order_count"].to_numpy(float)
    try:
        if repeat.sum() < 20:
            raise ValueError(f"only {int(repeat.sum())} repeat buyers")
        ggf = GammaGammaFitter(penalizer_coef=0.001)
        with contextlib.redirect_stdout(io.StringIO()):
            ggf.fit(pd.Series(frequency[repeat]), pd.Series(np.maximum(aov[repeat], 0.01)))
        p_aov = predict_features["gross_revenue"].to_numpy(dtype=float) / np.maximum(
            predict_features["order_count"].fillna(0).to_numpy(float), 1.0
        )
        value = np.asarray(
            ggf.conditional_expected_average_profit(
                pd.Series(p_freq), pd.Series(np.maximum(p_aov, 0.01))
            ),
            dtype=float,
        )
        # Gamma-Gamma is defined for repeat buyers; one-time buyers get its population mean.
        population = float(np.nanmean(value[p_freq > 0])) if (p_freq > 0).any() else np.nan
        value = np.where(p_freq > 0, value, population)
        value = np.where(predict_buyers, np.nan_to_num(value, nan=0.0), 0.0)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        logger.warning("Gamma-Gamma fit failed: %s", reason)
        return BgNbdForecast(expected, None, f"Gamma-Gamma fit failed: {reason}")
    return BgNbdForecast(expected, value)
