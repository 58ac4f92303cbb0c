"""Identity's vocabulary: the names it shares with cdp.yml, the lake, dbt, publish and the API.

One home for what other layers must spell exactly as identity does: the canonical attributes
and which of them are personal data, the rule for named identifiers, the columns (and types) of
the frames identity reads and of the tables it writes, and the file names of those tables. A
second copy of any of these drifts; import it from here (``from identity import ...``) instead.

Standard library only, so validating cdp.yml or starting an API worker costs nothing here.
Column types are DuckDB's names, the types dbt and publish read the Parquet with;
:func:`pandas_dtypes` gives the pandas dtypes identity writes them from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

# --- attributes and identifiers -------------------------------------------------------------

#: Person attributes the matcher compares: the canonical field names of cdp.yml mappings, the
#: lake, dbt's golden record and the API. Values are free text until normalized.
IDENTITY_ATTRIBUTES: Final[tuple[str, ...]] = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "full_name",
    "birth_date",
    "street_address",
    "postal_code",
    "city",
    "region",
    "country",
)

#: Attributes that are personal data on their own (masked by the API without ``pii:read``).
#: Region and country are not: millions share them. In the lake every identity attribute is
#: still treated as private, because a record's attributes together identify its person.
PERSONAL_ATTRIBUTES: Final[tuple[str, ...]] = tuple(
    a for a in IDENTITY_ATTRIBUTES if a not in {"region", "country"}
)

#: A named identifier (``account_id``, ``loyalty_id``, ``cookie_id``, a national id, ...).
IDENTIFIER_NAME_PATTERN: Final[re.Pattern[str]] = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def is_valid_identifier_name(name: str) -> bool:
    """An identifier name must be a snake_case word that is not an attribute."""
    return bool(IDENTIFIER_NAME_PATTERN.match(name)) and name not in IDENTITY_ATTRIBUTES


# --- frames identity reads ------------------------------------------------------------------

#: Raw identity records (``collect_records``, ``collect_files``): one row per source record.
RECORD_COLUMNS: Final[tuple[str, ...]] = (
    "record_uid",
    "source",
    "record_id",
    "source_kind",
    *IDENTITY_ATTRIBUTES,
    "observed_at",
)
#: Named identifiers of those records, long form (one row per record, type and value).
IDENTIFIER_COLUMNS: Final[tuple[str, ...]] = (
    "record_uid",
    "identifier_type",
    "identifier_value",
    "first_seen_at",
    "last_seen_at",
)

# --- tables identity writes -----------------------------------------------------------------

IDENTITY_MAP_FILE: Final[str] = "identity_map.parquet"
IDENTIFIERS_FILE: Final[str] = "identity_identifiers.parquet"
EDGES_FILE: Final[str] = "identity_edges.parquet"
HISTORY_FILE: Final[str] = "customer_id_history.parquet"
ALIASES_FILE: Final[str] = "customer_aliases.parquet"
ATTRIBUTES_FILE: Final[str] = "identity_attributes.parquet"
RECORDS_FILE: Final[str] = "identity_records.parquet"
WEAK_VALUES_FILE: Final[str] = "identity_weak_values.parquet"
MODEL_FILE: Final[str] = "identity_model.json"
STATS_FILE: Final[str] = "identity_stats.json"

Schema = Mapping[str, str]


def _schema(*columns: tuple[str, str]) -> Schema:
    return MappingProxyType(dict(columns))


#: identity_map: one row per resolved record and its customer.
IDENTITY_MAP_SCHEMA: Final[Schema] = _schema(
    ("record_uid", "varchar"),
    ("source", "varchar"),
    ("record_id", "varchar"),
    ("customer_id", "varchar"),
    ("cluster_size", "bigint"),
    ("resolved_at", "timestamptz"),
)

#: identity_identifiers: every usable identifier of every record, with its customer;
#: ``is_shared`` marks values several customers hold (joins needing one owner skip them).
IDENTIFIERS_SCHEMA: Final[Schema] = _schema(
    ("record_uid", "varchar"),
    ("customer_id", "varchar"),
    ("identifier_type", "varchar"),
    ("identifier_value", "varchar"),
    ("source", "varchar"),
    ("first_seen_at", "timestamptz"),
    ("last_seen_at", "timestamptz"),
    ("is_shared", "boolean"),
)

#: identity_edges: every link considered. The first eight columns are one piece of evidence
#: (a rule or the model); ``is_accepted``/``rejected_reason`` say whether a guard refused it.
EDGE_SCHEMA: Final[Schema] = _schema(
    ("record_uid_l", "varchar"),
    ("record_uid_r", "varchar"),
    ("evidence_type", "varchar"),
    ("rule", "varchar"),
    ("identifier_type", "varchar"),
    ("match_probability", "double"),
    ("match_weight", "double"),
    ("details", "varchar"),
    ("is_accepted", "boolean"),
    ("rejected_reason", "varchar"),
    ("run_id", "varchar"),
)
#: The evidence of one link, as rules and the model produce it.
EDGE_COLUMNS: Final[tuple[str, ...]] = tuple(EDGE_SCHEMA)[:8]
#: Evidence plus the guards' verdict (the graph's input).
AUDITED_EDGE_COLUMNS: Final[tuple[str, ...]] = (*EDGE_COLUMNS, "is_accepted", "rejected_reason")

#: customer_id_history's event types. ``provisional``: a cluster kept the id the real-time path
#: gave an unknown person (instead of ``created``/``split``); ``provisional_merged``: a real-time
#: provisional id became an alias of a customer that already had an id (apart from ``merged``,
#: which counts batch ids joining, the churn an operator watches).
HISTORY_EVENT_TYPES: Final[tuple[str, ...]] = (
    "created",
    "split",
    "provisional",
    "merged",
    "provisional_merged",
    "retired",
)
#: Events that issue an id: its creation time ranks it on a merge (the oldest id stays).
BIRTH_EVENT_TYPES: Final[tuple[str, ...]] = ("created", "split", "provisional")

#: customer_id_history: one row per event of :data:`HISTORY_EVENT_TYPES`.
HISTORY_SCHEMA: Final[Schema] = _schema(
    ("occurred_at", "timestamptz"),
    ("run_id", "varchar"),
    ("event_type", "varchar"),
    ("customer_id", "varchar"),
    ("related_customer_id", "varchar"),
    ("cause", "varchar"),
)

#: customer_aliases: ids retired by merges and the customer each now points to.
ALIAS_SCHEMA: Final[Schema] = _schema(
    ("alias_customer_id", "varchar"),
    ("customer_id", "varchar"),
    ("created_at", "timestamptz"),
    ("cause", "varchar"),
)

#: Provisional customers of the real-time path (``lake/_realtime/``, written by the event log's
#: fold from the stream processor's ``live_identities``): the identifiers (normalized) each
#: provisional id was given for. The next identity run keeps those ids where it can.
PROVISIONAL_CUSTOMERS_FILE: Final[str] = "provisional_customers.parquet"
PROVISIONAL_CUSTOMERS_SCHEMA: Final[Schema] = _schema(
    ("identifier_type", "varchar"),
    ("identifier_value", "varchar"),
    ("customer_id", "varchar"),
    ("linked_at", "timestamptz"),
)

#: ``<attribute>_status`` values in identity_attributes (null: the record has no value).
ATTRIBUTE_STATUSES: Final[tuple[str, ...]] = ("ok", "corrected", "invalid", "junk")
#: Attributes identity_attributes gives in identity's normalized form (E.164 phone, validated
#: lowercased email, ISO birth date, ISO 3166 alpha-2 country); the others keep the text as
#: written (trimmed, inner spaces collapsed), which is what a golden record should show.
NORMALIZED_ATTRIBUTES: Final[tuple[str, ...]] = ("email", "phone", "birth_date", "country")

#: identity_attributes: per people record, each attribute ready for the golden record (null
#: when missing, invalid or junk) and its ``<attribute>_status``.
ATTRIBUTE_SCHEMA: Final[Schema] = _schema(
    ("record_uid", "varchar"),
    ("source", "varchar"),
    ("record_id", "varchar"),
    *((column, "varchar") for a in IDENTITY_ATTRIBUTES for column in (a, f"{a}_status")),
)

#: The normalized record frame (identity_records): what the matcher compares, casefolded.
NORMALIZED_COLUMNS: Final[tuple[str, ...]] = (
    "record_uid",
    "source",
    "record_id",
    "email",
    "email_user",
    "email_domain",
    "phone",
    "first_name",
    "first_name_canonical",
    "last_name",
    "birth_date",
    "street_address",
    "postal_code",
    "city",
    "region",
    "country",
    "observed_at",
)

#: The tables other layers read (dbt staging, publish), by file name.
TABLE_SCHEMAS: Final[Mapping[str, Schema]] = MappingProxyType(
    {
        IDENTITY_MAP_FILE: IDENTITY_MAP_SCHEMA,
        IDENTIFIERS_FILE: IDENTIFIERS_SCHEMA,
        EDGES_FILE: EDGE_SCHEMA,
        HISTORY_FILE: HISTORY_SCHEMA,
        ALIASES_FILE: ALIAS_SCHEMA,
        ATTRIBUTES_FILE: ATTRIBUTE_SCHEMA,
    }
)

_PANDAS_DTYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "varchar": "str",
        "double": "float64",
        "boolean": "bool",
        "bigint": "int64",
        "timestamptz": "datetime64[us, UTC]",
    }
)


def pandas_dtypes(schema: Schema, columns: Iterable[str] | None = None) -> dict[str, str]:
    """The pandas dtype of each column (all of ``schema``, or ``columns`` in that order)."""
    names = schema if columns is None else columns
    return {name: _PANDAS_DTYPES[schema[name]] for name in names}
