"""Probe the snapshot CURRENT names, as a reader would, without the API runtime.

The publish checks need to know that the served snapshot is whole and that lookups find their
customer. The pipeline may not import the API (it sits above the platform library), so this
reads the snapshot with the format (``snapshots``) and a plain read-only ``sqlite3``
connection, asking the same questions the API's lookups ask of the same tables.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from snapshots import (
    ALIAS_IDENTIFIER_TYPE,
    SnapshotError,
    SnapshotManifest,
    read_current,
    read_manifest,
    snapshot_folder,
)


@dataclass
class OpenedSnapshot:
    """The snapshot CURRENT names: its manifest and a read-only connection."""

    folder: Path
    manifest: SnapshotManifest
    con: sqlite3.Connection

    @property
    def id(self) -> str:
        """The snapshot id (its folder name)."""
        return self.manifest.snapshot_id


@dataclass
class LookupProbe:
    """How many identifiers were looked up and which did not find their customer."""

    probed: int = 0
    failures: list[str] = field(default_factory=list)


@contextlib.contextmanager
def open_current(serving_dir: Path) -> Iterator[OpenedSnapshot]:
    """Open the snapshot CURRENT names read-only; SnapshotError says what is missing."""
    snapshot_id = read_current(serving_dir)
    if snapshot_id is None:
        raise SnapshotError(f"{serving_dir}: no CURRENT pointer")
    folder = snapshot_folder(serving_dir, snapshot_id)
    manifest = read_manifest(folder)
    path = folder / manifest.database
    if not path.is_file():
        raise SnapshotError(f"{path}: missing snapshot database")
    con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        yield OpenedSnapshot(folder=folder, manifest=manifest, con=con)
    finally:
        con.close()


def count_rows(snapshot: OpenedSnapshot) -> dict[str, int]:
    """Rows of every table the manifest lists (sqlite3.Error if one is unreadable)."""
    return {
        table: int(snapshot.con.execute(f'select count(*) from "{table}"').fetchone()[0])
        for table in snapshot.manifest.tables
    }


def _found(snapshot: OpenedSnapshot, identifier_type: str, value: str) -> str | None:
    """The customer a lookup of (type, value) answers with, as the API reads the tables."""
    if identifier_type == ALIAS_IDENTIFIER_TYPE:
        sql = (
            "select c.customer_id from customer_aliases as a "
            "join customers as c on c.customer_id = a.customer_id where a.alias_customer_id = ?"
        )
        row = snapshot.con.execute(sql, (value,)).fetchone()
    else:
        sql = (
            "select c.customer_id from identifier_lookup as l "
            "join customers as c on c.customer_id = l.customer_id "
            "where l.identifier_type = ? and l.identifier_value = ?"
        )
        row = snapshot.con.execute(sql, (identifier_type, value)).fetchone()
    return None if row is None else str(row[0])


def probe_lookups(snapshot: OpenedSnapshot, per_type: int) -> LookupProbe:
    """Look up ``per_type`` identifiers of each type the manifest lists; report misses.

    Values are shown masked (first three characters) so a check result holds no identifier.
    """
    probe = LookupProbe()
    for identifier_type in snapshot.manifest.identifier_types:
        if identifier_type == ALIAS_IDENTIFIER_TYPE:
            sample_sql = "select alias_customer_id, customer_id from customer_aliases limit ?"
            samples = snapshot.con.execute(sample_sql, (per_type,)).fetchall()
        else:
            sample_sql = (
                "select identifier_value, customer_id from identifier_lookup "
                "where identifier_type = ? limit ?"
            )
            samples = snapshot.con.execute(sample_sql, (identifier_type, per_type)).fetchall()
        for value, customer_id in samples:
            probe.probed += 1
            found = _found(snapshot, identifier_type, value)
            if found != customer_id:
                probe.failures.append(f"{identifier_type}: {value[:3]}*** -> {found}")
    return probe
