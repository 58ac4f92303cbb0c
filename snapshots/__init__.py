"""The serving snapshot format: what the publisher writes and the API reads, and nothing else.

A leaf package (standard library and pydantic only): the pipeline (``dagster_project``) and the
API runtime (``api``) both import it, never each other. The live serving code (opening a
snapshot, following CURRENT) is the API's (``api.snapshot``); building one is the publisher's
(``dagster_project.lib.publish``).

- ``layout``: file names, snapshot ids and folders, the CURRENT pointer;
- ``manifest``: the manifest model and its format version;
- ``tables``: the declared tables (keys, indexes, columns the API reads) and value encodings;
- ``leases``: which snapshots running readers hold, and which a publisher may delete.
"""

from snapshots.errors import SnapshotError
from snapshots.layout import (
    BUILD_PREFIX,
    CURRENT_FILE,
    DATABASE_FILE,
    LEASES_DIR,
    MANIFEST_FILE,
    PUBLISH_LOCK_FILE,
    is_valid_snapshot_id,
    list_snapshots,
    read_current,
    snapshot_folder,
    write_current,
)
from snapshots.leases import (
    LEASE_REFRESH_SECONDS,
    leased_snapshots,
    prunable_snapshots,
    remove_lease,
    write_lease,
)
from snapshots.manifest import (
    FORMAT_VERSION,
    NORMALIZATION_SETTINGS,
    SnapshotManifest,
    read_manifest,
    write_manifest,
)
from snapshots.tables import (
    ALIAS_IDENTIFIER_TYPE,
    COLUMN_TYPES,
    DATE_TEXT_FORMAT,
    TABLE_NAMES,
    TABLES,
    TIMESTAMP_TEXT_FORMAT,
    TableSpec,
    table_spec,
)

__all__ = [
    "ALIAS_IDENTIFIER_TYPE",
    "BUILD_PREFIX",
    "COLUMN_TYPES",
    "CURRENT_FILE",
    "DATABASE_FILE",
    "DATE_TEXT_FORMAT",
    "FORMAT_VERSION",
    "LEASES_DIR",
    "LEASE_REFRESH_SECONDS",
    "MANIFEST_FILE",
    "NORMALIZATION_SETTINGS",
    "PUBLISH_LOCK_FILE",
    "TABLES",
    "TABLE_NAMES",
    "TIMESTAMP_TEXT_FORMAT",
    "SnapshotError",
    "SnapshotManifest",
    "TableSpec",
    "is_valid_snapshot_id",
    "leased_snapshots",
    "list_snapshots",
    "prunable_snapshots",
    "read_current",
    "read_manifest",
    "remove_lease",
    "snapshot_folder",
    "table_spec",
    "write_current",
    "write_lease",
    "write_manifest",
]
