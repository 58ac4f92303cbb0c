"""Per-request DataLoaders: each nested field batches its keys into one snapshot query.

Two shapes cover every loader: rows looked up by key (a customer, its identifiers) and pages
(events, segment members); the repository function says what to read, these say how to batch.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

from strawberry.dataloader import DataLoader

from api.repositories.database import Database

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


def by_key(
    db: Database,
    fetch: Callable[[Database, Sequence[Key]], Mapping[Key, Value]],
    missing: Callable[[], Value],
) -> DataLoader[Key, Value]:
    """A loader over ``fetch(db, keys) -> {key: value}``; absent keys get ``missing()``."""

    async def load(keys: list[Key]) -> list[Value]:
        found = fetch(db, keys)
        return [found[key] if key in found else missing() for key in keys]

    return DataLoader(load_fn=load)


def by_page(
    db: Database, fetch: Callable[[Database, Sequence[Key]], list[Value]]
) -> DataLoader[Key, Value]:
    """A loader over ``fetch(db, pages) -> [rows of each page]`` (same order as the pages)."""

    async def load(pages: list[Key]) -> list[Value]:
        return fetch(db, pages)

    return DataLoader(load_fn=load)
