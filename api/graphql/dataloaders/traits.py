"""Trait rows by customer id."""

from __future__ import annotations

from strawberry.dataloader import DataLoader

from api.repositories.customers import traits_by_customer
from api.repositories.database import Database, Row


def traits_loader(db: Database) -> DataLoader[str, Row | None]:
    """customer_traits rows by customer id (None when the customer has none)."""

    async def load(ids: list[str]) -> list[Row | None]:
        found = traits_by_customer(db, ids)
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)
