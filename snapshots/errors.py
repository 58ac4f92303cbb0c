"""The one error a snapshot reader or writer raises for a bad snapshot on disk."""

from __future__ import annotations


class SnapshotError(RuntimeError):
    """A snapshot is missing, unreadable or of an unknown format; the message says which."""
