"""Checks of the decisions: the personalized arms must not convert worse than the holdout."""

from __future__ import annotations

from typing import Final

import dagster as dg

from dagster_project.lib.decision_measurement import Measurement, significantly_worse

#: The exported tables of the decision log dbt reads (source ``decisions.<table>``: the
#: translator's default key for a source is ``[source, table]``).
DECISION_LOG_KEYS: Final[tuple[dg.AssetKey, ...]] = tuple(
    dg.AssetKey(["decisions", table]) for table in ("deliveries", "decision_items", "outcomes")
)
DECISION_MEASUREMENT_KEY: Final[dg.AssetKey] = dg.AssetKey(["decisions", "decision_measurement"])
NOT_WORSE_CHECK_NAME: Final[str] = "personalized_not_worse_than_holdout"

NOT_WORSE_CHECK: Final[dg.AssetCheckSpec] = dg.AssetCheckSpec(
    name=NOT_WORSE_CHECK_NAME,
    asset=DECISION_MEASUREMENT_KEY,
    description=(
        "Warns when an arm of a placement (personalized, or an experiment arm) converts "
        "significantly worse than the holdout: the 95 % interval of the difference in "
        "conversion per decision lies wholly below zero. The messages would then cost sales."
    ),
)


def not_worse_check_result(measurement: Measurement) -> dg.AssetCheckResult:
    """Fail (WARN) naming each arm whose conversion interval against the holdout is below 0."""
    worse = significantly_worse(measurement.holdout_lifts)
    compared = [lift for lift in measurement.holdout_lifts if lift.proportions]
    metadata: dict[str, float | int | str] = {"arms_compared": len(compared)}
    if not compared:
        return dg.AssetCheckResult(
            check_name=NOT_WORSE_CHECK_NAME,
            asset_key=DECISION_MEASUREMENT_KEY,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description="not judged: no placement has both a holdout and another arm yet",
            metadata=metadata,
        )
    lines = []
    for lift in worse:
        c = lift.proportions["has_converted"]
        assert c is not None
        lines.append(
            f"{lift.placement}/{lift.channel} {lift.arm}: conversion {c.treated_rate:.2%} vs "
            f"holdout {c.control_rate:.2%}, difference {c.difference:.2%} "
            f"[{c.difference_low:.2%}, {c.difference_high:.2%}]"
        )
    metadata["arms_significantly_worse"] = len(worse)
    return dg.AssetCheckResult(
        check_name=NOT_WORSE_CHECK_NAME,
        asset_key=DECISION_MEASUREMENT_KEY,
        passed=not worse,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(lines)
        or f"no arm converts significantly worse than the holdout ({len(compared)} compared)",
        metadata=metadata,
    )
