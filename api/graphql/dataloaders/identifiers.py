"""Identifier rows by customer id."""

from __future__ import annotations

from strawberry.dataloader import DataLoader

from api.repositories.customers import identifiers_by_customer
from api.repositories.database import Database, Row


def identifiers_loader(db: Database) -> DataLoader[str, list[Row]]:
    """Every identifier of each customer."""

    async def load(ids: list[str]) -> list[list[Row]]:
        found = identifiers_by_customer(db, ids)
        return [found.get(i, []) for i in ids]

    return DataLoader(load_fn=load)
