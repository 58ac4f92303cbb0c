"""The one exception a user can cause during ingest."""

from __future__ import annotations


class IngestError(Exception):
    """A problem the user must fix (config, landing files); the message says what to do."""
