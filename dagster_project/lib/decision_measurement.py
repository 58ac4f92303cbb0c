"""Measuring the decisions from the warehouse: the inputs of ``decisions.measure`` and tables an
operator reads.

The attribution is dbt's (``marts/measurement``); the statistics are ``decisions.measure``
(statsmodels); this module reads the per-delivery and per-item marts, defines the candidate
policy of the off-policy estimate, and lays the results out as rows.

Candidate policy ``no_exploration``: the same ranking with exploration switched off, i.e. the
best theme always. The engine logs each theme item's probability of being shown, summed over
the themes that would have shown it; the best theme contributes ``1 - share`` and every other
theme ``share / themes``, so (for a share below one half) an item belongs to the best theme's
selection exactly when its propensity is at least ``1 - share``. Under the candidate those
items are shown with probability 1 and the others with 0; wildcards are drawn as logged
(weight 1). Each item's reward is whether the customer bought that product within the order
window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pandas as pd

from decisions import DecisionsPolicy
from decisions.measure import (
    HOLDOUT_ARM,
    ArmLift,
    OffPolicyEstimate,
    ProportionComparison,
    lift_against_baseline,
    off_policy_estimate,
    per_send_rates,
)

DELIVERY_COLUMNS: Final[tuple[str, ...]] = (
    "placement",
    "channel",
    "arm",
    "experiment",
    "is_sent",
    "has_opened",
    "has_clicked",
    "has_visited",
    "has_converted",
    "has_unsubscribed",
    "revenue",
)
ITEM_COLUMNS: Final[tuple[str, ...]] = (
    "placement",
    "arm",
    "propensity",
    "is_wildcard",
    "has_purchased_item",
)
NO_EXPLORATION: Final[str] = "no_exploration"
#: Metrics compared against the holdout (per decision, intention to treat).
HOLDOUT_METRICS: Final[tuple[str, ...]] = ("has_converted", "has_visited", "has_unsubscribed")
#: Metrics compared between experiment arms (per send).
ARM_METRICS: Final[tuple[str, ...]] = ("has_opened", "has_clicked", "has_converted")
_TOLERANCE: Final[float] = 1e-9


class MeasurementInputError(RuntimeError):
    """The warehouse lacks the measurement marts: build dbt first."""


@dataclass(frozen=True)
class MeasurementInputs:
    """One row per delivery and one per shown item."""

    deliveries: pd.DataFrame
    items: pd.DataFrame


def read_measurement_inputs(warehouse: Path) -> MeasurementInputs:
    """The per-delivery and per-item marts (read-only), 0/1 flags as integers."""
    if not warehouse.exists():
        raise MeasurementInputError(
            f"no warehouse at {warehouse}: materialize the dbt models first"
        )
    try:
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            deliveries = connection.sql(
                f"select {', '.join(DELIVERY_COLUMNS)} from decision_delivery_outcomes"
            ).df()
            items = connection.sql(
                f"select {', '.join(ITEM_COLUMNS)} from decision_item_outcomes"
            ).df()
    except duckdb.CatalogException as exc:
        raise MeasurementInputError(
            f"the warehouse at {warehouse} lacks a measurement mart ({exc}); run dbt first"
        ) from exc
    for column in ("is_sent", "has_opened", "has_clicked", "has_visited", "has_converted"):
        deliveries[column] = deliveries[column].fillna(False).astype(int)
    deliveries["has_unsubscribed"] = deliveries["has_unsubscribed"].fillna(False).astype(int)
    deliveries["revenue"] = deliveries["revenue"].fillna(0.0).astype(float)
    deliveries["experiment"] = deliveries["experiment"].astype(object)
    items["has_purchased_item"] = items["has_purchased_item"].fillna(False).astype(int)
    items["is_wildcard"] = items["is_wildcard"].fillna(False).astype(bool)
    return MeasurementInputs(deliveries, items)


def exploration_share(policy: DecisionsPolicy, placement: str, arm: str) -> float:
    """The exploration share the policy gives an arm (``<experiment>/<arm>``) of a placement."""
    share = policy.exploration.share
    experiment = policy.experiment_for(placement) if placement in policy.placements else None
    if experiment is not None and "/" in arm:
        name = arm.split("/", 1)[1]
        for candidate in experiment.arms:
            if candidate.name == name and candidate.exploration_share is not None:
                share = candidate.exploration_share
    return share


def no_exploration_probability(items: pd.DataFrame, policy: DecisionsPolicy) -> np.ndarray:
    """Probability the no-exploration candidate shows each logged item (see module doc)."""
    if items.empty:
        return np.zeros(0)
    pairs = zip(items["placement"], items["arm"], strict=True)
    shares = np.array([exploration_share(policy, str(p), str(a)) for p, a in pairs])
    propensity = items["propensity"].to_numpy(float)
    wildcard = items["is_wildcard"].to_numpy(bool)
    greedy = (propensity >= 1.0 - shares - _TOLERANCE).astype(float)
    return np.where(wildcard, propensity, greedy)


@dataclass(frozen=True)
class PolicyEstimateRow:
    """An off-policy estimate of one candidate on one placement."""

    placement: str
    candidate: str
    estimate: OffPolicyEstimate


def off_policy_rows(items: pd.DataFrame, policy: DecisionsPolicy) -> list[PolicyEstimateRow]:
    """SNIPS/IPS of the no-exploration candidate per placement (holdout items left out)."""
    shown = items.loc[(items["arm"] != HOLDOUT_ARM) & items["propensity"].gt(0)]
    rows: list[PolicyEstimateRow] = []
    for placement, group in shown.groupby("placement", sort=True):
        candidate = no_exploration_probability(group, policy)
        estimate = off_policy_estimate(
            group["propensity"].to_numpy(float),
            group["has_purchased_item"].to_numpy(float),
            candidate,
        )
        rows.append(PolicyEstimateRow(str(placement), NO_EXPLORATION, estimate))
    return rows


@dataclass(frozen=True)
class Measurement:
    """Everything the measurement asset reports."""

    deliveries: int
    holdout_lifts: list[ArmLift]
    arm_lifts: list[ArmLift]
    policy_estimates: list[PolicyEstimateRow]


def measure(inputs: MeasurementInputs, policy: DecisionsPolicy) -> Measurement:
    """Lift against the holdout, arms against each other, and the off-policy estimates."""
    deliveries = inputs.deliveries
    return Measurement(
        deliveries=len(deliveries),
        holdout_lifts=lift_against_baseline(deliveries, HOLDOUT_ARM, HOLDOUT_METRICS),
        arm_lifts=per_send_rates(deliveries, ARM_METRICS),
        policy_estimates=off_policy_rows(inputs.items, policy),
    )


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value * 100:.{digits}f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def lift_rows(lifts: list[ArmLift], per: str = "decision") -> list[list[Any]]:
    """Rows of a lift table: one per arm and metric, rates and the 95 % interval; rates and
    revenue are per ``per`` (decision against the holdout, send between arms)."""
    rows: list[list[Any]] = []
    for lift in lifts:
        for metric, compared in lift.proportions.items():
            rows.append(_proportion_row(lift, metric, compared))
        if lift.revenue is not None:
            r = lift.revenue
            rows.append(
                [
                    lift.placement,
                    lift.channel,
                    lift.arm,
                    lift.baseline,
                    f"revenue per {per}",
                    f"{r.treated_n} / {r.control_n}",
                    _num(r.treated_mean, 2),
                    _num(r.control_mean, 2),
                    f"{_num(r.difference, 2)} [{_num(r.difference_low, 2)}, "
                    f"{_num(r.difference_high, 2)}]",
                    "",
                    _num(r.p_value, 4),
                ]
            )
    return rows


def _proportion_row(lift: ArmLift, metric: str, compared: ProportionComparison | None) -> list[Any]:
    name = metric.removeprefix("has_").removeprefix("is_")
    if compared is None:
        return [lift.placement, lift.channel, lift.arm, lift.baseline, name, "", "", "", "", "", ""]
    ratio = (
        f"{_num(compared.ratio, 2)} [{_num(compared.ratio_low, 2)}, {_num(compared.ratio_high, 2)}]"
        if compared.ratio is not None
        else "n/a"
    )
    return [
        lift.placement,
        lift.channel,
        lift.arm,
        lift.baseline,
        name,
        f"{compared.treated_n} / {compared.control_n}",
        _pct(compared.treated_rate),
        _pct(compared.control_rate),
        f"{_pct(compared.difference)} [{_pct(compared.difference_low)}, "
        f"{_pct(compared.difference_high)}]",
        ratio,
        _num(compared.p_value, 4),
    ]


LIFT_HEADERS: Final[tuple[str, ...]] = (
    "placement",
    "channel",
    "arm",
    "vs",
    "metric",
    "n (arm / vs)",
    "arm value",
    "vs value",
    "difference [95% CI]",
    "ratio [95% CI]",
    "p",
)

POLICY_HEADERS: Final[tuple[str, ...]] = (
    "placement",
    "candidate",
    "logged items",
    "logged value",
    "IPS [95% CI]",
    "SNIPS [95% CI]",
    "effective n",
    "max weight",
)


def policy_rows(rows: list[PolicyEstimateRow]) -> list[list[Any]]:
    """Rows of the off-policy table (values are purchases of the shown item per item)."""
    out: list[list[Any]] = []
    for row in rows:
        e = row.estimate
        out.append(
            [
                row.placement,
                row.candidate,
                e.logged_n,
                _num(e.logged_value, 4),
                f"{_num(e.ips, 4)} [{_num(e.ips_low, 4)}, {_num(e.ips_high, 4)}]",
                f"{_num(e.snips, 4)} [{_num(e.snips_low, 4)}, {_num(e.snips_high, 4)}]",
                _num(e.effective_sample_size, 1),
                _num(e.max_weight, 2),
            ]
        )
    return out


def significantly_worse(lifts: list[ArmLift], metric: str = "has_converted") -> list[ArmLift]:
    """Arms whose ``metric`` interval against the holdout lies wholly below zero."""
    return [
        lift
        for lift in lifts
        if lift.baseline == HOLDOUT_ARM
        and (compared := lift.proportions.get(metric)) is not None
        and compared.is_significantly_worse
    ]
