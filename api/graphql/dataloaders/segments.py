"""Segment memberships by customer id."""

from __future__ import annotations

from strawberry.dataloader import DataLoader

from api.repositories.customers import segments_by_customer
from api.repositories.database import Row, SnapshotDatabase


def customer_segments_loader(db: SnapshotDatabase) -> DataLoader[str, list[Row]]:
    """Current memberships (segment, entered_at) of each customer."""

    async def load(ids: list[str]) -> list[list[Row]]:
        found = segments_by_customer(db, ids)
        return [found.get(i, []) for i in ids]

    return DataLoader(load_fn=load)
