"""Consent reads: the resolved consent per customer and channel and the statements behind it.

Both tables are clustered by customer (snapshots/tables.py), so one batch of customers is one
statement per table over contiguous ranges.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from api.repositories.batch import many_per_key
from api.repositories.database import Database, Row

#: The snapshot tables these reads need (published by the consent marts).
CONSENT_TABLES: Final[tuple[str, ...]] = ("customer_consents", "customer_consent_history")


def consents_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """customer_consents rows per customer, by channel (customers without any are absent)."""
    return many_per_key(
        db,
        "select customer_id, channel, is_granted, source, changed_at from customer_consents "
        "where customer_id in ({keys}) order by customer_id, channel",
        ids,
        "customer_id",
    )


def consent_history_by_customer(db: Database, ids: Sequence[str]) -> dict[str, list[Row]]:
    """customer_consent_history rows per customer, by channel, newest statement first."""
    return many_per_key(
        db,
        "select customer_id, channel, is_granted, source, changed_at "
        "from customer_consent_history where customer_id in ({keys}) "
        "order by customer_id, channel, statement_number desc",
        ids,
        "customer_id",
    )
