"""Dagster definitions, one folder per domain (ingest, identity, dbt, segments, publish)."""

from typing import Final

#: Materialization metadata key whose text ``cdp run`` prints in its summary: one line an
#: operator should see after a run that succeeded anyway (e.g. identity without its model).
RUN_NOTE_KEY: Final[str] = "cdp/run_note"
