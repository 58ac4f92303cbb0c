"""A read-only connection to one snapshot's SQLite file, counting the queries it runs.

Snapshots are immutable once published, so the file is opened with ``immutable=1``: SQLite then
takes no locks and never checks for changes, which is both correct and the fastest read path.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

Row = dict[str, Any]
T = TypeVar("T")

#: SQLite virtual-machine steps between deadline checks (a point lookup never reaches one).
_PROGRESS_STEPS: Final[int] = 20_000


class OperationTimeout(Exception):
    """A statement was stopped (or not started) because its request ran out of time."""


class Database(Protocol):
    """What the repositories read through: a snapshot, or one request's view of it."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of one statement as tuples."""
        ...

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of one statement as dicts keyed by column name."""
        ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of one statement as a dict, or None."""
        ...


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
        # A long statement is interrupted once the deadline of the request running it passes.
        self.deadline: float | None = None
        self._conn.set_progress_handler(self._past_deadline, _PROGRESS_STEPS)
        self.query_count = 0
        self._closed = False

    def _past_deadline(self) -> int:
        deadline = self.deadline
        return 1 if deadline is not None and time.monotonic() > deadline else 0

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

    @property
    def connection(self) -> sqlite3.Connection:
        """The read-only connection, for libraries that read a snapshot themselves
        (``decisions.facts``); read-only by ``query_only`` and the ``immutable`` open."""
        return self._conn

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


class RequestDatabase:
    """One request's view of a snapshot: statements stop at the request's deadline.

    The snapshot's connection is shared by every request of the process (statements run one
    at a time on the event loop), so the deadline is set around each statement.
    """

    __slots__ = ("_db", "_deadline")

    def __init__(self, db: SnapshotDatabase, deadline: float) -> None:
        self._db = db
        self._deadline = deadline

    def _run(self, method: Any, sql: str, params: Sequence[Any]) -> Any:
        if time.monotonic() > self._deadline:
            raise OperationTimeout
        db = self._db
        db.deadline = self._deadline
        try:
            return method(sql, params)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise OperationTimeout from exc
            raise
        finally:
            db.deadline = None

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of one statement as tuples."""
        return self._run(self._db.rows, sql, params)  # type: ignore[no-any-return]

    def with_connection(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """``read(connection)`` under the request's deadline (a library's own queries)."""
        return self._run(lambda _sql, _params: read(self._db.connection), "", ())  # type: ignore[no-any-return]

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of one statement as dicts keyed by column name."""
        return self._run(self._db.dicts, sql, params)  # type: ignore[no-any-return]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of one statement as a dict, or None."""
        return self._run(self._db.one, sql, params)  # type: ignore[no-any-return]
