"""Ingest drops the records of erased persons (the suppression list), counts them, and cuts
them from the landing file, which stays recognised as already ingested in either version."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_project.defs.ingest.assets import SUPPRESSED_METADATA, build_ingest_asset
from dagster_project.defs.ingest.checks import build_ingest_checks
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import load_config
from dagster_project.lib.ingest import FileStatus, ingest_source, read_lake, read_quarantine
from dagster_project.lib.ingest.lake import Manifest, part_name
from privacy.keys import KEY_VARIABLE, Keyring, PrivacyKey
from privacy.suppression import PrivacyStore, Suppression
from tests.support.ingest import AT, setup, write_landing

MEMBERS = {
    "name": "members",
    "kind": "people",
    "format": "csv",
    "path": "members/*.csv",
    "record_key": "id",
    "mapping": {"email": "email", "first_name": "name"},
    "identifiers": {"account_id": "acct"},
}
MEMBERS_CSV = (
    "id,name,email,acct,note\n"
    "1,Ann,ann@example.org,A1,plain\n"
    '2,"Erased\nPerson", ERASED@Example.org ,A7,"two\nlines"\n'  # by email, over three lines
    '3,Bob,bob@example.org,A3,"another\nmulti"\n'
    "4,Acc,other@example.org,A2,by account\n"  # by account id
    ",NoKey,erased@example.org,A9,quarantined\n"  # quarantined (no key) and erased
    ",NoKey2,carl@example.org,A8,quarantined\n"  # quarantined, someone else
)
KEPT_CSV = (
    "id,name,email,acct,note\n"
    "1,Ann,ann@example.org,A1,plain\n"
    '3,Bob,bob@example.org,A3,"another\nmulti"\n'
    ",NoKey2,carl@example.org,A8,quarantined\n"
)
CLICKS = {
    "name": "clicks",
    "kind": "events",
    "format": "jsonl",
    "path": "clicks/*.jsonl",
    "record_key": "event_id",
    "mapping": {"event_type": "type", "occurred_at": "at", "order_id": "order"},
    "identifiers": {"cookie_id": "cookie"},
}
CLICK_LINES = [
    '{"event_id":"e1","type":"view","at":"2024-01-01T00:00:00Z","cookie":"ck-keep"}',
    '{"event_id":"e2","type":"view","at":"2024-01-01T00:00:00Z","cookie":"ck-gone"}',
    '{"event_id":"e3","type":"buy","at":"2024-01-01T00:00:00Z","cookie":"ck-x","order":"O-GONE"}',
    '{"event_id":"e4","type":"view","at":"not a time","cookie":"ck-gone"}',
    '{"event_id":"e5","type":"view","at":"not a time","cookie":"ck-keep"}',
]
KEY = PrivacyKey(bytes(range(32)))


def _erased() -> dict[str, str]:
    keyring = Keyring((KEY,))
    ids = [
        ("email", "erased@example.org"),
        ("account_id", "A2"),
        ("cookie_id", "ck-gone"),
        ("order_id", "O-GONE"),
    ]
    return {keyring.hash(kind, value): kind for kind, value in ids}


def _suppression() -> Suppression:
    return Suppression.of(Keyring((KEY,)), _erased())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_csv_records_of_erased_persons_are_dropped_counted_and_cut(tmp_path: Path) -> None:
    loaded, source, workspace = setup(tmp_path, MEMBERS, {"members/2024.csv": MEMBERS_CSV})
    landing = workspace.home / "landing" / "members" / "2024.csv"
    os.chmod(landing, 0o640)
    original = landing.read_bytes()

    report = ingest_source(loaded, source, workspace, ingested_at=AT, suppression=_suppression())

    file = report.files[0]
    assert (file.rows_read, file.rows_ingested, file.rows_quarantined) == (6, 2, 1)
    assert (file.rows_duplicate, file.rows_suppressed) == (0, 3)
    assert file.is_balanced() and report.is_balanced()
    assert report.summary()["rows_suppressed"] == 3
    assert landing.read_text() == KEPT_CSV  # whole records gone, header and the rest kept
    assert stat.S_IMODE(landing.stat().st_mode) == 0o640
    lake = read_lake(workspace, "members").to_pylist()
    assert [(r["record_id"], r["_source_line"]) for r in lake] == [("1", 2), ("3", 3)]
    new_sha = _sha(landing.read_bytes())
    assert {r["_file_sha256"] for r in lake} == {new_sha}
    quarantine = read_quarantine(workspace, "members").to_pylist()
    assert [(q["_source_line"], "carl@" in q["raw"]) for q in quarantine] == [(5, True)]
    entry = Manifest.load(workspace.source_lake("members"), "members").files[0]
    assert entry["sha256"] == new_sha
    assert entry["part"] == part_name(_sha(original))
    assert entry["erasure"] == {"previous_sha256": [_sha(original)], "records_removed": 3}
    assert entry["rows_suppressed"] == 3

    # The rewritten file, the original delivered again, and a copy under another name: all
    # recognised, nothing read again.
    again = ingest_source(loaded, source, workspace, ingested_at=AT, suppression=_suppression())
    assert [f.status for f in again.files] == [FileStatus.SKIPPED]
    write_landing(workspace.home, {"members/2024.csv": original, "members/copy.csv": original})
    third = ingest_source(loaded, source, workspace, ingested_at=AT, suppression=_suppression())
    assert [f.status for f in third.files] == [FileStatus.SKIPPED, FileStatus.SKIPPED]
    assert read_lake(workspace, "members").num_rows == 2


def test_jsonl_lines_of_erased_persons_and_their_orders_are_dropped(tmp_path: Path) -> None:
    text = "\n".join(CLICK_LINES) + "\n"
    loaded, source, workspace = setup(tmp_path, CLICKS, {"clicks/a.jsonl": text})

    report = ingest_source(loaded, source, workspace, ingested_at=AT, suppression=_suppression())

    file = report.files[0]
    assert (file.rows_read, file.rows_ingested, file.rows_quarantined) == (5, 1, 1)
    assert file.rows_suppressed == 3 and file.is_balanced()
    landing = workspace.home / "landing" / "clicks" / "a.jsonl"
    assert landing.read_text() == CLICK_LINES[0] + "\n" + CLICK_LINES[4] + "\n"
    assert read_lake(workspace, "clicks")["record_id"].to_pylist() == ["e1"]
    quarantine = read_quarantine(workspace, "clicks")
    assert quarantine["_source_line"].to_pylist() == [2]
    assert "ck-gone" not in " ".join(quarantine["raw"].to_pylist())


def test_an_empty_list_hashes_nothing_and_changes_nothing(tmp_path: Path) -> None:
    def never(_kind: str, _raw: Any) -> tuple[Any, Any]:
        raise AssertionError("an empty list must not normalize or hash a value")

    loaded, source, workspace = setup(tmp_path, MEMBERS, {"members/2024.csv": MEMBERS_CSV})
    empty = Suppression.of(Keyring((KEY,)), {})
    report = ingest_source(
        loaded, source, workspace, ingested_at=AT, suppression=empty, normalize=never
    )
    assert (report.rows_ingested, report.rows_quarantined, report.rows_suppressed) == (4, 2, 0)
    assert (workspace.home / "landing" / "members" / "2024.csv").read_text() == MEMBERS_CSV
    entry = Manifest.load(workspace.source_lake("members"), "members").files[0]
    assert "erasure" not in entry and entry["rows_suppressed"] == 0


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _materialize(home: Path, instance: dg.DagsterInstance) -> dg.ExecuteInJobResult:
    config = load_config(home / "cdp.yml").config
    return dg.materialize(
        [build_ingest_asset(config.sources[0]), *build_ingest_checks(config)],
        instance=instance,
        resources={"cdp": CdpResource(home=str(home), config_path=str(home / "cdp.yml"))},
        raise_on_error=False,
    )


def test_the_ingest_asset_applies_the_list_and_shows_the_count(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, workspace = setup(tmp_path, MEMBERS, {"members/2024.csv": MEMBERS_CSV})
    PrivacyStore.at(workspace.home).add("er_test", _erased())
    monkeypatch.setenv(KEY_VARIABLE, KEY.secret.hex())

    result = _materialize(workspace.home, instance)

    assert result.success
    [event] = result.get_asset_materialization_events()
    materialization = event.materialization
    assert materialization.metadata[SUPPRESSED_METADATA].value == 3
    assert materialization.metadata["rows_ingested"].value == 2
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["rows_accounted_for"].passed, checks["rows_accounted_for"].description
    assert pq.read_table(next(workspace.source_lake("members").glob("part-*"))).num_rows == 2


def test_a_list_without_its_key_stops_the_ingest(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, workspace = setup(tmp_path, MEMBERS, {"members/2024.csv": MEMBERS_CSV})
    PrivacyStore.at(workspace.home).add("er_test", _erased())
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    monkeypatch.delenv("CDP_PRIVACY_KEY_FILE", raising=False)

    result = _materialize(workspace.home, instance)

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None and "privacy key is missing" in failure.message
    assert not list(workspace.source_lake("members").glob("part-*"))


def test_parquet_rows_of_erased_persons_are_dropped_from_the_landing_file(tmp_path: Path) -> None:
    source = {**MEMBERS, "format": "parquet", "path": "members/*.parquet"}
    table = pa.table(
        {
            "id": ["1", "2", "3"],
            "name": ["Ann", "Gone", "Bob"],
            "email": ["ann@example.org", "Erased@example.org", "bob@example.org"],
            "acct": ["A1", "A5", "A3"],
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    loaded, config, workspace = setup(tmp_path, source, {"members/a.parquet": buffer.getvalue()})

    report = ingest_source(loaded, config, workspace, ingested_at=AT, suppression=_suppression())

    assert (report.rows_ingested, report.rows_suppressed) == (2, 1) and report.is_balanced()
    landing = pq.read_table(workspace.home / "landing" / "members" / "a.parquet")
    assert landing["id"].to_pylist() == ["1", "3"]
    lake = read_lake(workspace, "members")
    assert lake["_source_line"].to_pylist() == [1, 2]  # rows of the rewritten file
