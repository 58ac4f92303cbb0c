"""Turn a delivered file into columns of text, remembering the line each record starts on.

Every value is read as text first so identifier-like values (postal codes, phone numbers, ids)
keep their leading zeros; typing happens later, a whole column at a time, in ``validate.py``.
Records that cannot become a row (a malformed line, bytes not valid in the file's encoding) are
returned as :class:`Rejected` with their line and raw text, so they reach the quarantine instead
of disappearing.

Speed comes from never building a Python object per value on the common path: CSV record
boundaries and field counts are found with numpy over the raw bytes and the fields parsed by
pyarrow's CSV reader; JSON lines are parsed by DuckDB straight from a zero-copy Arrow array.
Files that are not well-formed take a slower path (the ``csv`` module, a per-line decode) that
finds exactly which records are bad.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from dagster_project.lib.config import SourceOptions

#: Bytes not valid in the file's encoding survive a surrogateescape decode as these.
_SURROGATE = re.compile("[\udc80-\udcff]")
_RAW_LIMIT = 10_000
_CHUNK = 1 << 23
_NEWLINE, _CR, _QUOTE = 10, 13, 34
_WHITESPACE_BYTES = np.frombuffer(b" \t\r\x0b\x0c", np.uint8)
#: Above this many lines to skip, the JSON extraction anti-joins a table instead of an IN list.
_IN_LIST_LIMIT = 1000


class UnreadableFileError(Exception):
    """The file as a whole cannot be read (not Parquet, undecodable encoding)."""


@dataclass(frozen=True)
class Rejected:
    """A record that could not become a row, kept for the quarantine."""

    line: int
    kind: str
    reason: str
    raw: str


@dataclass
class RawBatch:
    """One file's records as text columns, plus what could not be read."""

    columns: dict[str, pa.Array]
    lines: np.ndarray
    raw: Callable[[int], str]
    fixed_columns: bool
    rejected: list[Rejected] = field(default_factory=list)
    row_errors: dict[int, tuple[str, str]] = field(default_factory=dict)
    problem: tuple[str, str] | None = None

    @property
    def num_rows(self) -> int:
        """Records that became rows (valid or not)."""
        return len(self.lines)

    @property
    def rows_read(self) -> int:
        """Every record seen in the file, including rejected ones."""
        return self.num_rows + len(self.rejected)


def read_records(
    data: bytes,
    file_format: str,
    options: SourceOptions,
    con: duckdb.DuckDBPyConnection,
    wanted: Collection[str],
) -> RawBatch:
    """Read one file's bytes; ``wanted`` names the columns the config maps (for nested JSON keys).

    Raises UnreadableFileError when nothing in the file can be read.
    """
    if file_format == "csv":
        return read_csv(data, options)
    if file_format == "jsonl":
        return read_jsonl(data, options, con, wanted)
    if file_format == "parquet":
        return read_parquet(data)
    raise ValueError(f"unknown format {file_format!r}")


def _empty(fixed_columns: bool, rejected: list[Rejected] | None = None) -> RawBatch:
    return RawBatch(
        columns={},
        lines=np.zeros(0, np.int64),
        raw=lambda i: "",
        fixed_columns=fixed_columns,
        rejected=rejected or [],
    )


def raw_text(text: str, encoding: str) -> str:
    """Text safe to store: undecodable bytes shown as \\xNN escapes, long records cut."""
    if _SURROGATE.search(text):
        text = text.encode(encoding, "surrogateescape").decode(encoding, "backslashreplace")
    if len(text) > _RAW_LIMIT:
        text = text[:_RAW_LIMIT] + f"... [{len(text) - _RAW_LIMIT} more characters]"
    return text


def _encoding_problem(text: str, encoding: str) -> tuple[str, str]:
    match = _SURROGATE.search(text)
    byte = f" (byte 0x{ord(match.group()) - 0xDC00:02x})" if match else ""
    return (
        f"not valid {encoding}",
        f"line is not valid {encoding}{byte}; set options.encoding to the file's encoding "
        "(e.g. latin-1)",
    )


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _utf8_body(data: bytes, encoding: str) -> bytes | None:
    """The whole file as UTF-8 without a BOM, or None if some bytes do not decode."""
    if _is_utf8(encoding):
        body = data[3:] if data.startswith(codecs.BOM_UTF8) else data
        offsets = pa.py_buffer(np.array([0, len(body)], dtype=np.int64))
        try:  # Arrow's vectorised UTF-8 check: no Python string for the whole file
            pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(body)).validate(full=True)
        except pa.ArrowInvalid:
            return None
        return body
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    return text.removeprefix("\ufeff").encode("utf-8")


def _positions(buf: np.ndarray, byte: int) -> np.ndarray:
    """Offsets of ``byte`` in ``buf``, a chunk at a time to keep temporaries small."""
    parts = [
        np.flatnonzero(buf[start : start + _CHUNK] == byte) + start
        for start in range(0, len(buf), _CHUNK)
    ]
    return np.concatenate(parts).astype(np.int64, copy=False) if parts else np.zeros(0, np.int64)


def _inside_quotes(positions: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """Which of the sorted ``positions`` fall between an opening and its closing quote."""
    n = len(positions)
    starts = np.searchsorted(positions, quotes[0::2])
    stops = np.searchsorted(positions, quotes[1::2])
    depth = np.bincount(starts, minlength=n + 1) - np.bincount(stops, minlength=n + 1)
    return np.cumsum(depth[:n]) > 0


def _header_names(header: list[str]) -> tuple[list[str], tuple[str, str] | None]:
    names = [name.strip() or f"_column_{i + 1}" for i, name in enumerate(header)]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        return names, (
            "duplicate column in header",
            f"header has column '{duplicated[0]}' more than once; give every column its own name",
        )
    return names, None


# --- CSV ---------------------------------------------------------------------------------------


def read_csv(data: bytes, options: SourceOptions) -> RawBatch:
    """CSV with a header row; quoted fields may span lines (the record's first line counts)."""
    body = _utf8_body(data, options.encoding)
    if body is not None:
        batch = _csv_fast(body, options)
        if batch is not None:
            return batch
    return _csv_slow(data, options)


def _quotes_well_formed(buf: np.ndarray, quotes: np.ndarray, delimiter: int) -> bool:
    """True when every quote opens a field, closes one, or is a doubled quote inside one.

    Then a newline ends a record exactly when an even number of quotes precede it, which is
    what lets the record boundaries be found without a parser.
    """
    size = len(buf)
    openers, closers = quotes[0::2], quotes[1::2]
    before = np.where(openers > 0, buf[np.maximum(openers - 1, 0)], _NEWLINE)
    doubled_open = np.zeros(len(openers), dtype=bool)
    doubled_open[1:] = openers[1:] == closers[:-1] + 1
    opener_ok = (before == delimiter) | (before == _NEWLINE) | doubled_open
    after = np.where(closers < size - 1, buf[np.minimum(closers + 1, size - 1)], _NEWLINE)
    doubled_close = np.zeros(len(closers), dtype=bool)
    doubled_close[:-1] = closers[:-1] + 1 == openers[1:]
    closer_ok = (after == delimiter) | (after == _NEWLINE) | (after == _CR) | doubled_close
    return bool(opener_ok.all() and closer_ok.all())


def _csv_fast(body: bytes, options: SourceOptions) -> RawBatch | None:
    """Vectorised CSV for well-formed quoting; None sends the file to the careful path."""
    delimiter_bytes = options.delimiter.encode("utf-8")
    if len(delimiter_bytes) != 1 or delimiter_bytes in b'"\r\n':
        return None
    delimiter = delimiter_bytes[0]
    buf = np.frombuffer(body, dtype=np.uint8)
    size = len(buf)
    returns = _positions(buf, _CR)
    if len(returns) and not (buf[np.minimum(returns + 1, size - 1)] == _NEWLINE).all():
        return None  # bare carriage returns as line ends: let the csv module decide
    newlines = _positions(buf, _NEWLINE)
    quotes = _positions(buf, _QUOTE)
    multiline = False
    ends = newlines
    if len(quotes):
        if len(quotes) % 2 or not _quotes_well_formed(buf, quotes, delimiter):
            return None
        inside = _inside_quotes(newlines, quotes)
        multiline = bool(inside.any())
        ends = newlines[~inside]
    starts = np.concatenate([[0], ends + 1]).astype(np.int64)
    stops = np.concatenate([ends, [size]]).astype(np.int64)
    if len(starts) and starts[-1] >= size:  # nothing after the final newline
        starts, stops = starts[:-1], stops[:-1]
    if len(starts) == 0:
        return _empty(fixed_columns=True)
    content_stops = stops - ((stops > starts) & (buf[np.maximum(stops - 1, 0)] == _CR))
    first_lines = 1 + np.searchsorted(newlines, starts)

    delimiters = _positions(buf, delimiter)
    if len(quotes):
        delimiters = delimiters[~_inside_quotes(delimiters, quotes)]
    fields = np.bincount(np.searchsorted(stops, delimiters), minlength=len(starts)) + 1
    empty = content_stops == starts
    whitespace_only = np.zeros(len(starts), dtype=bool)
    first_bytes = buf[np.minimum(starts, size - 1)]
    for r in np.flatnonzero(~empty & (fields == 1) & np.isin(first_bytes, _WHITESPACE_BYTES)):
        whitespace_only[r] = not body[starts[r] : content_stops[r]].strip()

    def record_text(r: int) -> str:
        return body[starts[r] : content_stops[r]].decode("utf-8")

    non_blank = np.flatnonzero(~(empty | whitespace_only))
    if len(non_blank) == 0:
        return _empty(fixed_columns=True)
    head = int(non_blank[0])
    header_text = io.StringIO(record_text(head), newline="")
    header = next(csv.reader(header_text, delimiter=options.delimiter))
    if len(header) != fields[head]:
        return None
    names, problem = _header_names(header)
    # A lone whitespace field is a blank line only when more than one field is expected.
    blank = empty | whitespace_only if len(names) > 1 else empty

    rows = np.arange(head + 1, len(starts))
    rows = rows[~blank[rows]]
    wrong = fields[rows] != len(names)
    rejected = [
        Rejected(
            int(first_lines[r]),
            "malformed CSV line",
            f"malformed CSV line: expected {len(names)} fields, found {fields[r]}",
            raw_text(record_text(int(r)), "utf-8"),
        )
        for r in rows[wrong]
    ]
    good = rows[~wrong]
    table = None
    if len(good):
        # pyarrow skips exactly the records classified above (wrong field count, whitespace
        # only); the counts are checked so a disagreement sends the file to the careful path.
        payload = pa.py_buffer(body).slice(int(starts[head + 1]))
        skipped = int(wrong.sum()) + int(whitespace_only[head + 1 :].sum()) * (len(names) > 1)
        table, invalid = _arrow_csv(payload, len(names), options.delimiter, multiline)
        if table.num_rows != len(good) or invalid != skipped:
            return None
    columns = {
        name: table.column(i).combine_chunks() if table is not None else pa.array([], pa.string())
        for i, name in enumerate(names)
    }
    return RawBatch(
        columns=columns,
        lines=first_lines[good],
        raw=lambda i: raw_text(record_text(int(good[i])), "utf-8"),
        fixed_columns=True,
        rejected=rejected,
        problem=problem,
    )


def _arrow_csv(
    payload: pa.Buffer, ncols: int, delimiter: str, multiline: bool
) -> tuple[pa.Table, int]:
    """All fields as text (empty stays ''), and how many rows pyarrow skipped as invalid."""
    names = [f"c{i}" for i in range(ncols)]
    invalid: list[object] = []

    def on_invalid(row: object) -> str:
        invalid.append(row)
        return "skip"

    table = pa_csv.read_csv(
        pa.BufferReader(payload),
        read_options=pa_csv.ReadOptions(column_names=names, block_size=1 << 24),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter,
            quote_char='"',
            double_quote=True,
            escape_char=False,
            newlines_in_values=multiline,
            ignore_empty_lines=True,
            invalid_row_handler=on_invalid,
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    return table, len(invalid)


def _csv_slow(data: bytes, options: SourceOptions) -> RawBatch:
    """The csv module, record by record: exact for bad bytes and irregular quoting."""
    try:
        text = data.decode(options.encoding)
        has_bad_bytes = False
    except UnicodeDecodeError:
        try:
            text, has_bad_bytes = data.decode(options.encoding, "surrogateescape"), True
        except UnicodeDecodeError as exc:
            raise UnreadableFileError(
                f"file is not valid {options.encoding} ({exc.reason} at byte {exc.start}); "
                "set options.encoding to the file's encoding"
            ) from exc
    text = text.removeprefix("\ufeff")
    # The same line splitting the csv module sees, so reader.line_num indexes into it.
    lines = list(io.StringIO(text, newline=""))
    records, starts, ends, rejected = _parse_csv(lines, options.delimiter, options.encoding)

    def raw_lines(start: int, end: int) -> str:
        return raw_text("".join(lines[start - 1 : end]).rstrip("\r\n"), options.encoding)

    header_at = next((i for i, rec in enumerate(records) if not _is_blank(rec, 2)), None)
    if header_at is None:
        return _empty(fixed_columns=True, rejected=rejected)
    names, problem = _header_names(records[header_at])
    header_raw = "".join(lines[starts[header_at] - 1 : ends[header_at]])
    if has_bad_bytes and _SURROGATE.search(header_raw):
        kind, reason = _encoding_problem(header_raw, options.encoding)
        problem = (kind, "header " + reason)
        names = [raw_text(name, options.encoding) for name in names]

    data_records = records[header_at + 1 :]
    starts_arr = np.asarray(starts[header_at + 1 :], dtype=np.int64)
    ends_arr = np.asarray(ends[header_at + 1 :], dtype=np.int64)
    ncols = len(names)
    lengths = np.fromiter(map(len, data_records), dtype=np.int64, count=len(data_records))
    blank = np.array([_is_blank(rec, ncols) for rec in data_records], dtype=bool)
    wrong = (lengths != ncols) & ~blank
    bad_bytes = np.zeros(len(data_records), dtype=bool)
    if has_bad_bytes:
        line_bad = np.fromiter((bool(_SURROGATE.search(s)) for s in lines), bool, len(lines))
        cumulative = np.concatenate([[0], np.cumsum(line_bad)])
        bad_bytes = (cumulative[ends_arr] - cumulative[starts_arr - 1]) > 0
    for i in np.flatnonzero((wrong | bad_bytes) & ~blank):
        if bad_bytes[i]:
            record_text = "".join(lines[starts_arr[i] - 1 : ends_arr[i]])
            kind, reason = _encoding_problem(record_text, options.encoding)
        else:
            kind = "malformed CSV line"
            reason = f"malformed CSV line: expected {ncols} fields, found {lengths[i]}"
        raw = raw_lines(int(starts_arr[i]), int(ends_arr[i]))
        rejected.append(Rejected(int(starts_arr[i]), kind, reason, raw))
    rejected.sort(key=lambda r: r.line)

    kept = np.flatnonzero(~(blank | wrong | bad_bytes))
    rows = [data_records[i] for i in kept]
    transposed = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    columns = {
        name: pa.array(list(col), pa.string()) for name, col in zip(names, transposed, strict=True)
    }
    kept_starts, kept_ends = starts_arr[kept], ends_arr[kept]
    return RawBatch(
        columns=columns,
        lines=kept_starts,
        raw=lambda i: raw_lines(int(kept_starts[i]), int(kept_ends[i])),
        fixed_columns=True,
        rejected=rejected,
        problem=problem,
    )


def _is_blank(record: list[str], ncols: int) -> bool:
    """An empty line, or whitespace only where more than one field is expected."""
    return not record or (len(record) == 1 and ncols > 1 and not record[0].strip())


def _parse_csv(
    lines: list[str], delimiter: str, encoding: str
) -> tuple[list[list[str]], list[int], list[int], list[Rejected]]:
    """Records with their first and last line."""
    records: list[list[str]] = []
    starts: list[int] = []
    ends: list[int] = []
    rejected: list[Rejected] = []
    reader = csv.reader(lines, delimiter=delimiter)
    previous = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raw = raw_text("".join(lines[previous : reader.line_num]).rstrip("\r\n"), encoding)
            rejected.append(
                Rejected(previous + 1, "malformed CSV line", f"malformed CSV line: {exc}", raw)
            )
            previous = reader.line_num
            continue
        records.append(record)
        starts.append(previous + 1)
        ends.append(reader.line_num)
        previous = reader.line_num
    return records, starts, ends, rejected


# --- JSONL -------------------------------------------------------------------------------------


def _json_path(*keys: str) -> str:
    """A DuckDB JSON path naming each key literally (dots and quotes inside keys are fine)."""
    parts = ['"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in keys]
    return "$." + ".".join(parts)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def read_jsonl(
    data: bytes, options: SourceOptions, con: duckdb.DuckDBPyConnection, wanted: Collection[str]
) -> RawBatch:
    """One JSON object per line; a mapped ``a.b`` reaches into nested objects.

    Columns are the top-level keys (nested objects and arrays as JSON text) plus each mapped
    dotted name; values become text (numbers as DuckDB renders them, booleans true/false).
    """
    rejected: list[Rejected] = []
    body = _utf8_body(data, options.encoding)
    if body is not None:
        buf = np.frombuffer(body, dtype=np.uint8)
        offsets = np.concatenate([[0], _positions(buf, _NEWLINE) + 1]).astype(np.int64)
        if offsets[-1] != len(body):
            offsets = np.append(offsets, len(body))
        # Zero-copy: each line keeps its newline, which JSON parsing ignores as whitespace.
        lines = pa.LargeStringArray.from_buffers(
            len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(body)
        )
        numbers = np.arange(1, len(lines) + 1, dtype=np.int64)
    else:
        lines, numbers = _decode_lines(data, options.encoding, rejected)
    return _json_batch(lines, numbers, rejected, options, con, wanted)


def _decode_lines(
    data: bytes, encoding: str, rejected: list[Rejected]
) -> tuple[pa.Array, np.ndarray]:
    """Line by line: a line with bytes invalid in ``encoding`` is rejected, the rest kept."""
    if "a\n".encode(encoding) != b"a\n":
        raise UnreadableFileError(
            f"file is not valid {encoding}; set options.encoding to the file's encoding"
        )
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    texts: list[str] = []
    numbers: list[int] = []
    for number, line in enumerate(raw_lines, start=1):
        try:
            text = line.decode(encoding)
        except UnicodeDecodeError:
            escaped = line.decode(encoding, "surrogateescape").rstrip("\r")
            kind, reason = _encoding_problem(escaped, encoding)
            rejected.append(Rejected(number, kind, reason, raw_text(escaped, encoding)))
            continue
        texts.append(text.removeprefix("\ufeff") if number == 1 else text)
        numbers.append(number)
    return pa.array(texts, pa.large_string()), np.asarray(numbers, dtype=np.int64)


def _json_problem(text: str) -> tuple[str, str] | None:
    """Why a line DuckDB could not read as an object is not a record (None: it is ``{}``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return "malformed JSON line", f"malformed JSON line: {exc.msg} at column {exc.colno}"
    except (ValueError, RecursionError) as exc:
        return "malformed JSON line", f"malformed JSON line: {exc}"
    if isinstance(value, dict):
        return None if not value else ("malformed JSON line", "malformed JSON line")
    kind = type(value).__name__ if value is not None else "null"
    return "malformed JSON line", f"malformed JSON line: expected an object, found {kind}"


def _json_batch(
    lines: pa.Array,
    numbers: np.ndarray,
    rejected: list[Rejected],
    options: SourceOptions,
    con: duckdb.DuckDBPyConnection,
    wanted: Collection[str],
) -> RawBatch:
    if len(lines) == 0:
        return _empty(fixed_columns=False, rejected=rejected)

    def line_text(number: int) -> str:
        position = int(np.searchsorted(numbers, number))
        return lines[position].as_py().rstrip("\r\n")

    con.register("jsonl_lines", pa.table({"n": numbers, "line": lines}))
    registered = ["jsonl_lines"]
    try:
        # One pass finds every top-level key (in order of first appearance) and the lines that
        # are not objects; those are few, and Python explains them.
        groups = con.sql(
            "select k, min(n) as first, list(n) filter (where k is null or len(k) = 0) as odd "
            "from (select n, try(json_keys(line)) as k from jsonl_lines) group by k order by first"
        ).fetchall()
        keys: dict[str, None] = {}
        odd: list[int] = []
        for group_keys, _, group_odd in groups:
            keys.update(dict.fromkeys(group_keys or []))
            odd += group_odd or []
        skip: list[int] = []
        for number in sorted(odd):
            text = line_text(number)
            if not text.strip():
                skip.append(number)  # a blank line is not a record
                continue
            problem = _json_problem(text)
            if problem is not None:
                rejected.append(Rejected(number, *problem, raw_text(text, options.encoding)))
                skip.append(number)
        rejected.sort(key=lambda r: r.line)

        names = list(keys)
        paths = [_json_path(k) for k in names]
        nested = [name for name in wanted if "." in name and name not in keys]
        for name in nested:
            names.append(name)
            paths.append(_json_path(*name.split(".")))
        # A literal dotted key wins; the nested value then stays in its parent's passthrough.
        dotted_literal = [name for name in wanted if "." in name and name in keys]
        fallback = {name: len(paths) + i for i, name in enumerate(dotted_literal)}
        paths += [_json_path(*name.split(".")) for name in dotted_literal]

        if skip and len(skip) > _IN_LIST_LIMIT:
            con.register("jsonl_skip", pa.table({"n": pa.array(skip, pa.int64())}))
            registered.append("jsonl_skip")
            source = "jsonl_lines anti join jsonl_skip using (n)"
            order = " order by n"
        else:
            where = f" where n not in ({', '.join(map(str, skip))})" if skip else ""
            source, order = "jsonl_lines" + where, ""
        if paths:
            path_list = "[" + ", ".join(_sql_text(p) for p in paths) + "]"
            selected = [
                f"coalesce(v[{i + 1}], v[{fallback[name] + 1}]) as c{i}"
                if name in fallback
                else f"v[{i + 1}] as c{i}"
                for i, name in enumerate(names)
            ]
            query = (
                f"select n, {', '.join(selected)} from "
                f"(select n, json_extract_string(line, {path_list}) as v from {source}){order}"
            )
        else:
            query = f"select n from {source}{order}"
        result = con.sql(query).to_arrow_table()
    finally:
        for name in registered:
            con.unregister(name)
    kept = result.column("n").to_numpy().astype(np.int64)
    columns = {
        name: result.column(f"c{i}").combine_chunks().cast(pa.string())
        for i, name in enumerate(names)
    }
    return RawBatch(
        columns=columns,
        lines=kept,
        raw=lambda i: raw_text(line_text(int(kept[i])), options.encoding),
        fixed_columns=False,
        rejected=rejected,
    )


# --- Parquet -----------------------------------------------------------------------------------


def read_parquet(data: bytes) -> RawBatch:
    """Parquet with any column types, every column cast to text; the line is the row number."""
    if not data:
        return _empty(fixed_columns=True)
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableFileError(f"not a readable Parquet file ({exc})") from exc
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    row_errors: dict[int, tuple[str, str]] = {}
    names = table.column_names
    _, problem = _header_names(names)
    columns = {
        name: _arrow_to_text(name, column.combine_chunks(), row_errors)
        for name, column in zip(names, table.columns, strict=True)
    }

    def raw(i: int) -> str:
        record = {name: column[i].as_py() for name, column in columns.items()}
        return raw_text(orjson.dumps(record).decode(), "utf-8")

    return RawBatch(
        columns=columns,
        lines=np.arange(1, table.num_rows + 1, dtype=np.int64),
        raw=raw,
        fixed_columns=True,
        row_errors=row_errors,
        problem=problem,
    )


def _arrow_to_text(name: str, array: pa.Array, row_errors: dict[int, tuple[str, str]]) -> pa.Array:
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        try:
            return array.cast(pa.string())
        except pa.ArrowInvalid:
            texts: list[str | None] = []
            for i, value in enumerate(array.to_pylist()):
                try:
                    texts.append(None if value is None else value.decode("utf-8"))
                except UnicodeDecodeError:
                    row_errors[i] = (
                        "not valid utf-8",
                        f"column '{name}' holds bytes that are not valid utf-8 text",
                    )
                    texts.append(None)
            return pa.array(texts, pa.string())
    if not (
        pa.types.is_nested(kind) or pa.types.is_map(kind) or pa.types.is_fixed_size_binary(kind)
    ):
        try:
            return array.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return pa.array(
        [
            None if value is None else orjson.dumps(value, default=str).decode()
            for value in array.to_pylist()
        ],
        pa.string(),
    )
