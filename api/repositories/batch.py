"""Batch-shaped reads: one statement per batch of keys, chunked only past SQLite's limits.

Every repository function takes a batch of keys; these helpers hold the one loop they share,
so a DataLoader's tick is one statement whatever the page size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from api.repositories.database import Database, Row

#: Keys per statement (SQLite allows 32766 variables and 500 compound selects).
CHUNK: Final[int] = 400
#: Where a statement template takes the chunk's placeholders (``in ({keys})``).
KEYS: Final[str] = "{keys}"

PageKey = TypeVar("PageKey")


def chunks(keys: Sequence[str]) -> list[list[str]]:
    """The distinct keys, in order, in chunks of at most CHUNK."""
    unique = list(dict.fromkeys(keys))
    return [unique[i : i + CHUNK] for i in range(0, len(unique), CHUNK)]


def _statements(sql: str, keys: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(statement, parameters) per chunk; every ``{keys}`` in ``sql`` takes the chunk."""
    repeats = sql.count(KEYS)
    if repeats == 0:
        raise ValueError("the statement template has no {keys} placeholder")
    return [
        (sql.replace(KEYS, ", ".join("?" * len(chunk))), chunk * repeats) for chunk in chunks(keys)
    ]


def one_per_key(db: Database, sql: str, keys: Sequence[str], key: str) -> dict[str, Row]:
    """Rows of ``sql`` by their ``key`` column (keys without a row are absent)."""
    found: dict[str, Row] = {}
    for statement, params in _statements(sql, keys):
        found.update((row[key], row) for row in db.dicts(statement, params))
    return found


def many_per_key(db: Database, sql: str, keys: Sequence[str], key: str) -> dict[str, list[Row]]:
    """Rows of ``sql`` grouped by their ``key`` column, in the statement's order."""
    found: dict[str, list[Row]] = defaultdict(list)
    for statement, params in _statements(sql, keys):
        for row in db.dicts(statement, params):
            found[row[key]].append(row)
    return found


def rows_per_page(
    db: Database,
    pages: Sequence[PageKey],
    select: Callable[[PageKey], tuple[str, list[object]]],
) -> list[list[Row]]:
    """The rows of each page, in the order of ``pages``, one statement per CHUNK pages.

    ``select(page)`` gives one page's statement and parameters; the pages are tagged and
    unioned, so a tick of a paging DataLoader is one statement.
    """
    results: list[list[Row]] = [[] for _ in pages]
    for start in range(0, len(pages), CHUNK):
        parts = []
        params: list[object] = []
        for offset, page in enumerate(pages[start : start + CHUNK]):
            sql, page_params = select(page)
            parts.append(f"select {start + offset} as _page, * from ({sql})")
            params += page_params
        for row in db.dicts(" union all ".join(parts), params):
            results[row.pop("_page")].append(row)
    return results
