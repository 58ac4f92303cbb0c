"""The lake side of ingest: idempotence, versions, manifest, Parquet sources and user errors."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_project.lib.ingest import (
    FileStatus,
    IngestError,
    ingest_source,
    lake_schema,
    read_lake,
    read_quarantine,
)
from dagster_project.lib.ingest.validate import _repeats
from dagster_project.lib.workspace import Workspace
from tests.support.ingest import AT, ingest, setup, write_landing

LATER = datetime(2024, 6, 2, 12, 0, tzinfo=UTC)

PEOPLE: dict[str, Any] = {
    "name": "crm",
    "kind": "people",
    "format": "csv",
    "path": "crm/*.csv",
    "record_key": "id",
    "mapping": {"first_name": "first", "email": "email", "signed_up_at": "signup"},
}
HEADER = "id,first,email,signup,tier\n"


def digests(workspace: Workspace) -> dict[str, str]:
    """sha256 of every file under lake/ and quarantine/."""
    return {
        str(path.relative_to(workspace.home)): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in (workspace.lake, workspace.quarantine)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_no_matching_file_is_a_clear_error(tmp_path: Path) -> None:
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"other/a.csv": HEADER})
    with pytest.raises(IngestError) as error:
        ingest_source(loaded, source, workspace, ingested_at=AT)
    message = str(error.value)
    assert "source 'crm'" in message
    assert "'crm/*.csv'" in message
    assert str(workspace.home / "landing") in message
    assert "sources.crm.path" in message


def test_rerun_leaves_lake_and_quarantine_byte_identical(tmp_path: Path) -> None:
    files = {
        "crm/a.csv": HEADER + "1,Ann,ann@x.org,2024-01-01T00:00:00Z,gold\n2,Bob,,soon,\n",
        "crm/b.csv": HEADER + "3,Cy,cy@x.org,2024-01-02T00:00:00Z,\n3,Cy,dup@x.org,,\n",
        "crm/empty.csv": "",
    }
    loaded, source, workspace = setup(tmp_path, PEOPLE, files)
    first = ingest(loaded, source, workspace)
    before = digests(workspace)
    assert first.files_ingested == 3 and first.rows_quarantined == 2

    again = ingest(loaded, source, workspace, at=LATER)

    assert digests(workspace) == before
    assert again.files_skipped == 3 and again.files_ingested == 0
    assert (again.rows_read, again.rows_ingested, again.rows_quarantined) == (0, 0, 0)
    assert again.lake_rows_total == first.lake_rows_total == 2
    assert {f.status for f in again.files} == {FileStatus.SKIPPED}
    assert again.preview and again.preview[0]["_source_line"] == 2  # preview still shows the lake


def test_second_file_counts_identical_rows_and_writes_changed_ones(tmp_path: Path) -> None:
    first_file = HEADER + (
        "1,Ann,ann@x.org,2024-01-01T00:00:00Z,gold\n"
        "2,Bob,bob@x.org,2024-01-01T00:00:00Z,\n"
        "3,Cy,cy@x.org,2024-01-01T00:00:00Z,\n"
    )
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/2024-01.csv": first_file})
    ingest(loaded, source, workspace)

    second_file = HEADER + (
        "1,Ann,ann@x.org,2024-01-01T00:00:00Z,platinum\n"  # only passthrough changed: same hash
        "2,Bob,robert@x.org,2024-01-01T00:00:00Z,\n"  # changed email: a new version
        "3,Cy,cy@x.org,2024-01-01T00:00:00Z,\n"  # identical
        "4,Di,di@x.org,2024-02-01T00:00:00Z,\n"  # new
    )
    write_landing(workspace.home, {"crm/2024-02.csv": second_file})
    report = ingest(loaded, source, workspace, at=LATER)

    (skipped, new) = report.files
    assert skipped.status is FileStatus.SKIPPED and new.status is FileStatus.INGESTED
    assert (new.rows_read, new.rows_ingested, new.rows_duplicate) == (4, 2, 2)
    assert report.rows_duplicate == 2
    lake = read_lake(workspace, "crm").to_pylist()
    versions = [(r["record_id"], r["email"], r["_source_file"]) for r in lake]
    assert versions == [
        ("1", "ann@x.org", "crm/2024-01.csv"),
        ("2", "bob@x.org", "crm/2024-01.csv"),
        ("3", "cy@x.org", "crm/2024-01.csv"),
        ("2", "robert@x.org", "crm/2024-02.csv"),
        ("4", "di@x.org", "crm/2024-02.csv"),
    ]
    assert lake[3]["_ingested_at"] == LATER and lake[0]["_ingested_at"] == AT
    assert report.lake_rows_total == 5 and report.lake_files == 2


def test_identical_rows_across_new_files_in_one_run_are_written_once(tmp_path: Path) -> None:
    row = "1,Ann,ann@x.org,2024-01-01T00:00:00Z,gold\n"
    files = {"crm/a.csv": HEADER + row, "crm/b.csv": HEADER + row + "2,Bob,,,\n"}
    loaded, source, workspace = setup(tmp_path, PEOPLE, files)
    report = ingest(loaded, source, workspace)

    assert [f.rows_duplicate for f in report.files] == [0, 1]
    assert read_lake(workspace, "crm").column("record_id").to_pylist() == ["1", "2"]


def test_same_content_under_another_name_is_skipped(tmp_path: Path) -> None:
    content = HEADER + "1,Ann,ann@x.org,2024-01-01T00:00:00Z,\n"
    loaded, source, workspace = setup(
        tmp_path, PEOPLE, {"crm/a.csv": content, "crm/copy.csv": content}
    )
    report = ingest(loaded, source, workspace)

    assert [f.status for f in report.files] == [FileStatus.INGESTED, FileStatus.SKIPPED]
    assert report.files[1].reason == "already ingested (same checksum as crm/a.csv)"
    assert report.lake_rows_total == 1


def test_lake_layout_schema_and_manifest(tmp_path: Path) -> None:
    files = {"crm/a.csv": HEADER + "1,Ann,ann@x.org,2024-01-01T00:00:00Z,gold\n", "crm/b.csv": ""}
    loaded, source, workspace = setup(tmp_path, PEOPLE, files)
    report = ingest(loaded, source, workspace)

    folder = workspace.source_lake("crm")
    sha = {f.path: f.sha256 for f in report.files}
    parts = sorted(p.name for p in folder.glob("part-*.parquet"))
    assert parts == sorted(f"part-{s[:16]}.parquet" for s in sha.values())
    expected = lake_schema(source)
    for part in folder.glob("part-*.parquet"):
        assert pq.read_schema(part).equals(expected)
    names = expected.names
    assert names[0] == "record_id"
    assert names[-6:] == [
        "passthrough",
        "_source_file",
        "_source_line",
        "_file_sha256",
        "_record_hash",
        "_ingested_at",
    ]
    manifest = orjson.loads((folder / "_manifest.json").read_bytes())
    assert [(e["path"], e["sha256"], e["rows_ingested"]) for e in manifest["files"]] == [
        ("crm/a.csv", sha["crm/a.csv"], 1),
        ("crm/b.csv", sha["crm/b.csv"], 0),
    ]
    assert manifest["files"][0]["ingested_at"] == AT.isoformat()
    assert not list(folder.glob(".*")), "no temporary files left behind"
    row = read_lake(workspace, "crm").to_pylist()[0]
    assert row["_file_sha256"] == sha["crm/a.csv"]
    assert len(row["_record_hash"]) == 32
    # The preview is asset metadata: personal values, keys, passthrough and hashes are masked.
    assert report.preview == [
        {
            **{name: None for name in names},
            "record_id": "***",
            "first_name": "***",
            "email": "***",
            "signed_up_at": "2024-01-01T00:00:00+00:00",
            "passthrough": "***",
            "_source_file": "crm/a.csv",
            "_source_line": 2,
            "_file_sha256": sha["crm/a.csv"],
            "_record_hash": "***",
            "_ingested_at": AT.isoformat(),
        }
    ]


def test_record_hash_depends_on_mapped_values_only(tmp_path: Path) -> None:
    files = {
        "crm/a.csv": HEADER
        + "1,Ann,ann@x.org,2024-01-01T00:00:00Z,gold\n"
        + "2,Ann,ann@x.org,2024-01-01T00:00:00Z,gold\n"
        + "3,Ann , ann@x.org,2024-01-01T00:00:00Z,silver\n"
    }
    loaded, source, workspace = setup(tmp_path, PEOPLE, files)
    ingest(loaded, source, workspace)

    hashes = {r["record_id"]: r["_record_hash"] for r in read_lake(workspace, "crm").to_pylist()}
    assert hashes["1"] != hashes["2"]  # the record id is part of the hash
    assert len(set(hashes.values())) == 3


def test_parquet_source_is_read_as_text(tmp_path: Path) -> None:
    source = {
        "name": "orders",
        "kind": "orders",
        "format": "parquet",
        "path": "orders/*.parquet",
        "record_key": "order_id",
        "mapping": {
            "order_id": "order_id",
            "ordered_at": "ordered_at",
            "status": "status",
            "total_amount": "total",
            "email": "customer.email",
        },
    }
    table = pa.table(
        {
            "order_id": pa.array([1, 2, 3], pa.int64()),
            "ordered_at": pa.array(
                [datetime(2024, 1, 1, 10, tzinfo=UTC), None, datetime(2024, 1, 3, tzinfo=UTC)],
                pa.timestamp("ms", tz="UTC"),
            ),
            "status": pa.array(["paid", "paid", "returned"]).dictionary_encode(),
            "total": pa.array([Decimal("10.50"), Decimal("3.00"), None], pa.decimal128(10, 2)),
            "customer": pa.array(
                [{"email": "a@x.org", "zip": "02134"}, {"email": None, "zip": None}, None]
            ),
            "shipped_on": pa.array([date(2024, 1, 2), None, None]),
        }
    )
    home = tmp_path / "home"
    (home / "landing" / "orders").mkdir(parents=True)
    pq.write_table(table, home / "landing" / "orders" / "o.parquet")
    loaded, source_config, workspace = setup(tmp_path, source, {})
    report = ingest(loaded, source_config, workspace)

    lake = {r["record_id"]: r for r in read_lake(workspace, "orders").to_pylist()}
    assert set(lake) == {"1", "3"}
    assert lake["1"]["ordered_at"] == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert lake["1"]["total_amount"] == 10.5 and lake["3"]["total_amount"] is None
    assert lake["1"]["status"] == "paid" and lake["1"]["email"] == "a@x.org"
    assert dict(lake["1"]["passthrough"]) == {"customer.zip": "02134", "shipped_on": "2024-01-02"}
    (bad,) = read_quarantine(workspace, "orders").to_pylist()
    assert bad["_source_line"] == 2 and bad["reason"].startswith("ordered_at: required field")
    assert orjson.loads(bad["raw"])["order_id"] == "2"
    assert report.rows_read == 3


def test_unreadable_parquet_is_reported_and_retried(tmp_path: Path) -> None:
    source = {**PEOPLE, "format": "parquet", "path": "crm/*.parquet"}
    loaded, source_config, workspace = setup(tmp_path, source, {"crm/a.parquet": b"not parquet"})
    report = ingest(loaded, source_config, workspace)

    (file,) = report.files
    assert file.status is FileStatus.UNREADABLE and "not a readable Parquet file" in file.reason
    assert report.files_unreadable == 1
    assert not list(workspace.source_lake("crm").glob("part-*"))
    assert ingest(loaded, source_config, workspace).files_unreadable == 1  # not marked as done


def test_progress_reports_each_file(tmp_path: Path) -> None:
    files = {"crm/a.csv": HEADER + "1,Ann,,,\n", "crm/b.csv": HEADER + "2,Bob,,,\n"}
    loaded, source, workspace = setup(tmp_path, PEOPLE, files)
    calls: list[tuple[str, int, int]] = []
    ingest_source(loaded, source, workspace, ingested_at=AT, progress=lambda *a: calls.append(a))
    assert calls == [("crm/a.csv", 0, 2), ("crm/b.csv", 1, 2), ("done", 2, 2)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"encoding": "klingon"}, "options.encoding: 'klingon' is not a known encoding"),
        ({"delimiter": ";;"}, "options.delimiter: must be one character"),
        ({"default_timezone": "Mars/Olympus"}, "'Mars/Olympus' is not an IANA time zone"),
        ({"true_values": ["y"], "false_values": ["Y"]}, "listed in both true_values"),
    ],
)
def test_bad_options_are_clear_errors(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    loaded, source, workspace = setup(
        tmp_path, {**PEOPLE, "options": options}, {"crm/a.csv": HEADER}
    )
    with pytest.raises(IngestError, match=message):
        ingest_source(loaded, source, workspace, ingested_at=AT)


def test_naive_ingested_at_is_refused(tmp_path: Path) -> None:
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": HEADER})
    with pytest.raises(ValueError, match="timezone-aware"):
        ingest_source(loaded, source, workspace, ingested_at=datetime(2024, 1, 1))


def test_read_lake_before_ingest_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="run its ingest first"):
        read_lake(Workspace(tmp_path), "crm")
    assert read_quarantine(Workspace(tmp_path), "crm").num_rows == 0


def test_a_hash_collision_never_makes_a_duplicate() -> None:
    record_id = pa.array(["a", "b", "a", "c", "b"])
    colliding = np.array([7, 7, 7, 9, 7], dtype=np.uint64)  # "a" and "b" share a hash
    assert _repeats(np.arange(5), colliding, record_id) == [(2, 0), (4, 1)]
    assert _repeats(np.array([1, 3]), colliding, record_id) == []
