"""What the decisions achieved: lift against the holdout with confidence intervals, and an
off-policy estimate of a policy we did not run.

Pure functions over arrays and frames (no Dagster, no warehouse): the ``decision_measurement``
asset reads the attributed deliveries from the warehouse and calls these, and tests check them
against statsmodels directly and on simulated data with a known true effect.

Why these statistics:

- Lift is *intention to treat*: every customer a decision was made for counts in its group,
  sent or not (caps, missing consent), because holdout assignment is random over decisions, not
  over sends. Comparing sends with the holdout would compare responsive customers (who pass the
  adaptive cap) with everyone.
- Proportions (conversion, open, click, unsubscribe rates) use statsmodels'
  ``confint_proportions_2indep``: Newcombe's score interval for the difference (good coverage
  at rates of a few percent, where the Wald interval is too narrow) and the log-adjusted interval
  for the ratio, with the score test's p-value. Revenue per decision is a heavy-tailed mean: a
  Welch interval (``CompareMeans.tconfint_diff(usevar="unequal")``) that does not assume the
  groups share a variance.
- Off-policy value uses the probability the logging policy gave each logged item: inverse
  propensity scoring (IPS, unbiased when every item the candidate might choose could have been
  logged) and its self-normalized form (SNIPS, slightly biased, much lower variance, and bounded
  by the rewards), with the effective sample size so a reader sees when a few large weights
  carry the estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

#: The arm name of the global control group in the attributed deliveries.
HOLDOUT_ARM: Final[str] = "holdout"

#: Per-delivery 0/1 outcome columns compared as proportions, and the revenue column.
PROPORTION_METRICS: Final[tuple[str, ...]] = (
    "is_sent",
    "has_opened",
    "has_clicked",
    "has_visited",
    "has_converted",
    "has_unsubscribed",
)
REVENUE_METRIC: Final[str] = "revenue"

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ProportionComparison:
    """A rate in a treated group against a control group, with 95 % (1 - alpha) intervals."""

    treated_successes: int
    treated_n: int
    control_successes: int
    control_n: int
    treated_rate: float
    control_rate: float
    difference: float
    difference_low: float
    difference_high: float
    #: treated_rate / control_rate and its interval; None while the control has no success
    ratio: float | None
    ratio_low: float | None
    ratio_high: float | None
    p_value: float

    @property
    def is_significantly_worse(self) -> bool:
        """The whole interval of the difference lies below zero."""
        return self.difference_high < 0

    @property
    def is_significantly_better(self) -> bool:
        """The whole interval of the difference lies above zero."""
        return self.difference_low > 0


@dataclass(frozen=True)
class MeanComparison:
    """A mean (e.g. revenue per decision) in two groups, with a Welch interval."""

    treated_n: int
    control_n: int
    treated_mean: float
    control_mean: float
    difference: float
    difference_low: float
    difference_high: float
    p_value: float


def compare_proportions(
    treated_successes: int,
    treated_n: int,
    control_successes: int,
    control_n: int,
    alpha: float = 0.05,
) -> ProportionComparison | None:
    """Difference (Newcombe score) and ratio (log-adjusted) of two rates; None if a group is
    empty."""
    if treated_n <= 0 or control_n <= 0:
        return None
    args = (treated_successes, treated_n, control_successes, control_n)
    ratio = ratio_low = ratio_high = None
    # statsmodels also computes the odds ratio, which divides by zero at a rate of 0 or 1
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = confint_proportions_2indep(*args, compare="diff", method="newcomb", alpha=alpha)
        if control_successes > 0:
            ratio_low, ratio_high = (
                float(v)
                for v in confint_proportions_2indep(
                    *args, compare="ratio", method="log-adjusted", alpha=alpha
                )
            )
            ratio = (treated_successes / treated_n) / (control_successes / control_n)
        if (
            treated_successes in (0, treated_n)
            and control_successes in (0, control_n)
            and (treated_successes / treated_n == control_successes / control_n)
        ):
            p_value = 1.0  # both rates 0 (or both 1): no evidence of any difference
        else:
            test = test_proportions_2indep(*args, compare="diff", method="score")
            p_value = float(test.pvalue)
    treated_rate = treated_successes / treated_n
    control_rate = control_successes / control_n
    return ProportionComparison(
        treated_successes=int(treated_successes),
        treated_n=int(treated_n),
        control_successes=int(control_successes),
        control_n=int(control_n),
        treated_rate=treated_rate,
        control_rate=control_rate,
        difference=treated_rate - control_rate,
        difference_low=float(low),
        difference_high=float(high),
        ratio=ratio,
        ratio_low=ratio_low,
        ratio_high=ratio_high,
        p_value=p_value,
    )


def compare_means(
    treated: Sequence[float] | FloatArray,
    control: Sequence[float] | FloatArray,
    alpha: float = 0.05,
) -> MeanComparison | None:
    """Welch interval of the difference of means; None when a group has fewer than 2 values."""
    t = np.asarray(treated, dtype=float)
    c = np.asarray(control, dtype=float)
    if len(t) < 2 or len(c) < 2:
        return None
    t_mean, c_mean = float(t.mean()), float(c.mean())
    if t.var() == 0 and c.var() == 0:  # e.g. nobody bought in either group: the interval is 0
        p_value = 1.0 if t_mean == c_mean else 0.0
        diff = t_mean - c_mean
        return MeanComparison(len(t), len(c), t_mean, c_mean, diff, diff, diff, p_value)
    compared = CompareMeans(DescrStatsW(t), DescrStatsW(c))
    low, high = compared.tconfint_diff(alpha=alpha, usevar="unequal")
    _, p_value, _ = compared.ttest_ind(usevar="unequal")
    return MeanComparison(
        treated_n=len(t),
        control_n=len(c),
        treated_mean=t_mean,
        control_mean=c_mean,
        difference=t_mean - c_mean,
        difference_low=float(low),
        difference_high=float(high),
        p_value=float(p_value),
    )


@dataclass(frozen=True)
class ArmLift:
    """One arm of one placement and channel against that placement's holdout (or control arm)."""

    placement: str
    channel: str
    arm: str
    baseline: str
    decisions: int
    baseline_decisions: int
    #: metric -> comparison (None when a group had nothing to compare)
    proportions: dict[str, ProportionComparison | None]
    revenue: MeanComparison | None


def _groups(frame: pd.DataFrame) -> dict[tuple[str, str, str], pd.DataFrame]:
    keys = ["placement", "channel", "arm"]
    return {
        (str(p), str(c), str(a)): group
        for (p, c, a), group in frame.groupby(keys, sort=True, dropna=False)
    }


def lift_against_baseline(
    deliveries: pd.DataFrame,
    baseline_arm: str = HOLDOUT_ARM,
    metrics: Sequence[str] = ("has_converted", "has_visited", "has_unsubscribed"),
    alpha: float = 0.05,
) -> list[ArmLift]:
    """Every other arm of each (placement, channel) against ``baseline_arm`` of the same pair.

    ``deliveries`` holds one row per delivery (decision on a channel): ``placement``,
    ``channel``, ``arm``, the 0/1 ``metrics`` and ``revenue``. Rates are per decision (intention
    to treat). Pairs without the baseline arm are left out.
    """
    groups = _groups(deliveries)
    lifts: list[ArmLift] = []
    for (placement, channel, arm), treated in groups.items():
        if arm == baseline_arm:
            continue
        control = groups.get((placement, channel, baseline_arm))
        if control is None:
            continue
        proportions = {
            metric: compare_proportions(
                int(treated[metric].sum()),
                len(treated),
                int(control[metric].sum()),
                len(control),
                alpha=alpha,
            )
            for metric in metrics
        }
        revenue = compare_means(
            treated[REVENUE_METRIC].to_numpy(float),
            control[REVENUE_METRIC].to_numpy(float),
            alpha=alpha,
        )
        lifts.append(
            ArmLift(
                placement,
                channel,
                arm,
                baseline_arm,
                len(treated),
                len(control),
                proportions,
                revenue,
            )
        )
    return lifts


def per_send_rates(
    deliveries: pd.DataFrame,
    metrics: Sequence[str] = ("has_opened", "has_clicked", "has_converted", "has_unsubscribed"),
    alpha: float = 0.05,
) -> list[ArmLift]:
    """Experiment arms against the first arm (by name order) per send, holdout excluded.

    Opens and clicks exist only for sent messages, so arms that change the message (a subject
    line) are compared per send; each (placement, channel) with two or more sending arms gets a
    row per non-baseline arm.
    """
    sent = deliveries.loc[(deliveries["is_sent"] > 0) & (deliveries["arm"] != HOLDOUT_ARM)]
    by_pair: dict[tuple[str, str], list[str]] = {}
    for placement, channel, arm in _groups(sent):
        by_pair.setdefault((placement, channel), []).append(arm)
    lifts: list[ArmLift] = []
    for (placement, channel), arms in by_pair.items():
        if len(arms) < 2:
            continue
        baseline = sorted(arms)[0]
        pair = sent.loc[(sent["placement"] == placement) & (sent["channel"] == channel)]
        lifts += [
            lift
            for lift in lift_against_baseline(pair, baseline, metrics, alpha)
            if lift.arm in arms
        ]
    return lifts


@dataclass(frozen=True)
class OffPolicyEstimate:
    """The value of a candidate policy estimated from what a logging policy did."""

    logged_n: int
    #: mean reward of what was logged (the logging policy's own value)
    logged_value: float
    ips: float
    ips_low: float
    ips_high: float
    snips: float
    snips_low: float
    snips_high: float
    #: (sum w)^2 / sum w^2: how many logged rows the estimate is effectively worth
    effective_sample_size: float
    max_weight: float


def importance_weights(
    propensity: Sequence[float] | FloatArray, candidate_probability: Sequence[float] | FloatArray
) -> FloatArray:
    """w = candidate probability / logged propensity; propensities must be in (0, 1]."""
    p = np.asarray(propensity, dtype=float)
    q = np.asarray(candidate_probability, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"{len(p)} propensities but {len(q)} candidate probabilities")
    if len(p) and (np.any(p <= 0) or np.any(p > 1) or not np.all(np.isfinite(p))):
        raise ValueError("every logged propensity must be in (0, 1]: a zero cannot be reweighted")
    if len(q) and (np.any(q < 0) or np.any(q > 1)):
        raise ValueError("candidate probabilities must be in [0, 1]")
    return q / p


def ips(
    propensity: Sequence[float] | FloatArray,
    reward: Sequence[float] | FloatArray,
    candidate_probability: Sequence[float] | FloatArray,
) -> float:
    """Inverse propensity estimate: mean of w * reward."""
    w = importance_weights(propensity, candidate_probability)
    r = np.asarray(reward, dtype=float)
    return float(np.mean(w * r)) if len(r) else math.nan


def snips(
    propensity: Sequence[float] | FloatArray,
    reward: Sequence[float] | FloatArray,
    candidate_probability: Sequence[float] | FloatArray,
) -> float:
    """Self-normalized IPS: sum(w * reward) / sum(w); NaN when the candidate puts no weight on
    anything logged."""
    w = importance_weights(propensity, candidate_probability)
    r = np.asarray(reward, dtype=float)
    total = float(w.sum())
    return float((w * r).sum() / total) if total > 0 else math.nan


def off_policy_estimate(
    propensity: Sequence[float] | FloatArray,
    reward: Sequence[float] | FloatArray,
    candidate_probability: Sequence[float] | FloatArray,
    alpha: float = 0.05,
) -> OffPolicyEstimate:
    """IPS and SNIPS with normal intervals (SNIPS by the delta method, as a ratio estimator).

    Each row is one logged choice: the probability the logging policy chose it, the reward it
    earned and the probability the candidate policy would have chosen it.
    """
    w = importance_weights(propensity, candidate_probability)
    r = np.asarray(reward, dtype=float)
    n = len(r)
    if n == 0:
        nan = math.nan
        return OffPolicyEstimate(0, nan, nan, nan, nan, nan, nan, nan, 0.0, nan)
    terms = w * r
    ips_value = float(terms.mean())
    if n > 1:
        ips_low, ips_high = (float(v) for v in DescrStatsW(terms).zconfint_mean(alpha=alpha))
    else:
        ips_low = ips_high = math.nan
    weight_sum = float(w.sum())
    if weight_sum > 0:
        snips_value = float(terms.sum() / weight_sum)
        # Delta method for a ratio of means: var(w * (r - snips)) / (n * mean(w)^2).
        residual = w * (r - snips_value)
        spread = float(np.sqrt(residual.var(ddof=1) / n) / w.mean()) if n > 1 else math.nan
        z = _normal_quantile(1 - alpha / 2)
        snips_low, snips_high = snips_value - z * spread, snips_value + z * spread
        ess = weight_sum**2 / float((w**2).sum())
    else:
        snips_value = snips_low = snips_high = math.nan
        ess = 0.0
    return OffPolicyEstimate(
        logged_n=n,
        logged_value=float(r.mean()),
        ips=ips_value,
        ips_low=ips_low,
        ips_high=ips_high,
        snips=snips_value,
        snips_low=snips_low,
        snips_high=snips_high,
        effective_sample_size=float(ess),
        max_weight=float(w.max()),
    )


def _normal_quantile(q: float) -> float:
    return NormalDist().inv_cdf(q)
