"""Holdout and experiment assignment by a keyed hash of the stable customer id.

``HMAC-SHA256(key, f"{experiment}:{assignment_id}")`` read as a number in [0, 1): the same person
always lands in the same bucket (no assignment table to keep), buckets of different experiments
are independent, and nobody without the key (kept by the store, 0600) can predict or steer who is
held out. ``assignment_id`` is the oldest customer id the person has had, so a merge keeps the
older record's assignment instead of reshuffling the control group (a gap Braze documents).

The holdout is decided first: a customer in it is in no experiment.
"""

from __future__ import annotations

import hashlib
import hmac

from decisions.policy import HOLDOUT, ArmPolicy, DecisionsPolicy, ExperimentPolicy
from decisions.types import ExperimentArm

_SCALE = float(2**64)


def bucket(key: bytes, experiment: str, assignment_id: str) -> float:
    """A uniform number in [0, 1) fixed by the key, the experiment and the person."""
    digest = hmac.new(key, f"{experiment}:{assignment_id}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def is_holdout(key: bytes, assignment_id: str, share: float) -> bool:
    """Whether the person is in the global control group."""
    return share > 0 and bucket(key, HOLDOUT, assignment_id) < share


def choose_arm(key: bytes, experiment: ExperimentPolicy, assignment_id: str) -> ArmPolicy:
    """The arm of ``experiment`` the person is in, with probability proportional to its weight."""
    u = bucket(key, experiment.name, assignment_id)
    total = sum(arm.weight for arm in experiment.arms)
    edge = 0.0
    for arm in experiment.arms:
        edge += arm.weight / total
        if u < edge:
            return arm
    return experiment.arms[-1]


def assign(
    policy: DecisionsPolicy, key: bytes, assignment_id: str, placement: str
) -> tuple[ExperimentArm | None, ArmPolicy | None]:
    """Holdout first, then the placement's experiment: (what is logged, what the arm changes)."""
    if is_holdout(key, assignment_id, policy.holdout.share):
        return ExperimentArm(HOLDOUT, HOLDOUT, is_holdout=True), None
    experiment = policy.experiment_for(placement)
    if experiment is None:
        return None, None
    arm = choose_arm(key, experiment, assignment_id)
    return ExperimentArm(experiment.name, arm.name), arm
