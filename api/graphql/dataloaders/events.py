"""Event pages by (customer, page size, position)."""

from __future__ import annotations

from strawberry.dataloader import DataLoader

from api.repositories.customers import EventPage, event_pages
from api.repositories.database import Database, Row


def events_loader(db: Database) -> DataLoader[EventPage, list[Row]]:
    """One page of a customer's timeline per key; all keys of a tick in one statement."""

    async def load(pages: list[EventPage]) -> list[list[Row]]:
        return event_pages(db, pages)

    return DataLoader(load_fn=load)
