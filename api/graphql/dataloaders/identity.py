"""Identity explanations by customer id: records, evidence and id history."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from strawberry.dataloader import DataLoader

from api.repositories.database import Database, Row
from api.repositories.identity import (
    evidence_by_customer,
    history_by_customer,
    records_by_customer,
)

_Fetch = Callable[[Database, Sequence[str]], dict[str, list[Row]]]


def _grouped_loader(db: Database, fetch: _Fetch) -> DataLoader[str, list[Row]]:
    async def load(ids: list[str]) -> list[list[Row]]:
        found = fetch(db, ids)
        return [found.get(i, []) for i in ids]

    return DataLoader(load_fn=load)


def records_loader(db: Database) -> DataLoader[str, list[Row]]:
    """Each customer's source records."""
    return _grouped_loader(db, records_by_customer)


def evidence_loader(db: Database) -> DataLoader[str, list[Row]]:
    """Each customer's evidence rows (one per link and direction)."""
    return _grouped_loader(db, evidence_by_customer)


def history_loader(db: Database) -> DataLoader[str, list[Row]]:
    """Merges and splits per customer id (current or retired)."""
    return _grouped_loader(db, history_by_customer)
