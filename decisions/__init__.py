"""One decision service that every channel asks.

Why a library of its own: personalization locked inside each channel makes the email, the site
and the call center contradict each other. Here a policy written in ``cdp.yml`` (``decisions:``)
decides, for a customer, a placement and a period, which sales and items they see, under one
theme with one wildcard, what the subject says, and whether a message may go out at all
(consent at decision time, caps over sliding windows across channels, adaptive frequency,
post-purchase suppression, a holdout and experiments by a keyed hash that survives merges).
Every decision is logged with its reasons and the probability each item was chosen with, so it
explains itself and can be measured.

Parts: :mod:`decisions.policy` (the configuration), :mod:`decisions.engine` (a pure choice),
:mod:`decisions.templates` (safe rendering), :mod:`decisions.assignment` (holdout and arms),
:mod:`decisions.store` (the durable log, caps and consent), :mod:`decisions.service` (the
orchestration the API, Dagster and the CLI call). No web framework or Dagster imports.
"""

from decisions.engine import Catalogue, Engine, adaptive_cap, choose, period_bounds
from decisions.policy import (
    DecisionsPolicy,
    PolicyError,
    check_references,
    load_policy,
    parse_policy,
    policy_version,
)
from decisions.service import DecisionRequestError, DecisionService
from decisions.store import DecisionStore
from decisions.templates import TEMPLATE_VARIABLES, render
from decisions.types import (
    MESSAGE_CHANNELS,
    CapRule,
    CustomerFacts,
    Decision,
    DecisionItem,
    Engagement,
    ExperimentArm,
    Sale,
    SaleItem,
)

__all__ = [
    "MESSAGE_CHANNELS",
    "TEMPLATE_VARIABLES",
    "CapRule",
    "Catalogue",
    "CustomerFacts",
    "Decision",
    "DecisionItem",
    "DecisionRequestError",
    "DecisionService",
    "DecisionStore",
    "DecisionsPolicy",
    "Engagement",
    "Engine",
    "ExperimentArm",
    "PolicyError",
    "Sale",
    "SaleItem",
    "adaptive_cap",
    "check_references",
    "choose",
    "load_policy",
    "parse_policy",
    "period_bounds",
    "policy_version",
    "render",
]
