"""The customer models' inputs, read from the warehouse: labelled examples and current rows.

Both are the one feature definition (dbt ``macros/customer_features.sql``) evaluated at a cutoff:
``int_training_examples_labelled`` at past cutoffs with labels, ``int_customer_features_computed``
at the as-of date. Nothing here computes a feature; it only turns columns into model inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

#: Feature columns the models read, all numeric. Built from placed orders and gross amounts
#: only: an order's status is its latest version, so status-based columns (returns, kept
#: orders) could carry a later return back to a past cutoff (see the macro's caveat).
FEATURE_COLUMNS: tuple[str, ...] = (
    "recency_days",
    "tenure_days",
    "order_count",
    "order_count_30d",
    "order_count_90d",
    "order_count_365d",
    "gross_revenue",
    "gross_revenue_365d",
    "average_gross_order_value",
    "orders_per_year",
    "days_since_last_visit",
    "web_active_days_30d",
    "web_active_days_90d",
    "product_view_count_30d",
    "add_to_cart_count_30d",
    "email_sends_30d",
    "email_sends_90d",
    "open_rate_90d",
    "click_rate_90d",
    "days_since_last_email_engagement",
    "favourite_category_share",
    "category_count",
    "brand_count",
)

LABEL_COLUMNS: tuple[str, ...] = (
    "purchase_label",
    "churn_label",
    "clv_order_count_label",
    "clv_revenue_label",
)

EXAMPLES_MODEL = "int_training_examples_labelled"
CURRENT_MODEL = "int_customer_features_computed"


class ModelInputError(RuntimeError):
    """The warehouse lacks what the models read (dbt has not built it yet)."""


@dataclass(frozen=True)
class ModelInputs:
    """Labelled examples at past cutoffs and the current (as-of) rows to score."""

    examples: pd.DataFrame  # customer_id, cutoff_date, features, labels
    current: pd.DataFrame  # customer_id, cutoff_date, features


def model_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The feature matrix (float, NaN where the macro says null) in FEATURE_COLUMNS order."""
    out = pd.DataFrame(index=frame.index)
    for column in FEATURE_COLUMNS:
        out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return out.replace([np.inf, -np.inf], np.nan)


def read_model_inputs(warehouse: Path) -> ModelInputs:
    """Both tables, read-only and in full (each result fetched before the next statement)."""
    if not warehouse.exists():
        raise ModelInputError(f"no warehouse at {warehouse}: materialize the dbt models first")
    examples_columns = ", ".join(["customer_id", "cutoff_date", *FEATURE_COLUMNS, *LABEL_COLUMNS])
    current_columns = ", ".join(["customer_id", "cutoff_date", *FEATURE_COLUMNS])
    try:
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            examples = connection.sql(
                f"select {examples_columns} from {EXAMPLES_MODEL} order by cutoff_date, customer_id"
            ).df()
            current = connection.sql(
                f"select {current_columns} from {CURRENT_MODEL} order by customer_id"
            ).df()
    except duckdb.CatalogException as exc:
        raise ModelInputError(
            f"{warehouse}: {exc}; build the dbt models first (cdp run, or materialize dbt_models)"
        ) from exc
    for frame in (examples, current):
        frame["cutoff_date"] = pd.to_datetime(frame["cutoff_date"]).dt.date
    return ModelInputs(examples=examples, current=current)
