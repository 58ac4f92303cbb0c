"""JSON lines ingest: nested keys, value texts, time zones and bad lines, with real files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from dagster_project.lib.ingest import (
    FileStatus,
    read_lake,
    read_quarantine,
)
from dagster_project.lib.workspace import Workspace
from tests.support.ingest import ingest, setup

EVENTS: dict[str, Any] = {
    "name": "web",
    "kind": "events",
    "format": "jsonl",
    "path": "web/*.jsonl",
    "record_key": "id",
    "mapping": {
        "event_type": "type",
        "occurred_at": "ts",
        "page_url": "ctx.page.url",
        "utm_source": "utm.source",
    },
    "identifiers": {"cookie_id": "cookie"},
}


def jsonl(*records: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def rows_by_id(workspace: Workspace, source: str) -> dict[str, dict[str, Any]]:
    return {row["record_id"]: row for row in read_lake(workspace, source).to_pylist()}


def test_nested_keys_are_mappable_and_unmapped_keys_pass_through(tmp_path: Path) -> None:
    content = jsonl(
        {
            "id": "e1",
            "type": "page_view",
            "ts": "2024-03-01T10:00:00Z",
            "ctx": {"page": {"url": "/home", "title": "Home"}, "lang": "en"},
            "utm": {"source": "mail"},
            "cookie": "c1",
            "tags": ["a", "b"],
        },
        {"id": "e2", "type": "login", "ts": "2024-03-01T11:00:00Z", "utm": "direct"},
    )
    loaded, source, workspace = setup(tmp_path, EVENTS, {"web/a.jsonl": content})
    ingest(loaded, source, workspace)

    lake = rows_by_id(workspace, "web")
    assert lake["e1"]["page_url"] == "/home"
    assert lake["e1"]["utm_source"] == "mail"
    assert lake["e1"]["cookie_id"] == "c1"
    passthrough = dict(lake["e1"]["passthrough"])
    assert orjson.loads(passthrough["ctx"]) == {
        "page": {"url": "/home", "title": "Home"},
        "lang": "en",
    }
    assert orjson.loads(passthrough["tags"]) == ["a", "b"]
    assert orjson.loads(passthrough["utm"]) == {"source": "mail"}
    # A scalar where an object was expected is not the nested value; it stays in passthrough.
    assert lake["e2"]["utm_source"] is None
    assert dict(lake["e2"]["passthrough"]) == {"utm": "direct"}


def test_a_literal_dotted_key_is_mappable_too(tmp_path: Path) -> None:
    content = jsonl({"id": "e1", "type": "t", "ts": "2024-03-01T10:00:00Z", "utm.source": "ads"})
    loaded, source, workspace = setup(tmp_path, EVENTS, {"web/a.jsonl": content})
    ingest(loaded, source, workspace)

    assert rows_by_id(workspace, "web")["e1"]["utm_source"] == "ads"


def test_scalars_become_text_and_null_stays_null(tmp_path: Path) -> None:
    source = {
        "name": "orders",
        "kind": "orders",
        "format": "jsonl",
        "path": "o/*.jsonl",
        "record_key": "id",
        "mapping": {
            "order_id": "id",
            "ordered_at": "at",
            "status": "status",
            "total_amount": "total",
            "currency": "currency",
            "phone": "phone",
        },
        "identifiers": {"account_id": "account"},
    }
    content = jsonl(
        {
            "id": 1001,
            "at": "2024-03-01T10:00:00+02:00",
            "status": True,
            "total": 19.5,
            "currency": None,
            "phone": "0044 20 7946 0000",
            "account": 123456789012345678901234567890,
            "gift": False,
        }
    )
    loaded, source_config, workspace = setup(tmp_path, source, {"o/a.jsonl": content})
    ingest(loaded, source_config, workspace)

    row = rows_by_id(workspace, "orders")["1001"]
    assert row["order_id"] == "1001"
    assert row["status"] == "true"
    assert row["total_amount"] == 19.5
    assert row["currency"] is None
    assert row["phone"] == "0044 20 7946 0000"
    assert row["account_id"] == "123456789012345678901234567890"
    assert dict(row["passthrough"]) == {"gift": "false"}


def test_timestamps_with_offsets_land_in_utc(tmp_path: Path) -> None:
    content = jsonl(
        {"id": "z", "type": "t", "ts": "2024-03-01T10:00:00Z"},
        {"id": "plus", "type": "t", "ts": "2024-03-01T10:00:00+02:00"},
        {"id": "minus", "type": "t", "ts": "2024-03-01 10:00:00.250-05:30"},
        {"id": "naive", "type": "t", "ts": "2024-03-01T10:00:00"},
        {"id": "summer", "type": "t", "ts": "2024-07-01T10:00:00"},
    )
    loaded, source, workspace = setup(
        tmp_path, EVENTS, {"web/a.jsonl": content}, defaults={"timezone": "America/New_York"}
    )
    ingest(loaded, source, workspace)

    lake = rows_by_id(workspace, "web")
    assert lake["z"]["occurred_at"] == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert lake["plus"]["occurred_at"] == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    assert lake["minus"]["occurred_at"] == datetime(2024, 3, 1, 15, 30, 0, 250000, tzinfo=UTC)
    # Naive values are read in the project's time zone (EST in March, EDT in July).
    assert lake["naive"]["occurred_at"] == datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
    assert lake["summer"]["occurred_at"] == datetime(2024, 7, 1, 14, 0, tzinfo=UTC)


def test_malformed_json_lines_are_quarantined(tmp_path: Path) -> None:
    good = {"id": "e1", "type": "t", "ts": "2024-03-01T10:00:00Z"}
    content = (
        orjson.dumps(good)
        + b'\n{"id": "e2", "type": \n'
        + b"\n   \n"  # blank lines are not records
        + b"[1, 2]\n"
        + b"{}\n"  # an object without the key: quarantined for the missing key
        + orjson.dumps({**good, "id": "e3"})
    )
    loaded, source, workspace = setup(tmp_path, EVENTS, {"web/a.jsonl": content})
    report = ingest(loaded, source, workspace)

    assert set(rows_by_id(workspace, "web")) == {"e1", "e3"}
    assert rows_by_id(workspace, "web")["e3"]["_source_line"] == 7
    quarantined = {q["_source_line"]: q for q in read_quarantine(workspace, "web").to_pylist()}
    assert set(quarantined) == {2, 5, 6}
    assert quarantined[2]["reason"].startswith("malformed JSON line: Expecting value")
    assert quarantined[2]["raw"] == '{"id": "e2", "type": '
    assert quarantined[5]["reason"] == "malformed JSON line: expected an object, found list"
    assert quarantined[6]["reason"].startswith("record key missing")
    assert (report.rows_read, report.rows_ingested, report.rows_quarantined) == (5, 2, 3)


def test_many_bad_lines_are_all_accounted_for(tmp_path: Path) -> None:
    lines = []
    for i in range(3000):
        lines.append(
            b"{oops" if i % 2 else orjson.dumps({"id": f"e{i}", "type": "t", "ts": "2024-03-01"})
        )
    loaded, source, workspace = setup(tmp_path, EVENTS, {"web/a.jsonl": b"\n".join(lines)})
    report = ingest(loaded, source, workspace)

    assert (report.rows_ingested, report.rows_quarantined) == (1500, 1500)
    lake = read_lake(workspace, "web")
    assert lake.column("_source_line").to_pylist() == list(range(1, 3001, 2))


def test_non_utf8_line_is_quarantined_and_latin1_reads_it(tmp_path: Path) -> None:
    content = (
        b'{"id": "e1", "type": "t", "ts": "2024-03-01T10:00:00Z"}\n'
        b'{"id": "e2", "type": "caf\xe9", "ts": "2024-03-01T10:00:00Z"}\n'
        b'{"id": "e3", "type": "t", "ts": "2024-03-01T10:00:00Z"}\n'
    )
    loaded, source, workspace = setup(tmp_path, EVENTS, {"web/a.jsonl": content})
    report = ingest(loaded, source, workspace)

    assert set(rows_by_id(workspace, "web")) == {"e1", "e3"}
    (row,) = read_quarantine(workspace, "web").to_pylist()
    assert row["_source_line"] == 2 and "not valid utf-8 (byte 0xe9)" in row["reason"]
    assert '"caf\\xe9"' in row["raw"]
    assert report.rows_quarantined == 1

    latin = {**EVENTS, "name": "web_latin", "options": {"encoding": "latin-1"}}
    loaded, source, workspace = setup(tmp_path / "latin", latin, {"web/a.jsonl": content})
    report = ingest(loaded, source, workspace)
    assert report.rows_ingested == 3
    assert rows_by_id(workspace, "web_latin")["e2"]["event_type"] == "café"


def test_duplicate_event_id_in_a_file(tmp_path: Path) -> None:
    content = jsonl(
        {"id": "e1", "type": "t", "ts": "2024-03-01T10:00:00Z"},
        {"id": "e1", "type": "u", "ts": "2024-03-01T10:00:00Z"},
    )
    loaded, source, workspace = setup(tmp_path, EVENTS, {"web/a.jsonl": content})
    ingest(loaded, source, workspace)

    (row,) = read_quarantine(workspace, "web").to_pylist()
    assert row["reason"] == "duplicate record key (first seen on line 1)"
    assert rows_by_id(workspace, "web")["e1"]["event_type"] == "t"


def test_crlf_and_bom_are_handled(tmp_path: Path) -> None:
    content = b'\xef\xbb\xbf{"id": "e1", "type": " t ", "ts": "2024-03-01T10:00:00Z"}\r\n'
    content += b'{"id": "e2", "type": "t", "ts": "2024-03-01T10:00:00Z"}\r\n'
    loaded, source, workspace = setup(tmp_path, EVENTS, {"web/a.jsonl": content})
    ingest(loaded, source, workspace)

    lake = rows_by_id(workspace, "web")
    assert lake["e1"]["event_type"] == "t"
    assert {k: v["_source_line"] for k, v in lake.items()} == {"e1": 1, "e2": 2}


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_jsonl_file_gives_zero_rows(tmp_path: Path, content: bytes) -> None:
    loaded, source, workspace = setup(tmp_path, EVENTS, {"web/a.jsonl": content})
    report = ingest(loaded, source, workspace)

    assert report.files[0].status is FileStatus.EMPTY
    assert report.rows_read == 0 and read_lake(workspace, "web").num_rows == 0


def test_a_key_given_twice_quarantines_the_line_naming_the_key(tmp_path: Path) -> None:
    source = {**EVENTS, "mapping": {**EVENTS["mapping"], "email": "email"}}
    content = (
        b'{"id": "e1", "type": "t", "ts": "2024-03-01T10:00:00Z", "email": "a@x.com"}\n'
        b'{"id": "e2", "type": "t", "ts": "2024-03-01T10:00:00Z", '
        b'"email": "a@x.com", "email": "b@y.com"}\n'
        # the same key spelled with an escape is the same key
        b'{"id": "e3", "type": "t", "ts": "2024-03-01T10:00:00Z", "em\\u0061il": "a", '
        b'"email": "b"}\n'
        # inside an object a mapping reaches into ("utm.source")
        b'{"id": "e4", "type": "t", "ts": "2024-03-01T10:00:00Z", '
        b'"utm": {"source": "mail", "source": "ads"}}\n'
        # inside an object nothing maps: kept whole in passthrough, so nothing is guessed
        b'{"id": "e5", "type": "t", "ts": "2024-03-01T10:00:00Z", "meta": {"a": 1, "a": 2}}\n'
    )
    loaded, source_config, workspace = setup(tmp_path, source, {"web/a.jsonl": content})
    report = ingest(loaded, source_config, workspace)

    assert set(rows_by_id(workspace, "web")) == {"e1", "e5"}
    quarantined = {q["_source_line"]: q for q in read_quarantine(workspace, "web").to_pylist()}
    assert {line: q["reason"] for line, q in quarantined.items()} == {
        2: "duplicate JSON key 'email': the object holds it more than once, so which value "
        "counts is a guess",
        3: "duplicate JSON key 'email': the object holds it more than once, so which value "
        "counts is a guess",
        4: "duplicate JSON key 'utm.source': the object holds it more than once, so which "
        "value counts is a guess",
    }
    assert "b@y.com" in quarantined[2]["raw"]  # both values kept for whoever fixes it
    assert dict(rows_by_id(workspace, "web")["e5"]["passthrough"])["meta"] == '{"a":1,"a":2}'
    assert report.quarantine_reasons == {"duplicate JSON key": 3}
    assert (report.rows_read, report.rows_ingested, report.rows_quarantined) == (5, 2, 3)
