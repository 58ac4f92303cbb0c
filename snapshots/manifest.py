"""The manifest: what a snapshot holds, written last by the publisher and read first by the API.

Identity normalization settings are kept as plain data (the subset named by
``NORMALIZATION_SETTINGS``): the API builds identity's ``Normalizer`` from them, so a lookup
value is normalized exactly as identity normalized the values the snapshot was built from,
without this format depending on the identity library.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from snapshots.errors import SnapshotError
from snapshots.layout import DATABASE_FILE, MANIFEST_FILE

#: Bumped when a reader of the previous version could misread a snapshot of the new one.
FORMAT_VERSION: Final[int] = 1
#: Identity settings that decide how a lookup value is normalized (copied into the manifest).
NORMALIZATION_SETTINGS: Final[tuple[str, ...]] = (
    "phone_default_region",
    "blocklist",
    "use_default_blocklist",
)


class SnapshotManifest(BaseModel):
    """What a snapshot holds; written last by the publisher, read first by the API."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format_version: int
    snapshot_id: str
    created_at: datetime
    as_of: date | None = None
    warehouse: str
    database: str = DATABASE_FILE
    #: Rows per table, as counted in the warehouse at publish time.
    tables: dict[str, int]
    #: Column -> logical type (see ``snapshots.tables.COLUMN_TYPES``) per table.
    columns: dict[str, dict[str, str]]
    identifier_types: list[str]
    size_bytes: int
    build_seconds: float
    #: The identity settings named by NORMALIZATION_SETTINGS, as plain JSON data.
    identity_settings: dict[str, Any]
    #: The snapshot this one was copied from, when it was not built from the warehouse.
    derived_from: str | None = None
    #: Why it was copied (``erasure``: the copy lacks an erased person's rows).
    derivation: str | None = None


def read_manifest(folder: Path) -> SnapshotManifest:
    """The manifest of a snapshot folder; SnapshotError names the file and the problem."""
    path = Path(folder) / MANIFEST_FILE
    try:
        manifest = SnapshotManifest.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise SnapshotError(f"{path}: missing (an unfinished or deleted snapshot)") from exc
    except ValidationError as exc:
        raise SnapshotError(f"{path}: invalid manifest: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise SnapshotError(
            f"{path}: format version {manifest.format_version}, this API reads "
            f"{FORMAT_VERSION}; republish with the matching platform version"
        )
    return manifest


def write_manifest(folder: Path, manifest: SnapshotManifest) -> Path:
    """Write ``manifest.json`` into a snapshot folder that is still being built."""
    path = Path(folder) / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return path
