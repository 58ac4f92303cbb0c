"""Timestamps and dates travel as ISO 8601 text; the snapshot already stores them that way."""

from __future__ import annotations

from typing import NewType

import strawberry

DateTime = strawberry.scalar(
    NewType("DateTime", str),
    name="DateTime",
    description="An instant in UTC, ISO 8601 (e.g. 2025-06-30T12:00:00.000000Z).",
    serialize=str,
    parse_value=str,
)

Date = strawberry.scalar(
    NewType("Date", str),
    name="Date",
    description="A calendar date, ISO 8601 (e.g. 2025-06-30).",
    serialize=str,
    parse_value=str,
)
