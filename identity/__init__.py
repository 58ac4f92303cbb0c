"""Identity resolution: source records -> customers with stable ids and explanations.

A plain library (no Dagster): normalize attributes, link records by deterministic rules with
guards and by a Splink model, split implausible components of the NetworkX identity graph,
keep customer ids stable across runs, and explain every decision.

Typical use::

    from identity import IdentitySettings, collect_records, resolve, write_resolution

    records, identifiers = collect_records(tables, identifiers_by_source)
    resolution = resolve(records, identifiers, IdentitySettings(), run_id="r1", now=now)
    write_resolution(resolution, lake / "identity")
"""

from __future__ import annotations

from identity.collect import Collected, collect_records
from identity.evaluate import PairwiseScores, evaluate_clusters, pairwise_scores
from identity.explain import (
    CustomerExplanation,
    Evidence,
    PairExplanation,
    explain_customer,
    explain_pair,
)
from identity.graph import SplitEvent, build_graph, resolve_clusters
from identity.ids import PreviousState, assign_customer_ids, new_customer_id, resolve_alias
from identity.mapping import MappingError, RecordMapping, collect_files, load_mapping
from identity.model import CandidateScorer, ModelSettings, TrainedModel, train_model
from identity.normalize import (
    NormalizationReport,
    Normalizer,
    normalize_records,
    normalize_with_report,
)
from identity.pipeline import (
    Resolution,
    read_previous_state,
    read_saved_model,
    resolve,
    write_resolution,
)
from identity.realtime import RealtimeResolver, RealtimeResult
from identity.rules import RuleResult, deterministic_edges, normalize_identifiers
from identity.settings import IdentitySettings, IdentitySettingsError, load_identity_settings

__all__ = [
    "CandidateScorer",
    "Collected",
    "CustomerExplanation",
    "Evidence",
    "IdentitySettings",
    "IdentitySettingsError",
    "MappingError",
    "ModelSettings",
    "NormalizationReport",
    "Normalizer",
    "PairExplanation",
    "PairwiseScores",
    "PreviousState",
    "RealtimeResolver",
    "RealtimeResult",
    "RecordMapping",
    "Resolution",
    "RuleResult",
    "SplitEvent",
    "TrainedModel",
    "assign_customer_ids",
    "build_graph",
    "collect_files",
    "collect_records",
    "deterministic_edges",
    "evaluate_clusters",
    "explain_customer",
    "explain_pair",
    "load_identity_settings",
    "load_mapping",
    "new_customer_id",
    "normalize_identifiers",
    "normalize_records",
    "normalize_with_report",
    "pairwise_scores",
    "read_previous_state",
    "read_saved_model",
    "resolve",
    "resolve_alias",
    "resolve_clusters",
    "train_model",
    "write_resolution",
]
