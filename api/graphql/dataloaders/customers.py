"""Golden records by customer id."""

from __future__ import annotations

from strawberry.dataloader import DataLoader

from api.repositories.customers import customers_by_id
from api.repositories.database import Database, Row


def customer_loader(db: Database) -> DataLoader[str, Row | None]:
    """Customer rows by id (None for an unknown id)."""

    async def load(ids: list[str]) -> list[Row | None]:
        found = customers_by_id(db, ids)
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)
