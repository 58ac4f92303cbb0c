"""Identity resolution: source records -> customers with stable ids and explanations.

A plain library (no Dagster): normalize attributes, link records by deterministic rules with
guards and by a Splink model, split implausible components of the NetworkX identity graph,
keep customer ids stable across runs, and explain every decision.

Typical use::

    from identity import IdentitySettings, collect_records, resolve, write_resolution

    records, identifiers = collect_records(tables, identifiers_by_source)
    resolution = resolve(records, identifiers, IdentitySettings(), run_id="r1", now=now)
    write_resolution(resolution, lake / "identity")

Everything public is importable from here, and only what ``__all__`` lists is public; the
modules behind it are internal. Names load on first use (PEP 562): ``import identity`` costs
only the vocabulary, and the light parts (settings, ``Normalizer``, the mapping model) never
import pandas, Arrow, DuckDB, NetworkX or Splink, so an API worker that normalizes lookups
starts without them. The rest loads its heavy libraries when first touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from identity.vocabulary import (
    ALIAS_SCHEMA,
    ALIASES_FILE,
    ATTRIBUTE_SCHEMA,
    ATTRIBUTE_STATUSES,
    ATTRIBUTES_FILE,
    AUDITED_EDGE_COLUMNS,
    BIRTH_EVENT_TYPES,
    EDGE_COLUMNS,
    EDGE_SCHEMA,
    EDGES_FILE,
    HISTORY_EVENT_TYPES,
    HISTORY_FILE,
    HISTORY_SCHEMA,
    IDENTIFIER_COLUMNS,
    IDENTIFIER_NAME_PATTERN,
    IDENTIFIERS_FILE,
    IDENTIFIERS_SCHEMA,
    IDENTITY_ATTRIBUTES,
    IDENTITY_MAP_FILE,
    IDENTITY_MAP_SCHEMA,
    MODEL_FILE,
    NORMALIZED_ATTRIBUTES,
    NORMALIZED_COLUMNS,
    PERSONAL_ATTRIBUTES,
    PROVISIONAL_CUSTOMERS_FILE,
    PROVISIONAL_CUSTOMERS_SCHEMA,
    RECORD_COLUMNS,
    RECORDS_FILE,
    STATS_FILE,
    TABLE_SCHEMAS,
    WEAK_VALUES_FILE,
    is_valid_identifier_name,
)

if TYPE_CHECKING:
    from identity._batch import Normalized
    from identity.collect import Collected, collect_records
    from identity.diagnostics import (
        MODEL_OFF,
        MODEL_REUSED,
        MODEL_SKIPPED,
        MODEL_TRAINED,
        ComparisonTraining,
        comparison_training,
        describe_model,
    )
    from identity.evaluate import PairwiseScores, evaluate_clusters, pairwise_scores
    from identity.explain import (
        CustomerExplanation,
        Evidence,
        PairExplanation,
        explain_customer,
        explain_pair,
    )
    from identity.graph import SplitEvent
    from identity.ids import PreviousState, resolve_alias
    from identity.mapping import (
        ColumnMapping,
        ColumnRef,
        MappingError,
        RecordMapping,
        collect_files,
        load_mapping,
        read_table_as_text,
    )
    from identity.model import TrainedModel, train_model
    from identity.normalize import (
        MAX_LOOKUP_LENGTH,
        LookupValueError,
        NormalizationReport,
        Normalizer,
        Status,
        lookup_value,
        normalize_records,
        normalize_with_report,
    )
    from identity.pipeline import (
        Resolution,
        read_previous_state,
        read_provisional_claims,
        read_saved_model,
        read_stats,
        resolve,
        write_resolution,
    )
    from identity.realtime import RealtimeResolver, RealtimeResult
    from identity.settings import (
        IdentitySettings,
        IdentitySettingsError,
        ModelSettings,
        load_identity_settings,
    )

#: Public name -> the module that defines it, imported on first access.
_LAZY: dict[str, str] = {
    # light: settings, normalization rules, the column-mapping model
    **dict.fromkeys(
        ("IdentitySettings", "IdentitySettingsError", "ModelSettings", "load_identity_settings"),
        "identity.settings",
    ),
    **dict.fromkeys(
        (
            "LookupValueError",
            "MAX_LOOKUP_LENGTH",
            "NormalizationReport",
            "Normalizer",
            "Status",
            "lookup_value",
            "normalize_records",
            "normalize_with_report",
        ),
        "identity.normalize",
    ),
    **dict.fromkeys(
        (
            "ColumnMapping",
            "ColumnRef",
            "MappingError",
            "RecordMapping",
            "collect_files",
            "load_mapping",
            "read_table_as_text",
        ),
        "identity.mapping",
    ),
    # heavy: pandas, Arrow, DuckDB, NetworkX, Splink
    "Normalized": "identity._batch",
    **dict.fromkeys(("Collected", "collect_records"), "identity.collect"),
    **dict.fromkeys(
        (
            "MODEL_OFF",
            "MODEL_REUSED",
            "MODEL_SKIPPED",
            "MODEL_TRAINED",
            "ComparisonTraining",
            "comparison_training",
            "describe_model",
        ),
        "identity.diagnostics",
    ),
    **dict.fromkeys(
        ("PairwiseScores", "evaluate_clusters", "pairwise_scores"), "identity.evaluate"
    ),
    **dict.fromkeys(
        (
            "CustomerExplanation",
            "Evidence",
            "PairExplanation",
            "explain_customer",
            "explain_pair",
        ),
        "identity.explain",
    ),
    "SplitEvent": "identity.graph",
    **dict.fromkeys(("PreviousState", "resolve_alias"), "identity.ids"),
    **dict.fromkeys(("TrainedModel", "train_model"), "identity.model"),
    **dict.fromkeys(
        (
            "Resolution",
            "read_previous_state",
            "read_provisional_claims",
            "read_saved_model",
            "read_stats",
            "resolve",
            "write_resolution",
        ),
        "identity.pipeline",
    ),
    **dict.fromkeys(("RealtimeResolver", "RealtimeResult"), "identity.realtime"),
}


def __getattr__(name: str) -> Any:
    """Import the module behind a public name on first use (PEP 562), then cache it here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'identity' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names (loaded or not) for ``dir(identity)`` and completion."""
    return sorted(__all__)


__all__ = [
    "ALIASES_FILE",
    "ALIAS_SCHEMA",
    "ATTRIBUTES_FILE",
    "ATTRIBUTE_SCHEMA",
    "ATTRIBUTE_STATUSES",
    "AUDITED_EDGE_COLUMNS",
    "BIRTH_EVENT_TYPES",
    "EDGES_FILE",
    "EDGE_COLUMNS",
    "EDGE_SCHEMA",
    "HISTORY_EVENT_TYPES",
    "HISTORY_FILE",
    "HISTORY_SCHEMA",
    "IDENTIFIERS_FILE",
    "IDENTIFIERS_SCHEMA",
    "IDENTIFIER_COLUMNS",
    "IDENTIFIER_NAME_PATTERN",
    "IDENTITY_ATTRIBUTES",
    "IDENTITY_MAP_FILE",
    "IDENTITY_MAP_SCHEMA",
    "MAX_LOOKUP_LENGTH",
    "MODEL_FILE",
    "MODEL_OFF",
    "MODEL_REUSED",
    "MODEL_SKIPPED",
    "MODEL_TRAINED",
    "NORMALIZED_ATTRIBUTES",
    "NORMALIZED_COLUMNS",
    "PERSONAL_ATTRIBUTES",
    "PROVISIONAL_CUSTOMERS_FILE",
    "PROVISIONAL_CUSTOMERS_SCHEMA",
    "RECORDS_FILE",
    "RECORD_COLUMNS",
    "STATS_FILE",
    "TABLE_SCHEMAS",
    "WEAK_VALUES_FILE",
    "Collected",
    "ColumnMapping",
    "ColumnRef",
    "ComparisonTraining",
    "CustomerExplanation",
    "Evidence",
    "IdentitySettings",
    "IdentitySettingsError",
    "LookupValueError",
    "MappingError",
    "ModelSettings",
    "NormalizationReport",
    "Normalized",
    "Normalizer",
    "PairExplanation",
    "PairwiseScores",
    "PreviousState",
    "RealtimeResolver",
    "RealtimeResult",
    "RecordMapping",
    "Resolution",
    "SplitEvent",
    "Status",
    "TrainedModel",
    "collect_files",
    "collect_records",
    "comparison_training",
    "describe_model",
    "evaluate_clusters",
    "explain_customer",
    "explain_pair",
    "is_valid_identifier_name",
    "load_identity_settings",
    "load_mapping",
    "lookup_value",
    "normalize_records",
    "normalize_with_report",
    "pairwise_scores",
    "read_previous_state",
    "read_provisional_claims",
    "read_saved_model",
    "read_stats",
    "read_table_as_text",
    "resolve",
    "resolve_alias",
    "train_model",
    "write_resolution",
]
