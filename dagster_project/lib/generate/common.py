"""Shared pieces of the generator: the time window, random streams and Arrow string helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DAY = 86_400
HOUR = 3_600


class Stream(IntEnum):
    """Independent random streams, so changing one part of the world leaves the others alone."""

    CATALOG = 1
    PERSONS = 2
    IDENTITY = 3
    CRM = 4
    SHOP = 5
    EMAIL = 6
    SESSIONS = 7
    WEB = 8
    ORDERS = 9
    TRAITS = 10
    SALES = 11
    MAILING = 12
    SHOPPING = 13
    APP = 14
    VISITS = 15
    SENDS = 16


def stream(seed: int, which: Stream) -> np.random.Generator:
    """A generator for one part of the world, derived from the user's seed."""
    return np.random.default_rng([seed, int(which)])


@dataclass(frozen=True)
class Window:
    """The simulated period in epoch seconds: events fall in ``[start, end)``.

    ``end`` is midnight UTC at the start of the end date, so nothing is dated after it under
    any reading of "up to DATE".
    """

    start: int
    end: int

    @classmethod
    def ending(cls, end: date, days: int) -> Window:
        """The ``days`` days before ``end``."""
        end_dt = datetime(end.year, end.month, end.day, tzinfo=UTC)
        start_dt = end_dt - timedelta(days=days)
        return cls(int(start_dt.timestamp()), int(end_dt.timestamp()))

    @property
    def seconds(self) -> int:
        """Length of the window."""
        return self.end - self.start

    def months(self) -> list[tuple[int, int, str]]:
        """Calendar months overlapping the window as (start, end, 'YYYY-MM'), clipped to it."""
        out: list[tuple[int, int, str]] = []
        cursor = datetime.fromtimestamp(self.start, tz=UTC)
        end_dt = datetime.fromtimestamp(self.end, tz=UTC)
        while cursor < end_dt:
            if cursor.month == 12:
                nxt = datetime(cursor.year + 1, 1, 1, tzinfo=UTC)
            else:
                nxt = datetime(cursor.year, cursor.month + 1, 1, tzinfo=UTC)
            stop = min(nxt, end_dt)
            out.append((int(cursor.timestamp()), int(stop.timestamp()), f"{cursor:%Y-%m}"))
            cursor = nxt
        return out


def strings(values: list[str] | tuple[str, ...]) -> pa.Array:
    """A vocabulary as an Arrow string array."""
    return pa.array(list(values), type=pa.string())


def take(vocab: pa.Array, index: np.ndarray) -> pa.Array:
    """Vocabulary entries by index; a negative index gives null."""
    index = np.asarray(index)
    return pc.take(vocab, pa.array(index.astype(np.int64), mask=index < 0))


def dictionary(vocab: pa.Array, index: np.ndarray) -> pa.DictionaryArray:
    """Like :func:`take` but dictionary-encoded, cheap for long repeated strings."""
    index = np.asarray(index)
    return pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32), mask=index < 0), vocab)


def join(*parts: pa.Array | str, sep: str = "") -> pa.Array:
    """Element-wise concatenation of string arrays (and scalars); null if any part is null."""
    return pc.binary_join_element_wise(*parts, sep)


def padded(values: np.ndarray, width: int, prefix: str = "") -> pa.Array:
    """Integers as zero-padded decimal strings, e.g. ``C0001234``."""
    text = pc.utf8_lpad(
        pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string()), width, "0"
    )
    return join(prefix, text) if prefix else text


def where(mask: np.ndarray, left: pa.Array, right: pa.Array | str | None) -> pa.Array:
    """``left`` where mask, else ``right`` (a string, null, or an array)."""
    if right is None or isinstance(right, str):
        right = pa.scalar(right, type=pa.string())
    return pc.if_else(pa.array(np.asarray(mask, dtype=bool)), left, right)


def iso_date(days_since_epoch: np.ndarray) -> pa.Array:
    """Epoch days as ISO dates (``1985-03-14``)."""
    return pc.cast(
        pa.array(np.asarray(days_since_epoch, dtype=np.int32), type=pa.date32()), pa.string()
    )


def group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Boolean mask of the first row of each run of equal keys in a sorted array."""
    first = np.ones(len(sorted_keys), dtype=bool)
    if len(sorted_keys) > 1:
        first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return first


def rank_in_group(sorted_keys: np.ndarray) -> np.ndarray:
    """0-based position of each row within its run of equal keys."""
    n = len(sorted_keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    first = group_starts(sorted_keys)
    start_pos = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    return np.arange(n) - start_pos


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    """Normalised weights ``rank ** -exponent`` for a ranked vocabulary."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return w / w.sum()
