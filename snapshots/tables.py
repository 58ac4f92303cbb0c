"""The tables of a snapshot: one list that the publisher copies and the API relies on.

Every table is a contract-enforced dbt mart of the same name (``dbt/models/marts/``), copied
as it is into SQLite. A spec says what SQLite needs beyond the rows: the primary key (the
mart's tested unique key; rows are copied in its order, so a WITHOUT ROWID table is clustered
by it), the secondary indexes the API's lookups use, and the columns the API reads (the
publisher refuses a warehouse that lacks one).

Values are stored as SQLite understands them: integers and floats as such, booleans as 0/1,
dates as ``DATE_TEXT_FORMAT`` text and timestamps as UTC ``TIMESTAMP_TEXT_FORMAT`` text of a
fixed width, so text order is time order and keyset pagination can compare them as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Logical column types recorded in the manifest.
COLUMN_TYPES: Final[tuple[str, ...]] = ("text", "integer", "float", "boolean", "date", "timestamp")
#: strftime format of timestamps (UTC, microseconds, fixed width).
TIMESTAMP_TEXT_FORMAT: Final[str] = "%Y-%m-%dT%H:%M:%S.%fZ"
#: strftime format of dates.
DATE_TEXT_FORMAT: Final[str] = "%Y-%m-%d"
#: The identifier type under which customer_identifiers lists ids retired by merges; lookups
#: of this type go through customer_aliases, not identifier_lookup.
ALIAS_IDENTIFIER_TYPE: Final[str] = "alias_customer_id"


@dataclass(frozen=True)
class TableSpec:
    """One snapshot table: its key, the indexes lookups need, the columns the API reads."""

    name: str
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()
    required: tuple[str, ...] = ()
    without_rowid: bool = False
    #: Copy order when it is not the primary key (rowid tables only): the order in which rows
    #: that tie in an API query's ORDER BY come out.
    order_by: tuple[str, ...] = ()

    @property
    def copy_order(self) -> tuple[str, ...]:
        """Columns the rows are copied (and so stored) in the order of."""
        return self.order_by or self.primary_key


TABLES: Final[tuple[TableSpec, ...]] = (
    TableSpec(
        "customers",
        ("customer_id",),
        required=(
            "customer_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "is_anonymous",
            "has_email_consent",
            "has_sms_consent",
            "has_push_consent",
            # no source = no statement recorded (decisions tell "missing" from "withdrawn")
            "has_email_consent_source",
            "has_sms_consent_source",
            "has_push_consent_source",
        ),
    ),
    TableSpec(
        # clustered by customer: a customer's identifiers are one contiguous range
        "customer_identifiers",
        ("customer_id", "identifier_type", "identifier_value", "source"),
        required=(
            "customer_id",
            "identifier_type",
            "identifier_value",
            "source",
            "first_seen_at",
            "last_seen_at",
        ),
        without_rowid=True,
    ),
    TableSpec(
        "customer_traits",
        ("customer_id",),
        required=(
            "customer_id",
            "purchase_probability",
            "churn_risk",
            "predicted_clv",
            "last_viewed_product_id",
            "last_viewed_category",
            "last_viewed_at",
        ),
    ),
    TableSpec(
        # clustered by customer and time: a page of a timeline is one contiguous range
        "customer_events",
        ("customer_id", "occurred_at", "event_id"),
        required=("event_id", "customer_id", "occurred_at", "channel", "event_type"),
        without_rowid=True,
    ),
    TableSpec(
        "customer_segments",
        ("segment", "customer_id"),
        indexes=(("customer_id", "segment"),),
        required=("customer_id", "segment", "entered_at"),
        without_rowid=True,
    ),
    TableSpec("segment_membership_history", ("membership_event_id",)),
    TableSpec(
        "segments",
        ("segment",),
        required=("segment", "description", "owner", "member_count"),
    ),
    TableSpec("product_affinity", ("affinity_type", "product_id", "related_product_id")),
    TableSpec("campaign_metrics", ("campaign_id",)),
    TableSpec(
        # an identifier value -> the customer the marts attribute its activity to
        "identifier_lookup",
        ("identifier_type", "identifier_value"),
        required=("identifier_type", "identifier_value", "customer_id", "customer_count"),
        without_rowid=True,
    ),
    TableSpec(
        # the index finds a customer's merged ids (decision caps count their sends too)
        "customer_aliases",
        ("alias_customer_id",),
        indexes=(("customer_id", "alias_customer_id"),),
        required=("alias_customer_id", "customer_id"),
        without_rowid=True,
    ),
    TableSpec(
        "identity_records",
        ("record_uid",),
        indexes=(("customer_id", "source"),),
        required=("record_uid", "customer_id", "source", "record_id"),
    ),
    TableSpec(
        # ties in the API's evidence order (acceptance, probability) come out in copy order,
        # which stays the one publishing has always used: by customer, then record
        "identity_evidence",
        ("record_uid", "other_record_uid", "rule"),
        indexes=(("customer_id", "record_uid"),),
        required=(
            "customer_id",
            "record_uid",
            "other_record_uid",
            "other_customer_id",
            "other_source",
            "other_record_id",
            "evidence_type",
            "rule",
            "identifier_type",
            "match_probability",
            "match_weight",
            "details",
            "is_accepted",
            "rejected_reason",
        ),
        order_by=("customer_id", "record_uid"),
    ),
    TableSpec(
        "products",
        ("product_id",),
        required=("product_id", "product_name", "category", "brand", "price"),
    ),
    TableSpec(
        # clustered by customer: a customer's list is one contiguous range, in rank order
        "customer_recommendations",
        ("customer_id", "rank"),
        required=("customer_id", "rank", "product_id", "score", "strategy"),
        without_rowid=True,
    ),
    TableSpec(
        "similar_products",
        ("product_id", "rank"),
        required=("product_id", "rank", "similar_product_id", "score"),
        without_rowid=True,
    ),
    TableSpec(
        "customer_id_history",
        ("event_number",),
        indexes=(("customer_id", "occurred_at"), ("related_customer_id", "occurred_at")),
        required=(
            "occurred_at",
            "run_id",
            "event_type",
            "customer_id",
            "related_customer_id",
            "cause",
        ),
    ),
    # What the decision service reads (decisions.facts): the sales running now and, clustered
    # by customer so one customer's rows are one contiguous range, their category interest,
    # brands bought and assignment id.
    TableSpec(
        "sales",
        ("sale_id",),
        required=(
            "sale_id",
            "title",
            "theme",
            "category",
            "brand",
            "discount_percent",
            "starts_at",
            "ends_at",
            "item_count",
        ),
    ),
    TableSpec(
        "sale_items",
        ("sale_id", "product_id"),
        required=(
            "sale_id",
            "product_id",
            "product_name",
            "category",
            "brand",
            "regular_price",
            "sale_price",
        ),
        without_rowid=True,
    ),
    TableSpec(
        "customer_category_activity",
        ("customer_id", "category"),
        required=(
            "customer_id",
            "category",
            "interaction_score",
            "interaction_share",
            "last_purchased_at",
            "last_viewed_at",
        ),
        without_rowid=True,
    ),
    TableSpec(
        "customer_brands_bought",
        ("customer_id", "brand"),
        required=("customer_id", "brand", "last_bought_at", "order_count"),
        without_rowid=True,
    ),
    TableSpec(
        "customer_assignment",
        ("customer_id",),
        required=("customer_id", "assignment_id"),
        without_rowid=True,
    ),
    # Consent (dbt/models/marts/consent/): the resolved state per customer and channel that
    # decisions read and the API serves, and the statements it was resolved from, both
    # clustered by customer (one customer's consents, or their history, are one range).
    TableSpec(
        "customer_consents",
        ("customer_id", "channel"),
        required=("customer_id", "channel", "is_granted", "source", "changed_at"),
        without_rowid=True,
    ),
    TableSpec(
        "customer_consent_history",
        ("customer_id", "channel", "statement_number"),
        required=(
            "customer_id",
            "channel",
            "statement_number",
            "is_granted",
            "source",
            "changed_at",
        ),
        without_rowid=True,
    ),
)

#: Names of the snapshot tables (each a dbt mart of the same name).
TABLE_NAMES: Final[tuple[str, ...]] = tuple(spec.name for spec in TABLES)

_BY_NAME: Final[dict[str, TableSpec]] = {spec.name: spec for spec in TABLES}


def table_spec(name: str) -> TableSpec:
    """The spec of one snapshot table (KeyError naming the known tables otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(TABLE_NAMES)
        raise KeyError(f"'{name}' is not a snapshot table (known: {known})") from None
