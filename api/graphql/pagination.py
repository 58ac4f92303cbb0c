"""Cursor pagination helpers: page sizes within limits, sealed cursors that fail clearly."""

from __future__ import annotations

from api.graphql.errors import BadInputError
from api.sealing import CursorError, Sealer

#: Longest cursor accepted (a sealed cursor of a long event id is well under this).
MAX_CURSOR_LENGTH = 1_000


def page_size(first: int | None, *, default: int, maximum: int) -> int:
    """``first`` checked against the configured maximum (an oversize page is an error)."""
    if first is None:
        return min(default, maximum)
    if first < 1:
        raise BadInputError(f"`first` must be at least 1 (got {first})")
    if first > maximum:
        raise BadInputError(
            f"`first` is {first}, more than the maximum page size {maximum}; "
            "ask for smaller pages and follow `pageInfo.endCursor` with `after`",
            maximum=maximum,
        )
    return first


def encode_cursor(sealer: Sealer, kind: str, *parts: str) -> str:
    """An opaque, sealed cursor naming the list it belongs to and the position in it."""
    return sealer.seal([kind, *parts])


def decode_cursor(sealer: Sealer, cursor: str | None, kind: str, parts: int) -> list[str] | None:
    """The position inside a cursor from ``encode_cursor(kind, ...)``; None for no cursor."""
    if cursor is None:
        return None
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadInputError("`after` is not a cursor this API issued")
    try:
        value = sealer.unseal(cursor)
    except CursorError as exc:
        raise BadInputError("`after` is not a cursor this API issued") from exc
    if len(value) != parts + 1 or value[0] != kind:
        raise BadInputError("`after` is a cursor of another list; use this list's `endCursor`")
    return value[1:]
