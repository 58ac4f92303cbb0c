"""decisions.measure: known answers against statsmodels, and simulations with a known truth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep
from statsmodels.stats.proportion import test_proportions_2indep as score_test
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from decisions.measure import (
    HOLDOUT_ARM,
    compare_means,
    compare_proportions,
    importance_weights,
    ips,
    lift_against_baseline,
    off_policy_estimate,
    per_send_rates,
    snips,
)


def test_proportions_match_statsmodels() -> None:
    result = compare_proportions(70, 1000, 50, 1000)
    assert result is not None
    low, high = confint_proportions_2indep(70, 1000, 50, 1000, compare="diff", method="newcomb")
    r_low, r_high = confint_proportions_2indep(
        70, 1000, 50, 1000, compare="ratio", method="log-adjusted"
    )
    test = score_test(70, 1000, 50, 1000, compare="diff", method="score")
    assert result.difference == pytest.approx(0.02)
    assert (result.difference_low, result.difference_high) == pytest.approx((low, high))
    assert result.ratio == pytest.approx(1.4)
    assert (result.ratio_low, result.ratio_high) == pytest.approx((r_low, r_high))
    assert result.p_value == pytest.approx(test.pvalue)
    # 7 % vs 5 % on 1,000 each is not significant at 95 %: the interval straddles zero
    assert result.difference_low < 0 < result.difference_high
    assert not result.is_significantly_worse and not result.is_significantly_better


def test_proportions_edge_cases() -> None:
    assert compare_proportions(1, 0, 1, 10) is None
    nothing = compare_proportions(0, 500, 0, 400)
    assert nothing is not None
    assert nothing.difference == 0 and nothing.p_value == 1.0 and nothing.ratio is None
    assert nothing.difference_low < 0 < nothing.difference_high


def test_welch_matches_statsmodels() -> None:
    rng = np.random.default_rng(3)
    treated = rng.exponential(12.0, 300)
    control = rng.exponential(9.0, 250)
    result = compare_means(treated, control)
    assert result is not None
    compared = CompareMeans(DescrStatsW(treated), DescrStatsW(control))
    low, high = compared.tconfint_diff(usevar="unequal")
    assert (result.difference_low, result.difference_high) == pytest.approx((low, high))
    assert result.p_value == pytest.approx(compared.ttest_ind(usevar="unequal")[1])
    assert compare_means([1.0], [1.0, 2.0]) is None
    flat = compare_means([0.0, 0.0, 0.0], [0.0, 0.0])
    assert flat is not None and flat.difference == 0 and flat.p_value == 1.0


def _simulated_deliveries(
    rng: np.random.Generator, n_treated: int, n_holdout: int, p_treated: float, p_holdout: float
) -> pd.DataFrame:
    converted = np.concatenate(
        [rng.random(n_treated) < p_treated, rng.random(n_holdout) < p_holdout]
    ).astype(int)
    revenue = converted * rng.gamma(2.0, 30.0, n_treated + n_holdout)
    return pd.DataFrame(
        {
            "placement": "daily_email",
            "channel": "email",
            "arm": ["personalized"] * n_treated + [HOLDOUT_ARM] * n_holdout,
            "is_sent": [1] * n_treated + [0] * n_holdout,
            "has_converted": converted,
            "has_visited": converted,
            "has_unsubscribed": 0,
            "revenue": revenue,
        }
    )


def test_an_injected_lift_is_recovered_within_its_interval() -> None:
    covered = covered_revenue = 0
    runs = 40
    true_revenue_gap = (0.060 - 0.045) * 60.0  # gamma(2, 30) has mean 60
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        frame = _simulated_deliveries(rng, 20_000, 5_000, 0.060, 0.045)
        [lift] = lift_against_baseline(frame, metrics=("has_converted",))
        conversion = lift.proportions["has_converted"]
        assert conversion is not None
        covered += conversion.difference_low <= 0.015 <= conversion.difference_high
        assert lift.revenue is not None
        revenue = lift.revenue
        covered_revenue += revenue.difference_low <= true_revenue_gap <= revenue.difference_high
    # a 95 % interval covers the truth in about 38 of 40 runs; 34 is a generous floor
    assert covered >= 34 and covered_revenue >= 34
    rng = np.random.default_rng(99)
    [lift] = lift_against_baseline(_simulated_deliveries(rng, 20_000, 5_000, 0.060, 0.045))
    conversion = lift.proportions["has_converted"]
    assert conversion is not None and conversion.is_significantly_better


def test_a_harmful_arm_is_significantly_worse() -> None:
    rng = np.random.default_rng(5)
    frame = _simulated_deliveries(rng, 20_000, 5_000, 0.03, 0.05)
    [lift] = lift_against_baseline(frame)
    conversion = lift.proportions["has_converted"]
    assert conversion is not None and conversion.is_significantly_worse
    assert set(lift.proportions) == {"has_converted", "has_visited", "has_unsubscribed"}


def test_pairs_without_a_holdout_are_left_out_and_arms_compare_per_send() -> None:
    frame = pd.DataFrame(
        {
            "placement": ["p"] * 6,
            "channel": ["email"] * 6,
            "arm": ["x/control", "x/control", "x/personal", "x/personal", HOLDOUT_ARM, "x/control"],
            "is_sent": [1, 1, 1, 1, 0, 0],
            "has_opened": [1, 0, 1, 1, 0, 0],
            "has_clicked": [0, 0, 1, 0, 0, 0],
            "has_converted": [0, 0, 1, 0, 0, 0],
            "has_unsubscribed": [0] * 6,
            "revenue": [0, 0, 10, 0, 0, 0],
        }
    )
    assert lift_against_baseline(frame.loc[frame["arm"] != HOLDOUT_ARM]) == []
    [arm] = per_send_rates(frame)
    assert (arm.arm, arm.baseline) == ("x/personal", "x/control")
    opened = arm.proportions["has_opened"]
    assert opened is not None
    # per send: the unsent control delivery is not in the denominator
    assert (opened.treated_n, opened.control_n) == (2, 2)
    assert (opened.treated_rate, opened.control_rate) == (1.0, 0.5)


def test_ips_and_snips_known_answer() -> None:
    propensity = [0.5, 0.25, 0.25, 0.5]
    reward = [1.0, 0.0, 1.0, 0.0]
    candidate = [1.0, 0.0, 0.5, 1.0]
    # weights 2, 0, 2, 2: IPS = (2 + 0 + 2 + 0) / 4 = 1.0; SNIPS = 4 / 6
    assert list(importance_weights(propensity, candidate)) == [2.0, 0.0, 2.0, 2.0]
    assert ips(propensity, reward, candidate) == pytest.approx(1.0)
    assert snips(propensity, reward, candidate) == pytest.approx(4 / 6)
    estimate = off_policy_estimate(propensity, reward, candidate)
    assert estimate.ips == pytest.approx(1.0) and estimate.snips == pytest.approx(4 / 6)
    assert estimate.effective_sample_size == pytest.approx(36 / 12)
    assert estimate.logged_value == 0.5 and estimate.max_weight == 2.0
    # the same policy as the logger: weights 1, both estimates are the logged mean
    same = off_policy_estimate(propensity, reward, propensity)
    assert same.ips == same.snips == same.logged_value == 0.5
    assert math.isnan(snips(propensity, reward, [0.0] * 4))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        importance_weights([0.0, 0.5], [1.0, 1.0])


def test_snips_recovers_a_target_policy_value_from_a_simulated_log() -> None:
    """Uniform logging over 4 actions with known click rates; the target always picks the best
    one. SNIPS (and IPS) land near the target's true value, inside their intervals."""
    rng = np.random.default_rng(11)
    rates = np.array([0.02, 0.05, 0.10, 0.20])
    n = 40_000
    actions = rng.integers(0, 4, n)
    reward = (rng.random(n) < rates[actions]).astype(float)
    propensity = np.full(n, 0.25)
    candidate = (actions == 3).astype(float)
    estimate = off_policy_estimate(propensity, reward, candidate)
    assert estimate.logged_value == pytest.approx(rates.mean(), abs=0.01)
    assert estimate.snips_low <= 0.20 <= estimate.snips_high
    assert estimate.ips_low <= 0.20 <= estimate.ips_high
    assert estimate.snips == pytest.approx(0.20, abs=0.015)
    assert estimate.effective_sample_size == pytest.approx(n / 4, rel=0.05)
