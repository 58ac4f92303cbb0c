"""Erasure in the platform's batch stores (``privacy.stores.Eraser`` implementations).

``lake.LakeEraser`` erases a person from the landing files, lake parts, quarantine and
identity's outputs; ``lake.person_columns`` says which columns of a source name a person (ingest
drops an erased person's records by the same columns).
"""

from __future__ import annotations

from dagster_project.lib.erasure.lake import (
    LakeEraser,
    person_columns,
)

__all__ = ["LakeEraser", "person_columns"]
