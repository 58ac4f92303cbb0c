"""Which published snapshot answered a request."""

from __future__ import annotations

import strawberry

from api.graphql.types.scalars import Date, DateTime
from api.snapshot import Snapshot


@strawberry.type(description="A table of the snapshot and its row count.")
class SnapshotTable:
    name: str
    row_count: int


@strawberry.type(description="The read-only snapshot the API serves (published by the pipeline).")
class SnapshotInfo:
    snapshot_id: str
    created_at: DateTime
    as_of: Date | None
    age_seconds: float
    size_bytes: int
    tables: list[SnapshotTable]

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> SnapshotInfo:
        """Build from an opened snapshot's manifest."""
        manifest = snapshot.manifest
        return cls(
            snapshot_id=manifest.snapshot_id,
            created_at=manifest.created_at.isoformat().replace("+00:00", "Z"),
            as_of=manifest.as_of.isoformat() if manifest.as_of else None,
            age_seconds=round(snapshot.age_seconds(), 3),
            size_bytes=manifest.size_bytes,
            tables=[SnapshotTable(name=n, row_count=c) for n, c in sorted(manifest.tables.items())],
        )
