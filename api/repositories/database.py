"""A read-only connection to one snapshot's SQLite file, counting the queries it runs.

Snapshots are immutable once published, so the file is opened with ``immutable=1``: SQLite then
takes no locks and never checks for changes, which is both correct and the fastest read path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Row = dict[str, Any]


class SnapshotDatabase:
    """Query helpers over one snapshot database; ``query_count`` counts every statement."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        uri = self.path.resolve().as_uri() + "?mode=ro&immutable=1"
        # One process-wide connection per snapshot, used from the event loop thread; opening
        # happens in a worker thread, hence check_same_thread=False.
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, cached_statements=512)
        self._conn.execute("pragma query_only = on")
        self._conn.execute("pragma mmap_size = 1073741824")
        self._conn.execute("pragma cache_size = -65536")
        self.query_count = 0
        self._closed = False

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of one statement as tuples."""
        self.query_count += 1
        return self._conn.execute(sql, params).fetchall()

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of one statement as dicts keyed by column name."""
        self.query_count += 1
        cursor = self._conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of one statement as a dict, or None."""
        self.query_count += 1
        cursor = self._conn.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cursor.description], row, strict=True))

    def has_table(self, name: str) -> bool:
        """Whether the snapshot holds a table called ``name``."""
        found = self._conn.execute(
            "select 1 from sqlite_master where type = 'table' and name = ?", (name,)
        ).fetchone()
        return found is not None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self._closed:
            self._closed = True
            self._conn.close()
