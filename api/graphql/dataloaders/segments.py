"""Segment memberships by customer id, and pages of segment members."""

from __future__ import annotations

from strawberry.dataloader import DataLoader

from api.repositories.customers import segments_by_customer
from api.repositories.database import Database, Row
from api.repositories.segments import MemberPage, member_pages


def customer_segments_loader(db: Database) -> DataLoader[str, list[Row]]:
    """Current memberships (segment, entered_at) of each customer."""

    async def load(ids: list[str]) -> list[list[Row]]:
        found = segments_by_customer(db, ids)
        return [found.get(i, []) for i in ids]

    return DataLoader(load_fn=load)


def members_loader(db: Database) -> DataLoader[MemberPage, list[Row]]:
    """Pages of segment members; every page asked for in one tick in one statement."""

    async def load(pages: list[MemberPage]) -> list[list[Row]]:
        return member_pages(db, pages)

    return DataLoader(load_fn=load)
