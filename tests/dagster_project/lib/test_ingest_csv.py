"""CSV ingest with real files, Parquet and DuckDB: bad input ends in quarantine, never lost."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dagster_project.lib.config import SourceOptions
from dagster_project.lib.ingest import (
    FileStatus,
    lake_schema,
    read_lake,
    read_quarantine,
)
from dagster_project.lib.ingest.readers import _csv_fast, _csv_slow
from dagster_project.lib.workspace import Workspace
from tests.support.ingest import ingest, setup

PEOPLE: dict[str, Any] = {
    "name": "crm",
    "kind": "people",
    "format": "csv",
    "path": "crm/*.csv",
    "record_key": "customer_number",
    "mapping": {
        "first_name": "first_name",
        "last_name": "last_name",
        "postal_code": "zip",
        "signed_up_at": "signup",
        "has_email_consent": "email_ok",
    },
    "identifiers": {"loyalty_id": "customer_number"},
}
HEADER = "customer_number,first_name,last_name,zip,signup,email_ok\n"

LINES: dict[str, Any] = {
    "name": "lines",
    "kind": "order_lines",
    "format": "csv",
    "path": "lines/*.csv",
    "record_key": ["order", "line"],
    "mapping": {
        "order_id": "order",
        "line_number": "line",
        "product_id": "sku",
        "quantity": "qty",
        "unit_price": "price",
    },
}


def rows_by_id(workspace: Workspace, source: str) -> dict[str, dict[str, Any]]:
    return {row["record_id"]: row for row in read_lake(workspace, source).to_pylist()}


def test_corrupt_line_is_quarantined_with_its_line_number(tmp_path: Path) -> None:
    content = (
        HEADER
        + "001,Ann,Lee,02134,2024-01-01T10:00:00Z,yes\n"
        + "002,Bob,Short\n"
        + "003,Cy,Li,00501,2024-01-02T10:00:00Z,no\n"
        + "004,Di,Wu,1,2024-01-03T10:00:00Z,yes,unexpected\n"
    )
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    report = ingest(loaded, source, workspace)

    assert (report.rows_read, report.rows_ingested, report.rows_quarantined) == (4, 2, 2)
    assert set(rows_by_id(workspace, "crm")) == {"001", "003"}
    quarantined = read_quarantine(workspace, "crm").to_pylist()
    assert [(q["_source_line"], q["reason"]) for q in quarantined] == [
        (3, "malformed CSV line: expected 6 fields, found 3"),
        (5, "malformed CSV line: expected 6 fields, found 7"),
    ]
    assert quarantined[0]["raw"] == "002,Bob,Short"
    assert quarantined[0]["_source_file"] == "crm/a.csv"
    assert report.quarantine_reasons == {"malformed CSV line": 2}


def test_wrong_types_are_quarantined_with_field_not_value(tmp_path: Path) -> None:
    content = (
        "order,line,sku,qty,price\n"
        "A1,1,P1,2,9.99\n"
        "A1,2,P2,two,9.99\n"  # bad integer
        "A1,3,P3,1.5,9.99\n"  # not a whole number: never silently rounded
        "A2,1,P1,3.0,1e2\n"  # a whole number with a zero fraction is fine
        "A2,2,P4,1,free\n"  # bad decimal
        "A2,3,P5,1,nan\n"  # non-finite decimal
    )
    loaded, source, workspace = setup(tmp_path, LINES, {"lines/a.csv": content})
    report = ingest(loaded, source, workspace)

    lake = rows_by_id(workspace, "lines")
    assert set(lake) == {"A1|1", "A2|1"}
    assert lake["A2|1"]["quantity"] == 3
    assert lake["A2|1"]["unit_price"] == pytest.approx(100.0)
    assert lake["A1|1"]["line_number"] == 1
    reasons = {
        q["_source_line"]: q["reason"] for q in read_quarantine(workspace, "lines").to_pylist()
    }
    # The reason names the field and the problem, never the value (it may be personal); the
    # raw record next to it keeps the value.
    assert reasons == {
        3: "quantity: unparseable integer",
        4: "quantity: unparseable integer",
        6: "unit_price: unparseable decimal",
        7: "unit_price: unparseable decimal",
    }
    raws = {q["_source_line"]: q["raw"] for q in read_quarantine(workspace, "lines").to_pylist()}
    assert raws[3] == "A1,2,P2,two,9.99"
    assert report.quarantine_reasons["quantity: unparseable integer"] == 2


def test_bad_timestamp_and_boolean_are_quarantined(tmp_path: Path) -> None:
    content = (
        HEADER
        + "001,Ann,Lee,02134,2024-01-01T10:00:00Z,YES\n"
        + "002,Bob,Ray,02135,yesterday,no\n"
        + "003,Cy,Li,02136,2024-01-01T10:00:00Z,maybe\n"
        + "004,Di,Wu,02137,,\n"  # empty optional values are nulls, not errors
    )
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    report = ingest(loaded, source, workspace)

    lake = rows_by_id(workspace, "crm")
    assert set(lake) == {"001", "004"}
    assert lake["001"]["has_email_consent"] is True
    assert lake["004"]["signed_up_at"] is None and lake["004"]["has_email_consent"] is None
    reasons = {
        q["_source_line"]: q["reason"] for q in read_quarantine(workspace, "crm").to_pylist()
    }
    assert reasons[3].startswith("signed_up_at: unparseable timestamp (expected ISO 8601")
    assert reasons[4].startswith("has_email_consent: unparseable boolean (expected one of")
    assert "yesterday" not in reasons[3] and "maybe" not in reasons[4]
    assert report.rows_quarantined == 2


def test_several_problems_in_one_row_are_all_named(tmp_path: Path) -> None:
    content = "order,line,sku,qty,price\n,1,,x,y\n"
    loaded, source, workspace = setup(tmp_path, LINES, {"lines/a.csv": content})
    report = ingest(loaded, source, workspace)

    (row,) = read_quarantine(workspace, "lines").to_pylist()
    for part in (
        "record key missing: column 'order' is empty",
        "order_id: required field missing",
        "product_id: required field missing (column 'sku' is empty)",
        "quantity: unparseable integer",
        "unit_price: unparseable decimal",
    ):
        assert part in row["reason"]
    assert report.rows_quarantined == 1 and sum(report.quarantine_reasons.values()) == 1


@pytest.mark.parametrize("content", [b"", HEADER.encode(), b"\n\n", (HEADER + "\n  \n").encode()])
def test_empty_file_gives_zero_rows_and_a_readable_part(tmp_path: Path, content: bytes) -> None:
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    report = ingest(loaded, source, workspace)

    assert report.files[0].status is FileStatus.EMPTY
    assert (report.rows_read, report.rows_ingested, report.rows_quarantined) == (0, 0, 0)
    lake = read_lake(workspace, "crm")
    assert lake.num_rows == 0
    assert lake.schema.equals(lake_schema(source))
    assert report.lake_files == 1 and report.lake_rows_total == 0


def test_non_utf8_line_is_quarantined_then_read_with_latin1(tmp_path: Path) -> None:
    content = (
        HEADER.encode()
        + b"001,Ann,Lee,02134,2024-01-01T10:00:00Z,yes\n"
        + b"002,Ren\xe9e,M\xfcller,02135,2024-01-01T10:00:00Z,no\n"
        + b"003,Cy,Li,02136,2024-01-01T10:00:00Z,no\n"
    )
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    report = ingest(loaded, source, workspace)

    assert set(rows_by_id(workspace, "crm")) == {"001", "003"}
    (row,) = read_quarantine(workspace, "crm").to_pylist()
    assert row["_source_line"] == 3
    assert "not valid utf-8" in row["reason"] and "options.encoding" in row["reason"]
    assert row["raw"] == "002,Ren\\xe9e,M\\xfcller,02135,2024-01-01T10:00:00Z,no"
    assert report.rows_quarantined == 1

    latin = {**PEOPLE, "name": "crm_latin", "options": {"encoding": "latin-1"}}
    loaded, source, workspace = setup(tmp_path / "latin", latin, {"crm/a.csv": content})
    report = ingest(loaded, source, workspace)
    lake = rows_by_id(workspace, "crm_latin")
    assert report.rows_ingested == 3 and report.rows_quarantined == 0
    assert (lake["002"]["first_name"], lake["002"]["last_name"]) == ("Renée", "Müller")


def test_duplicate_key_in_file_quarantines_the_later_row(tmp_path: Path) -> None:
    content = (
        HEADER
        + "001,Ann,Lee,02134,2024-01-01T10:00:00Z,yes\n"
        + "002,Bob,Ray,02135,2024-01-01T10:00:00Z,no\n"
        + "001,Anne,Lee,02134,2024-01-05T10:00:00Z,yes\n"
    )
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    report = ingest(loaded, source, workspace)

    assert rows_by_id(workspace, "crm")["001"]["first_name"] == "Ann"
    (row,) = read_quarantine(workspace, "crm").to_pylist()
    assert row["_source_line"] == 4
    assert row["reason"] == "duplicate record key (first seen on line 2)"
    assert report.quarantine_reasons == {"duplicate record key": 1}


def test_a_bad_first_row_does_not_make_the_good_repeat_a_duplicate(tmp_path: Path) -> None:
    content = (
        HEADER
        + "001,Ann,Lee,02134,not a date,yes\n"
        + "001,Ann,Lee,02134,2024-01-01T10:00:00Z,yes\n"
    )
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    ingest(loaded, source, workspace)

    assert rows_by_id(workspace, "crm")["001"]["_source_line"] == 3
    (row,) = read_quarantine(workspace, "crm").to_pylist()
    assert row["_source_line"] == 2 and "unparseable timestamp" in row["reason"]


def test_leading_zeros_and_text_survive(tmp_path: Path) -> None:
    content = HEADER + "000123,  Ann ,Lee,02134,2024-01-01T10:00:00Z,yes\n"
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    ingest(loaded, source, workspace)

    row = rows_by_id(workspace, "crm")["000123"]
    assert row["postal_code"] == "02134"
    assert row["loyalty_id"] == "000123"
    assert row["first_name"] == "Ann"  # stripped


def test_list_mapping_joins_non_empty_parts_with_single_spaces(tmp_path: Path) -> None:
    source = {
        **PEOPLE,
        "mapping": {"street_address": ["house", "street", "unit"], "full_name": ["first", "last"]},
        "identifiers": {},
    }
    content = (
        "customer_number,house,street,unit,first,last\n"
        "1,12,Main St,,Ann,Lee\n"
        "2,,Elm Rd, Apt 4 ,Bob,\n"
        "3,,,,,\n"
    )
    loaded, source_config, workspace = setup(tmp_path, source, {"crm/a.csv": content})
    ingest(loaded, source_config, workspace)

    lake = rows_by_id(workspace, "crm")
    assert lake["1"]["street_address"] == "12 Main St"
    assert lake["2"]["street_address"] == "Elm Rd Apt 4"
    assert lake["2"]["full_name"] == "Bob"
    assert lake["3"]["street_address"] is None and lake["3"]["full_name"] is None


def test_unmapped_columns_are_kept_as_passthrough(tmp_path: Path) -> None:
    content = (
        "customer_number,first_name,last_name,zip,signup,email_ok,tier,notes\n"
        "001,Ann,Lee,02134,2024-01-01T10:00:00Z,yes,gold,  likes tea \n"
        "002,Bob,Ray,02135,2024-01-01T10:00:00Z,no,,\n"
    )
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    ingest(loaded, source, workspace)

    lake = rows_by_id(workspace, "crm")
    assert dict(lake["001"]["passthrough"]) == {"tier": "gold", "notes": "likes tea"}
    assert dict(lake["002"]["passthrough"]) == {}


def test_missing_mapped_column_quarantines_every_row(tmp_path: Path) -> None:
    content = (
        "customer_number,first_name,last_name,signup,email_ok\n"
        "001,Ann,Lee,2024-01-01T10:00:00Z,yes\n"
        "002,Bob,Ray,2024-01-01T10:00:00Z,no\n"
    )
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    report = ingest(loaded, source, workspace)

    assert (report.rows_read, report.rows_ingested, report.rows_quarantined) == (2, 0, 2)
    reasons = [q["reason"] for q in read_quarantine(workspace, "crm").to_pylist()]
    assert reasons == ["missing column 'zip' (mapped to field 'postal_code')"] * 2
    assert report.files[0].reason == "missing column 'zip' (mapped to field 'postal_code')"


def test_duplicate_header_column_quarantines_every_row(tmp_path: Path) -> None:
    content = HEADER.replace("email_ok", "zip") + "001,Ann,Lee,02134,2024-01-01T10:00:00Z,x\n"
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    report = ingest(loaded, source, workspace)

    assert report.rows_quarantined == 1 and report.rows_ingested == 0
    assert "header has column 'zip' more than once" in report.files[0].reason


def test_quoted_multiline_records_keep_their_first_line(tmp_path: Path) -> None:
    source = {**PEOPLE, "mapping": {"street_address": "street"}, "identifiers": {}}
    content = (
        "customer_number,street,notes\r\n"
        '1,"12 Main St\r\nApt 4","said ""hi"", twice"\r\n'
        "\r\n"
        '2,"Elm, Rd",x\r\n'
        '3,"Oak\nAve","multi\nline\nnote"\r\n'
        "4,Pine,y"  # no newline at the end
    )
    loaded, source_config, workspace = setup(tmp_path, source, {"crm/a.csv": content})
    ingest(loaded, source_config, workspace)

    lake = rows_by_id(workspace, "crm")
    assert {k: v["_source_line"] for k, v in lake.items()} == {"1": 2, "2": 5, "3": 6, "4": 10}
    assert lake["1"]["street_address"] == "12 Main St\r\nApt 4"
    assert dict(lake["1"]["passthrough"]) == {"notes": 'said "hi", twice'}
    assert dict(lake["3"]["passthrough"]) == {"notes": "multi\nline\nnote"}


CSV_CASES = [
    # BOM, CRLF, blank and whitespace-only lines, quoted delimiters and newlines, bad counts
    b'\xef\xbb\xbfid,a,b\r\n1,"x, y",z\r\n\r\n   \r\n2,"multi\r\nline",q\r\n'
    b"3,short\r\n4,a,b,c\r\n5,,\r\n",
    b'id,a,b\n1,"he said ""no""",2\n2,x,"y\n\nz"\n\n3,4,5',
    b"id;a;b\n1;2;3\n4;5\n",
]


@pytest.mark.parametrize("content", CSV_CASES)
def test_fast_and_careful_csv_paths_agree(content: bytes) -> None:
    options = SourceOptions(delimiter=";" if b";" in content else ",")
    fast = _csv_fast(content.removeprefix(b"\xef\xbb\xbf"), options)
    careful = _csv_slow(content, options)

    assert fast is not None  # the vectorised path really ran

    assert list(fast.columns) == list(careful.columns)
    for name in fast.columns:
        assert fast.columns[name].to_pylist() == careful.columns[name].to_pylist(), name
    assert fast.lines.tolist() == careful.lines.tolist()
    assert [(r.line, r.reason, r.raw) for r in fast.rejected] == [
        (r.line, r.reason, r.raw) for r in careful.rejected
    ]
    assert [fast.raw(i) for i in range(fast.num_rows)] == [
        careful.raw(i) for i in range(careful.num_rows)
    ]


def test_irregular_quotes_take_the_careful_path_without_loss(tmp_path: Path) -> None:
    source = {**PEOPLE, "mapping": {"street_address": "street"}, "identifiers": {}}
    content = 'customer_number,street\n1,5" screen st\n2,"ok"\n3,a "quoted" word\n'
    loaded, source_config, workspace = setup(tmp_path, source, {"crm/a.csv": content})
    report = ingest(loaded, source_config, workspace)

    lake = rows_by_id(workspace, "crm")
    assert report.rows_ingested == 3
    assert lake["1"]["street_address"] == '5" screen st'
    assert lake["3"]["street_address"] == 'a "quoted" word'


def test_timestamps_dates_and_custom_formats(tmp_path: Path) -> None:
    source = {
        **PEOPLE,
        "mapping": {"signed_up_at": "signup", "updated_at": "changed", "birth_date": "born"},
        "identifiers": {},
        "options": {"timestamp_format": "%d/%m/%Y %H:%M", "default_timezone": "Europe/Paris"},
    }
    content = (
        "customer_number,signup,changed,born\n"
        "1,31/01/2024 10:30,15/07/2024 08:00,1990-13-45\n"  # birth_date stays text
        "2,2024-01-31T10:30:00Z,,\n"  # not in the configured format
    )
    loaded, source_config, workspace = setup(tmp_path, source, {"crm/a.csv": content})
    ingest(loaded, source_config, workspace)

    table = read_lake(workspace, "crm")
    assert table.schema.field("signed_up_at").type == pa.timestamp("us", tz="UTC")
    (row,) = table.to_pylist()
    assert row["signed_up_at"] == datetime(2024, 1, 31, 9, 30, tzinfo=UTC)  # CET is UTC+1
    assert row["updated_at"] == datetime(2024, 7, 15, 6, 0, tzinfo=UTC)  # CEST is UTC+2
    assert row["birth_date"] == "1990-13-45"
    (bad,) = read_quarantine(workspace, "crm").to_pylist()
    assert "expected format '%d/%m/%Y %H:%M'" in bad["reason"]


def test_custom_boolean_values_and_date_only_timestamps(tmp_path: Path) -> None:
    source = {
        "name": "consents",
        "kind": "consents",
        "format": "csv",
        "path": "c/*.csv",
        "record_key": "id",
        "mapping": {"channel": "ch", "is_granted": "ok", "changed_at": "at"},
        "options": {"true_values": ["granted"], "false_values": ["revoked"]},
    }
    content = "id,ch,ok,at\n1,email,GRANTED,2024-02-01\n2,sms,revoked,2024-02-02T00:00:00+01:00\n"
    loaded, source_config, workspace = setup(tmp_path, source, {"c/a.csv": content})
    ingest(loaded, source_config, workspace)

    lake = rows_by_id(workspace, "consents")
    assert lake["1"]["is_granted"] is True and lake["2"]["is_granted"] is False
    assert lake["1"]["changed_at"] == datetime(2024, 2, 1, tzinfo=UTC)
    assert lake["2"]["changed_at"] == datetime(2024, 2, 1, 23, 0, tzinfo=UTC)


def test_unclosed_quote_is_reported_per_physical_line(tmp_path: Path) -> None:
    # Line 3 opens a quote that never closes: the csv module alone would fold lines 3-6 into
    # one record and report a misleading field count for it.
    content = (
        HEADER
        + "001,Ann,Lee,02134,2024-01-01T10:00:00Z,yes\n"
        + '002,"Bob,Ray,02135,2024-01-01T10:00:00Z,no\n'
        + "003,Cy,Li,02136,2024-01-02T10:00:00Z,no\n"
        + "004,Di,Wu,02137,2024-01-03T10:00:00Z,yes\n"
        + "005,Ed,Ng,02138,2024-01-04T10:00:00Z,yes\n"
    )
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    report = ingest(loaded, source, workspace)

    assert (report.rows_read, report.rows_ingested, report.rows_quarantined) == (5, 4, 1)
    assert {k: v["_source_line"] for k, v in rows_by_id(workspace, "crm").items()} == {
        "001": 2,
        "003": 4,
        "004": 5,
        "005": 6,
    }
    (row,) = read_quarantine(workspace, "crm").to_pylist()
    assert row["_source_line"] == 3
    assert row["reason"] == (
        "malformed CSV line: unclosed quote starting at line 3 (it runs to the end of the file)"
    )
    assert row["raw"] == '002,"Bob,Ray,02135,2024-01-01T10:00:00Z,no'
    assert report.quarantine_reasons == {"malformed CSV line: unclosed quote": 1}


def test_a_runaway_quote_in_the_last_column_does_not_swallow_the_file(tmp_path: Path) -> None:
    # The stray quote opens the last field, so the folded record even has the right field
    # count: today it is ingested as one row whose consent value holds four lines.
    content = (
        HEADER
        + '001,Ann,Lee,02134,2024-01-01T10:00:00Z,"yes\n'
        + "002,Bob,Ray,02135,2024-01-01T10:00:00Z,no\n"
        + "003,Cy,Li,02136,2024-01-02T10:00:00Z,no\n"
    )
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    report = ingest(loaded, source, workspace)

    assert set(rows_by_id(workspace, "crm")) == {"002", "003"}
    assert (report.rows_read, report.rows_quarantined) == (3, 1)
    assert reasons_by_line(workspace) == {
        2: "malformed CSV line: unclosed quote starting at line 2 (it runs to the end of the file)"
    }


def test_lines_swallowed_by_a_runaway_quote_are_judged_one_by_one(tmp_path: Path) -> None:
    source = {**PEOPLE, "mapping": {"street_address": "street", "city": "city"}, "identifiers": {}}
    content = (
        "customer_number,street,city\n"
        '1,"12 Main St,Boston\n'  # line 2: opens a quote that a later stray quote "closes"
        "2,Elm Rd,Austin\n"  # line 3: swallowed, but a clean record: ingested
        '3,Oak Ave,Den"ver\n'  # line 4: swallowed, with a quote out of place: quarantined
        '4,"Pine\nSt",Miami\n'  # lines 5-6: a well-formed multi-line record after the damage
        "5,Elm Rd\n"  # line 7: an ordinary short record
        '6,"Bay Rd,Rome\n'  # line 8: another quote open at the end of the file
    )
    loaded, source_config, workspace = setup(tmp_path, source, {"crm/a.csv": content})
    report = ingest(loaded, source_config, workspace)

    lake = rows_by_id(workspace, "crm")
    assert {k: v["_source_line"] for k, v in lake.items()} == {"2": 3, "4": 5}
    assert lake["4"]["street_address"] == "Pine\nSt"
    assert reasons_by_line(workspace) == {
        2: "malformed CSV line: unclosed quote starting at line 2 (it runs on to line 4)",
        4: "malformed CSV line: unclosed quote starting at line 2",
        7: "malformed CSV line: expected 3 fields, found 2",
        8: "malformed CSV line: unclosed quote starting at line 8 (it runs to the end of the file)",
    }
    # Every record is counted: 6 on the 7 lines after the header (one spans two lines).
    assert (report.rows_read, report.rows_ingested, report.rows_quarantined) == (6, 2, 4)


def test_a_quoted_field_running_into_a_bad_record_is_split_per_line(tmp_path: Path) -> None:
    source = {**PEOPLE, "mapping": {"street_address": "street", "city": "city"}, "identifiers": {}}
    content = 'customer_number,street,city\n1,"12 Main\nApt 4",Boston,extra\n2,Elm,Austin\n'
    loaded, source_config, workspace = setup(tmp_path, source, {"crm/a.csv": content})
    report = ingest(loaded, source_config, workspace)

    assert set(rows_by_id(workspace, "crm")) == {"2"}
    assert reasons_by_line(workspace) == {
        2: "malformed CSV line: the quoted field starting at line 2 runs on to line 3 and "
        "leaves 4 fields, expected 3",
        3: "malformed CSV line: inside the quoted field starting at line 2",
    }
    assert report.rows_read == 3


def test_an_unclosed_quote_in_the_header_quarantines_every_line(tmp_path: Path) -> None:
    content = (
        'customer_number,"first_name,last_name,zip,signup,email_ok\n001,Ann,Lee\n002,Bob,Ray\n'
    )
    loaded, source, workspace = setup(tmp_path, PEOPLE, {"crm/a.csv": content})
    report = ingest(loaded, source, workspace)

    assert (report.rows_read, report.rows_quarantined) == (2, 2)
    assert report.files[0].reason == "header (line 1) has an unclosed quote; fix the header line"


def reasons_by_line(workspace: Workspace) -> dict[int, str]:
    return {q["_source_line"]: q["reason"] for q in read_quarantine(workspace, "crm").to_pylist()}
