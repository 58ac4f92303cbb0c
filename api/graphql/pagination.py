"""Cursor pagination helpers: page sizes within limits, opaque cursors that fail clearly."""

from __future__ import annotations

import base64
import binascii

import orjson

from api.graphql.errors import BadInputError


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


def encode_cursor(kind: str, *parts: str) -> str:
    """An opaque cursor naming the list it belongs to and the position in it."""
    return base64.urlsafe_b64encode(orjson.dumps([kind, *parts])).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None, kind: str, parts: int) -> list[str] | None:
    """The position inside a cursor from ``encode_cursor(kind, ...)``; None for no cursor."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise BadInputError(f"`after` is not a cursor this API issued: '{cursor[:60]}'") from exc
    if (
        not isinstance(value, list)
        or len(value) != parts + 1
        or value[0] != kind
        or not all(isinstance(v, str) for v in value)
    ):
        raise BadInputError(
            f"`after` is a cursor of another list; use the `endCursor` of this {kind} list"
        )
    return value[1:]
