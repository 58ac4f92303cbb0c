"""Field and record limits, control characters: oversize or binary junk never reaches the lake.

Real landing files (CSV, JSON lines, Parquet) through ``ingest_source``; every reason must name
the column and the limit or character, and never carry the value itself.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_project.lib.config import (
    ConfigError,
    IngestLimits,
    SourceOptions,
)
from dagster_project.lib.ingest import read_lake, read_quarantine
from dagster_project.lib.ingest.readers import _csv_fast, _csv_slow
from dagster_project.lib.workspace import Workspace
from tests.support.ingest import ingest, setup

PEOPLE: dict[str, Any] = {
    "name": "crm",
    "kind": "people",
    "format": "csv",
    "path": "crm/*.csv",
    "record_key": "id",
    "mapping": {"first_name": "first", "city": "city"},
}
EVENTS: dict[str, Any] = {
    "name": "web",
    "kind": "events",
    "format": "jsonl",
    "path": "web/*.jsonl",
    "record_key": "id",
    "mapping": {"event_type": "type", "occurred_at": "ts", "search_query": "q"},
}
BIG_NAME = "Zed" + "e" * (5 * 1024 * 1024)  # a 5 MB first name


def reasons(workspace: Workspace, source: str) -> dict[int, str]:
    rows = read_quarantine(workspace, source).to_pylist()
    return {q["_source_line"]: q["reason"] for q in rows}


def lake_ids(workspace: Workspace, source: str) -> set[str]:
    return set(read_lake(workspace, source).column("record_id").to_pylist())


# --- configuration -----------------------------------------------------------------------------


def test_limits_default_and_override_per_source_key_by_key(tmp_path: Path) -> None:
    loaded, source, _ = setup(
        tmp_path,
        {**PEOPLE, "ingest": {"max_field_chars": 100}},
        {},
        ingest={"max_row_bytes": 1000},
    )
    assert loaded.config.ingest == IngestLimits(max_field_chars=4096, max_row_bytes=1000)
    assert loaded.config.limits_for(source) == IngestLimits(max_field_chars=100, max_row_bytes=1000)
    assert IngestLimits() == IngestLimits(max_field_chars=4096, max_row_bytes=65536)


@pytest.mark.parametrize(
    ("top", "source_ingest", "message"),
    [
        ({"max_field_chars": 0}, {}, r"ingest\.max_field_chars: Input should be greater than"),
        ({}, {"max_row_bytes": "big"}, r"sources\.0\.ingest\.max_row_bytes: Input should be"),
        ({"max_feld_chars": 9}, {}, r"ingest\.max_feld_chars: Extra inputs are not permitted"),
        ({"max_row_bytes": 2**40}, {}, r"ingest\.max_row_bytes: Input should be less than"),
        (
            {"max_row_bytes": 100},
            {"max_field_chars": 500},
            r"sources\.0\.ingest: max_field_chars \(500\) is larger than max_row_bytes \(100\)",
        ),
    ],
)
def test_bad_limits_fail_at_start_naming_the_key(
    tmp_path: Path, top: dict[str, Any], source_ingest: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        setup(tmp_path, {**PEOPLE, "ingest": source_ingest}, {}, ingest=top)


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_oversize_field_and_control_characters_are_quarantined(tmp_path: Path) -> None:
    content = (
        "id,first,city,notes\n"
        "1,Ann,Boston,ok\n"
        f"2,{BIG_NAME},Austin,x\n"  # 5 MB: over the record limit, never parsed by pyarrow
        f"3,{'B' * 5000},Denver,x\n"  # over max_field_chars, inside the record limit
        "4,Bo\x00b,Miami,x\n"  # NUL
        "5,Cy,Paris,beep\x07\n"  # BEL in an unmapped column counts too
        "6,Dee\u0085,Rome,x\n"  # C1 (NEL)
        '7,Ed,"Oslo","tab\tand\r\nnew line"\n'  # TAB, CR and LF inside a field are text
        "8,Flo,Lima,\x7f\n"  # DEL (line 10: record 7 spans two lines)
    )
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    report = ingest(loaded, source, workspace)

    assert lake_ids(workspace, "crm") == {"1", "7"}
    assert (report.rows_read, report.rows_ingested, report.rows_quarantined) == (8, 2, 6)
    why = reasons(workspace, "crm")
    size = len(f"2,{BIG_NAME},Austin,x")
    assert why[3] == (
        f"record too large: {size:,} bytes (max_row_bytes is 65536); too long for "
        f"max_field_chars (4096): column 'first' ({len(BIG_NAME):,} characters)"
    )
    assert why[4] == "column 'first': value too long (5,000 characters; max_field_chars is 4096)"
    assert why[5].startswith("column 'first': control character U+0000 (NUL) at position 3")
    assert why[6].startswith("column 'notes': control character U+0007 (BEL) at position 5")
    assert why[7].startswith("column 'first': control character U+0085 (C1 control)")
    assert why[10].startswith("column 'notes': control character U+007F (DEL) at position 1")
    for reason in why.values():  # the reason names the column, never the value
        assert "Zed" not in reason and "BBB" not in reason and "Bo" not in reason
    assert report.quarantine_reasons["record too large"] == 1
    assert report.quarantine_reasons["column 'first': control character"] == 2
    assert report.quarantine_reasons["unmapped column: control character"] == 2  # notes
    lake = {r["record_id"]: r for r in read_lake(workspace, "crm").to_pylist()}
    assert dict(lake["7"]["passthrough"]) == {"notes": "tab\tand\r\nnew line"}
    raw = {q["_source_line"]: q["raw"] for q in read_quarantine(workspace, "crm").to_pylist()}
    assert raw[5] == "4,Bo\x00b,Miami,x"  # the raw record keeps the evidence
    assert len(raw[3]) < 10_100  # but never megabytes of it


def test_limits_are_configurable_per_source(tmp_path: Path) -> None:
    content = "id,first,city\n1,Ann,Boston\n2," + "B" * 5000 + ",Austin\n3,Cy," + "x" * 300 + "\n"
    source = {**PEOPLE, "ingest": {"max_field_chars": 6000}}
    loaded, source_config, workspace = setup(
        tmp_path, source, {"crm/a.csv": content}, ingest={"max_row_bytes": 8000}
    )
    ingest(loaded, source_config, workspace)

    assert lake_ids(workspace, "crm") == {"1", "2", "3"}

    strict = {**PEOPLE, "name": "strict", "ingest": {"max_field_chars": 200}}
    loaded, source_config, workspace = setup(tmp_path / "s", strict, {"crm/a.csv": content})
    ingest(loaded, source_config, workspace)
    assert lake_ids(workspace, "strict") == {"1"}
    assert reasons(workspace, "strict")[4] == (
        "column 'city': value too long (300 characters; max_field_chars is 200)"
    )


def test_an_oversize_header_quarantines_every_row(tmp_path: Path) -> None:
    header = "id,first,city," + ",".join(f"extra_{i}" for i in range(40)) + "\n"
    content = header + "1,Ann,Boston" + "," * 40 + "\n"
    source = {**PEOPLE, "ingest": {"max_row_bytes": 200, "max_field_chars": 50}}
    loaded, source_config, workspace = setup(tmp_path, source, {"crm/a.csv": content})
    report = ingest(loaded, source_config, workspace)

    assert (report.rows_read, report.rows_quarantined) == (1, 1)
    assert report.files[0].reason.startswith("header too large: line 1 is")


CSV_CASES = [
    (
        b"id,a,b\n1,x,y\n2," + b"z" * 300 + b",w\n3,p\x00q,r\n4,s,t\n   \n5," + b"q" * 90 + b",u\n",
        3,
    ),
    (b'id,a,b\r\n1,"multi\r\nline",y\r\n2,"' + b"z" * 300 + b'",w\r\n3,\xc2\x85,r\r\n', 4),
]


@pytest.mark.parametrize(("content", "too_large_line"), CSV_CASES)
def test_fast_and_careful_csv_paths_agree_on_limits(content: bytes, too_large_line: int) -> None:
    limits = IngestLimits(max_field_chars=80, max_row_bytes=120)
    options = SourceOptions()
    fast = _csv_fast(content, options, limits)
    careful = _csv_slow(content, options, limits)

    assert fast is not None
    assert fast.lines.tolist() == careful.lines.tolist()
    assert [(r.line, r.kind, r.reason, r.raw) for r in fast.rejected] == [
        (r.line, r.kind, r.reason, r.raw) for r in careful.rejected
    ]
    for name in fast.columns:
        assert fast.columns[name].to_pylist() == careful.columns[name].to_pylist()
    # Only the 300-byte record is rejected by the reader; values are judged in validate.
    assert [r.line for r in fast.rejected] == [too_large_line]


def test_a_huge_record_reads_the_same_on_both_csv_paths() -> None:
    # 200 KB in one field: past the csv module's own field limit (131,072) on the careful path.
    content = b"id,a,b\n1,x,y\n2," + b"z" * 200_000 + b",w\n3,p,q\n"
    fast = _csv_fast(content, SourceOptions())
    careful = _csv_slow(content, SourceOptions())

    assert fast is not None
    assert [(r.line, r.reason) for r in fast.rejected] == [
        (r.line, r.reason) for r in careful.rejected
    ]
    assert careful.rejected[0].reason == (
        "record too large: 200,004 bytes (max_row_bytes is 65536); too long for "
        "max_field_chars (4096): column 'a' (200,000 characters)"
    )
    assert careful.lines.tolist() == [2, 4]


# --- JSON lines --------------------------------------------------------------------------------


def test_jsonl_oversize_and_escaped_control_characters_are_quarantined(tmp_path: Path) -> None:
    def line(record: dict[str, Any]) -> str:
        return json.dumps({"type": "search", "ts": "2024-03-01T10:00:00Z", **record})

    many_keys = {"id": "e4", **{f"k{i}": "v" for i in range(20_000)}}
    content = "\n".join(
        [
            line({"id": "e1", "q": "shoes"}),
            line({"id": "e2", "q": BIG_NAME}),
            line({"id": "e3", "q": "a" * 4097}),
            json.dumps({**many_keys, "type": "t", "ts": "2024-03-01"}),  # ~200 KB of keys
            line({"id": "e5", "q": "nul\u0000here"}),  # valid JSON: the escape decodes to NUL
            line({"id": "e6", "q": "next\u2028line is fine"}),  # not a control character
            line({"id": "e7", "q": "c1 \u009b"}),
        ]
    )
    loaded, source, workspace = setup(tmp_path, EVENTS, {"web/a.jsonl": content})
    report = ingest(loaded, source, workspace)

    assert lake_ids(workspace, "web") == {"e1", "e6"}
    why = reasons(workspace, "web")
    assert why[2].startswith("record too large: ") and "column 'q' (" in why[2]
    assert why[3] == "column 'q': value too long (4,097 characters; max_field_chars is 4096)"
    assert why[4].startswith("record too large: ") and "max_row_bytes is 65536" in why[4]
    assert why[5].startswith("column 'q': control character U+0000 (NUL) at position 4")
    assert why[7].startswith("column 'q': control character U+009B (C1 control)")
    # The 20,000 keys of the oversize line never became columns.
    assert not any(name.startswith("k1") for name in read_lake(workspace, "web").column_names)
    assert report.rows_quarantined == 5


# --- Parquet -----------------------------------------------------------------------------------


def test_parquet_values_are_held_to_the_same_limits(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": ["1", "2", "3", "4"],
            "first": ["Ann", "Bo\x00b", "C" * 70_000, "D" * 5000],
            "city": ["Boston", "Austin", "Denver", "Miami"],
            "photo": pa.array([b"ok", b"ok", b"ok", b"ok"], pa.binary()),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    source = {**PEOPLE, "format": "parquet", "path": "crm/*.parquet"}
    loaded, source_config, workspace = setup(tmp_path, source, {"crm/a.parquet": buffer.getvalue()})
    ingest(loaded, source_config, workspace)

    assert lake_ids(workspace, "crm") == {"1"}
    why = reasons(workspace, "crm")
    assert why[2].startswith("column 'first': control character U+0000 (NUL)")
    assert why[3] == (
        "record too large: 70,009 bytes (max_row_bytes is 65536); too long for max_field_chars "
        "(4096): column 'first' (70,000 characters)"
    )
    assert why[4] == "column 'first': value too long (5,000 characters; max_field_chars is 4096)"
