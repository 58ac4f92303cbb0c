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

Records above ``max_row_bytes`` are rejected here, before any parser builds values from them
(a JSON line with a million keys never becomes a million columns). A CSV quote that never
closes properly is reported per physical line: the line that opens it is rejected, and each
line it swallowed is judged again on its own (see :func:`_csv_records`).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import io
import json
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from dagster_project.lib.config import IngestLimits, SourceOptions
from dagster_project.lib.ingest.limits import (
    can_scan,
    json_values,
    record_too_large,
    show_name,
)

#: Bytes not valid in the file's encoding survive a surrogateescape decode as these.
_SURROGATE = re.compile("[\udc80-\udcff]")
_RAW_LIMIT = 10_000
_CHUNK = 1 << 23
_NEWLINE, _CR, _QUOTE = 10, 13, 34
_WHITESPACE_BYTES = np.frombuffer(b" \t\r\x0b\x0c", np.uint8)
#: Above this many lines to skip, the JSON extraction anti-joins a table instead of an IN list.
_IN_LIST_LIMIT = 1000
DEFAULT_LIMITS = IngestLimits()
DUPLICATE_COLUMN = "duplicate column in header"
_UNCLOSED_QUOTE = "malformed CSV line: unclosed quote"


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
    row_errors: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
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
    limits: IngestLimits = DEFAULT_LIMITS,
) -> RawBatch:
    """Read one file's bytes; ``wanted`` names the columns the config maps (for nested JSON keys).

    Raises UnreadableFileError when nothing in the file can be read.
    """
    if file_format == "csv":
        return read_csv(data, options, limits)
    if file_format == "jsonl":
        return read_jsonl(data, options, con, wanted, limits)
    if file_format == "parquet":
        return read_parquet(data, limits)
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
            DUPLICATE_COLUMN,
            f"header has column '{duplicated[0]}' more than once; give every column its own name",
        )
    return names, None


# --- CSV ---------------------------------------------------------------------------------------


def read_csv(
    data: bytes, options: SourceOptions, limits: IngestLimits = DEFAULT_LIMITS
) -> RawBatch:
    """CSV with a header row; quoted fields may span lines (the record's first line counts)."""
    body = _utf8_body(data, options.encoding)
    if body is not None:
        batch = _csv_fast(body, options, limits)
        if batch is not None:
            return batch
    return _csv_slow(data, options, limits)


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


def _named(names: list[str], values: list[str]) -> dict[str, str]:
    """A parsed record's values by column name (extra values get positional names)."""
    return {
        names[i] if i < len(names) else f"_column_{i + 1}": value for i, value in enumerate(values)
    }


def _too_large_csv(
    text: str, size: int, names: list[str], delimiter: str, limits: IngestLimits
) -> tuple[str, str]:
    """The rejection of a CSV record above max_row_bytes, naming its overlong columns."""
    values = None
    if can_scan(size):
        with _csv_field_limit(size), contextlib.suppress(csv.Error):
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            values = _named(names, next(reader, []))
    return record_too_large(size, limits, values)


def _without_ranges(body: bytes, begin: np.ndarray, end: np.ndarray) -> bytes:
    """``body`` with the byte ranges [begin, end) cut out (sorted, not overlapping)."""
    marks = np.zeros(len(body) + 1, dtype=np.int64)
    np.add.at(marks, begin, 1)
    np.add.at(marks, end, -1)
    keep = np.cumsum(marks[:-1]) == 0
    return np.frombuffer(body, dtype=np.uint8)[keep].tobytes()


def _csv_fast(
    body: bytes, options: SourceOptions, limits: IngestLimits = DEFAULT_LIMITS
) -> RawBatch | None:
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
    sizes = content_stops - starts
    first_lines = 1 + np.searchsorted(newlines, starts)

    delimiters = _positions(buf, delimiter)
    if len(quotes):
        delimiters = delimiters[~_inside_quotes(delimiters, quotes)]
    fields = np.bincount(np.searchsorted(stops, delimiters), minlength=len(starts)) + 1
    spans_lines = np.zeros(len(starts), dtype=bool)
    if multiline:
        spans_lines[np.searchsorted(stops, newlines[inside])] = True
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
    with _csv_field_limit(int(sizes[head])):
        header = next(csv.reader(header_text, delimiter=options.delimiter))
    if len(header) != fields[head]:
        return None
    names, problem = _header_names(header)
    if sizes[head] > limits.max_row_bytes:
        problem = _header_too_large(int(sizes[head]), int(first_lines[head]), limits)
    # A lone whitespace field is a blank line only when more than one field is expected.
    blank = empty | whitespace_only if len(names) > 1 else empty

    # Records above max_row_bytes never reach pyarrow, blank or not: it is not given them.
    later = np.arange(head + 1, len(starts))
    cut = later[sizes[later] > limits.max_row_bytes]
    rows = later[~blank[later]]
    too_large = sizes[rows] > limits.max_row_bytes
    wrong = (fields[rows] != len(names)) & ~too_large
    if (wrong & spans_lines[rows]).any():
        return None  # a quoted field ran over lines into a bad record: judge line by line
    rejected = [
        Rejected(
            int(first_lines[r]),
            *_too_large_csv(record_text(int(r)), int(sizes[r]), names, options.delimiter, limits),
            raw_text(record_text(int(r)), "utf-8"),
        )
        for r in rows[too_large]
    ]
    rejected += [
        Rejected(
            int(first_lines[r]),
            "malformed CSV line",
            f"malformed CSV line: expected {len(names)} fields, found {fields[r]}",
            raw_text(record_text(int(r)), "utf-8"),
        )
        for r in rows[wrong]
    ]
    rejected.sort(key=lambda r: r.line)
    good = rows[~(wrong | too_large)]
    table = None
    if len(good):
        # pyarrow skips exactly the records classified above (wrong field count, whitespace
        # only); the counts are checked so a disagreement sends the file to the careful path.
        payload_start = int(starts[head + 1])
        data = body
        if len(cut):
            data = _without_ranges(body, starts[cut], np.minimum(stops[cut] + 1, size))
        payload = pa.py_buffer(data).slice(payload_start)
        kept_blank = whitespace_only[head + 1 :] & (sizes[head + 1 :] <= limits.max_row_bytes)
        skipped = int(wrong.sum()) + int(kept_blank.sum()) * (len(names) > 1)
        table, invalid = _arrow_csv(payload, len(names), options.delimiter, multiline, limits)
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


def _header_too_large(size: int, line: int, limits: IngestLimits) -> tuple[str, str]:
    return (
        "header too large",
        f"header too large: line {line} is {size:,} bytes (max_row_bytes is "
        f"{limits.max_row_bytes}); raise sources.<name>.ingest.max_row_bytes if it is right",
    )


def _arrow_csv(
    payload: pa.Buffer, ncols: int, delimiter: str, multiline: bool, limits: IngestLimits
) -> tuple[pa.Table, int]:
    """All fields as text (empty stays ''), and how many rows pyarrow skipped as invalid."""
    names = [f"c{i}" for i in range(ncols)]
    invalid: list[object] = []

    def on_invalid(row: object) -> str:
        invalid.append(row)
        return "skip"

    # A block must hold the largest record: pyarrow refuses a row that straddles two blocks.
    block_size = max(1 << 24, 2 * limits.max_row_bytes + 2)
    table = pa_csv.read_csv(
        pa.BufferReader(payload),
        read_options=pa_csv.ReadOptions(column_names=names, block_size=block_size),
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


@contextlib.contextmanager
def _csv_field_limit(size: int) -> Iterator[None]:
    """Let the csv module read fields up to ``size`` (its default stops at 131,072)."""
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, size + len(_EOF_LINE) + 1))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


#: Appended after the last line: a field that swallows it had a quote still open at the end.
_EOF_LINE = "\x00cdp-end-of-file\x00"


@dataclass
class _CsvRecord:
    """A record the csv module read (lines are 1-based, inclusive), or why it was rejected."""

    first: int
    last: int
    values: list[str] | None
    rejection: tuple[str, str] | None = None


@functools.lru_cache(maxsize=16)
def _record_pattern(delimiter: str, strict: bool) -> re.Pattern[str]:
    """A whole record of well-formed fields: quoted (doubled quotes inside) or unquoted.

    Lenient unquoted fields may hold a quote after their first character (``5" screen``), as
    the csv module reads them; strict ones hold no quote at all.
    """
    d = re.escape(delimiter)
    quoted = r'"[^"]*(?:""[^"]*)*"'
    unquoted = f'[^"{d}\\r\\n]*' if strict else f'(?:[^"{d}\\r\\n][^{d}\\r\\n]*)?'
    one = f"(?:{quoted}|{unquoted})"
    return re.compile(f"{one}(?:{d}{one})*(?:\\r\\n|\\n|\\r)?")


def _well_formed(text: str, delimiter: str, strict: bool) -> bool:
    return _record_pattern(delimiter, strict).fullmatch(text) is not None


def _lines_from(lines: list[str], start: int) -> Iterator[str]:
    yield from (lines[i] for i in range(start, len(lines)))
    yield _EOF_LINE


def _csv_records(lines: list[str], start: int, delimiter: str, ncols: int) -> list[_CsvRecord]:
    """Records from physical line ``start`` (0-based) on, with runaway quotes contained.

    A record may span lines only through a quoted field, and then it must be well-formed: its
    quotes close before a delimiter or the line end, it has ``ncols`` fields and it ends before
    the file does. A record that spans lines otherwise (a stray quote, a quote still open at the
    end of the file) is not a record: its first line, where the quote opened, is rejected and
    reading starts again on the next line. The lines it had swallowed are then judged on their
    own, strictly: a line holding no quote, or only well-formed quoted fields, is an ordinary
    record (good lines after the damage are ingested); a line with a quote out of place is
    rejected as part of the damage ("unclosed quote starting at line N"). No line is lost or
    silently merged into its neighbour, and ``rows_read`` counts the lines the file really had.

    Each line is read about twice at most: a runaway stops at the next quote character.
    """
    records: list[_CsvRecord] = []
    total = len(lines)
    position = start
    suspect_until = -1
    swallowed = (_UNCLOSED_QUOTE, _UNCLOSED_QUOTE)
    while position < total:
        reader = csv.reader(_lines_from(lines, position), delimiter=delimiter)
        consumed = 0
        while True:
            first = position + consumed
            error = None
            try:
                values: list[str] | None = next(reader)
            except StopIteration:
                return records
            except csv.Error as exc:
                values, error = None, str(exc)
            consumed = reader.line_num
            if first >= total:  # the end marker itself
                return records
            at_end = position + consumed - 1 >= total
            last = min(position + consumed - 1, total - 1)
            suspect = first <= suspect_until
            if last == first and not at_end:  # one line: nothing swallowed
                if error is not None:
                    reason = f"malformed CSV line: {error}"
                    records.append(
                        _CsvRecord(first + 1, last + 1, None, ("malformed CSV line", reason))
                    )
                elif suspect and not _well_formed(lines[first], delimiter, strict=True):
                    records.append(_CsvRecord(first + 1, last + 1, None, swallowed))
                else:
                    records.append(_CsvRecord(first + 1, last + 1, values))
                continue
            text = "".join(lines[first : last + 1])
            well_formed = not at_end and _well_formed(text, delimiter, strict=suspect)
            if error is None and values is not None and well_formed and len(values) == ncols:
                records.append(_CsvRecord(first + 1, last + 1, values))
                continue
            # The record ran over lines it should not have: reject its first line only.
            opened = f"starting at line {first + 1}"
            if at_end:
                rejection = (
                    _UNCLOSED_QUOTE,
                    f"{_UNCLOSED_QUOTE} {opened} (it runs to the end of the file)",
                )
                swallowed = (_UNCLOSED_QUOTE, f"{_UNCLOSED_QUOTE} {opened}")
            elif error is not None or not well_formed:
                detail = error or f"it runs on to line {last + 1}"
                rejection = (_UNCLOSED_QUOTE, f"{_UNCLOSED_QUOTE} {opened} ({detail})")
                swallowed = (_UNCLOSED_QUOTE, f"{_UNCLOSED_QUOTE} {opened}")
            else:
                found = len(values) if values is not None else 0
                rejection = (
                    "malformed CSV line",
                    f"malformed CSV line: the quoted field {opened} runs on to line {last + 1} "
                    f"and leaves {found} fields, expected {ncols}",
                )
                swallowed = (
                    "malformed CSV line",
                    f"malformed CSV line: inside the quoted field {opened}",
                )
            records.append(_CsvRecord(first + 1, first + 1, None, rejection))
            suspect_until = max(suspect_until, last)
            position = first + 1
            break
    return records


def _csv_header(
    lines: list[str], delimiter: str, rejected: list[Rejected], encoding: str
) -> tuple[int, int, list[str], tuple[str, str] | None] | None:
    """(first and last line of the header, 0-based; its values; a problem), None if absent."""
    reader = csv.reader(_lines_from(lines, 0), delimiter=delimiter)
    consumed = 0
    while True:
        first = consumed
        try:
            values = next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            consumed = reader.line_num
            raw = raw_text("".join(lines[first:consumed]).rstrip("\r\n"), encoding)
            reason = f"malformed CSV line: {exc}"
            rejected.append(Rejected(first + 1, "malformed CSV line", reason, raw))
            continue
        consumed = reader.line_num
        if first >= len(lines):
            return None
        if _is_blank(values, 2):
            continue
        at_end = consumed - 1 >= len(lines)
        last = min(consumed - 1, len(lines) - 1)
        if not at_end and (
            last == first or _well_formed("".join(lines[first : last + 1]), delimiter, False)
        ):
            return first, last, values, None
        # The header's own quote never closes: read its line alone, quarantine every row.
        try:
            values = next(csv.reader([lines[first]], delimiter=delimiter), [])
        except csv.Error:
            values = [lines[first].rstrip("\r\n")]
        problem = (
            "malformed CSV header",
            f"header (line {first + 1}) has an unclosed quote; fix the header line",
        )
        return first, first, values, problem


def _csv_slow(
    data: bytes, options: SourceOptions, limits: IngestLimits = DEFAULT_LIMITS
) -> RawBatch:
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
    delimiter = options.delimiter

    def raw_lines(start: int, end: int) -> str:
        return raw_text("".join(lines[start - 1 : end]).rstrip("\r\n"), options.encoding)

    rejected: list[Rejected] = []
    with _csv_field_limit(limits.max_row_bytes):
        header = _csv_header(lines, delimiter, rejected, options.encoding)
        if header is None:
            return _empty(fixed_columns=True, rejected=rejected)
        header_first, header_last, header_values, problem = header
        names, duplicate = _header_names(header_values)
        problem = problem or duplicate
        records = _csv_records(lines, header_last + 1, delimiter, len(names))

    # Sizes as UTF-8 bytes, line ending excluded: what the fast path measures.
    line_bytes = np.fromiter(
        (len(line.encode("utf-8", "surrogateescape")) for line in lines), np.int64, len(lines)
    )
    cumulative = np.concatenate([[0], np.cumsum(line_bytes)])

    def size_of(first: int, last: int) -> int:
        ending = lines[last - 1]
        return int(cumulative[last] - cumulative[first - 1]) - (
            len(ending) - len(ending.rstrip("\r\n"))
        )

    header_size = size_of(header_first + 1, header_last + 1)
    if header_size > limits.max_row_bytes:
        problem = _header_too_large(header_size, header_first + 1, limits)
    header_raw = "".join(lines[header_first : header_last + 1])
    if has_bad_bytes and _SURROGATE.search(header_raw):
        kind, reason = _encoding_problem(header_raw, options.encoding)
        problem = (kind, "header " + reason)
        names = [raw_text(name, options.encoding) for name in names]

    ncols = len(names)
    kept: list[_CsvRecord] = []
    for record in records:
        if record.values is None:
            assert record.rejection is not None
            kind, reason = record.rejection
            size = size_of(record.first, record.last)
            if record.first == record.last and size > limits.max_row_bytes:
                # e.g. the csv module's own field limit: the record's size is the real problem
                text = lines[record.first - 1].rstrip("\r\n")
                kind, reason = _too_large_csv(text, size, names, delimiter, limits)
            raw = raw_lines(record.first, record.last)
            rejected.append(Rejected(record.first, kind, reason, raw))
            continue
        if _is_blank(record.values, ncols):
            continue
        size = size_of(record.first, record.last)
        record_text = "".join(lines[record.first - 1 : record.last]) if has_bad_bytes else ""
        if size > limits.max_row_bytes:
            values = _named(names, record.values) if can_scan(size) else None
            kind, reason = record_too_large(size, limits, values)
        elif _SURROGATE.search(record_text):
            kind, reason = _encoding_problem(record_text, options.encoding)
        elif len(record.values) != ncols:
            kind = "malformed CSV line"
            reason = f"malformed CSV line: expected {ncols} fields, found {len(record.values)}"
        else:
            kept.append(record)
            continue
        rejected.append(Rejected(record.first, kind, reason, raw_lines(record.first, record.last)))
    rejected.sort(key=lambda r: r.line)

    transposed = list(zip(*(r.values for r in kept), strict=True)) if kept else [() for _ in names]
    columns = {
        name: pa.array(list(col), pa.string()) for name, col in zip(names, transposed, strict=True)
    }
    kept_starts = np.asarray([r.first for r in kept], dtype=np.int64)
    kept_ends = np.asarray([r.last for r in kept], dtype=np.int64)
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


# --- JSONL -------------------------------------------------------------------------------------


def _json_path(*keys: str) -> str:
    """A DuckDB JSON path naming each key literally (dots and quotes inside keys are fine)."""
    parts = ['"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in keys]
    return "$." + ".".join(parts)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def read_jsonl(
    data: bytes,
    options: SourceOptions,
    con: duckdb.DuckDBPyConnection,
    wanted: Collection[str],
    limits: IngestLimits = DEFAULT_LIMITS,
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
        sizes = np.diff(offsets)
        if len(sizes):  # the line ending is not part of the record
            ends = offsets[1:]
            newline = buf[ends - 1] == _NEWLINE
            sizes -= newline
            sizes -= newline & (sizes > 0) & (buf[np.maximum(ends - 2, 0)] == _CR)
    else:
        lines, numbers, sizes = _decode_lines(data, options.encoding, rejected)
    lines, numbers = _drop_oversized(lines, numbers, sizes, rejected, options, limits)
    return _json_batch(lines, numbers, rejected, options, con, wanted)


def _drop_oversized(
    lines: pa.Array,
    numbers: np.ndarray,
    sizes: np.ndarray,
    rejected: list[Rejected],
    options: SourceOptions,
    limits: IngestLimits,
) -> tuple[pa.Array, np.ndarray]:
    """Reject lines above max_row_bytes before DuckDB parses them (blank ones are not records)."""
    oversized = sizes > limits.max_row_bytes
    if not oversized.any():
        return lines, numbers
    for i in np.flatnonzero(oversized):
        text = lines[int(i)].as_py().rstrip("\r\n")
        if not text.strip():
            continue
        size = int(sizes[i])
        values = json_values(text) if can_scan(size) else None
        kind, reason = record_too_large(size, limits, values)
        rejected.append(Rejected(int(numbers[i]), kind, reason, raw_text(text, options.encoding)))
    keep = ~oversized
    return lines.filter(pa.array(keep)), numbers[keep]


def _decode_lines(
    data: bytes, encoding: str, rejected: list[Rejected]
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Line by line: a line with bytes invalid in ``encoding`` is rejected, the rest kept.

    Also returns each kept line's size in UTF-8 bytes, line ending excluded.
    """
    if "a\n".encode(encoding) != b"a\n":
        raise UnreadableFileError(
            f"file is not valid {encoding}; set options.encoding to the file's encoding"
        )
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    texts: list[str] = []
    numbers: list[int] = []
    sizes: list[int] = []
    for number, line in enumerate(raw_lines, start=1):
        try:
            text = line.decode(encoding)
        except UnicodeDecodeError:
            escaped = line.decode(encoding, "surrogateescape").rstrip("\r")
            kind, reason = _encoding_problem(escaped, encoding)
            rejected.append(Rejected(number, kind, reason, raw_text(escaped, encoding)))
            continue
        text = text.removeprefix("\ufeff") if number == 1 else text
        texts.append(text)
        numbers.append(number)
        sizes.append(len(text.removesuffix("\r").encode("utf-8")))
    return (
        pa.array(texts, pa.large_string()),
        np.asarray(numbers, dtype=np.int64),
        np.asarray(sizes, dtype=np.int64),
    )


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


def _mapped_parents(wanted: Collection[str]) -> list[tuple[str, ...]]:
    """The objects a dotted mapping reaches into: ``a.b.c`` -> ``a`` and ``a.b``."""
    parents = {
        tuple(name.split(".")[:depth])
        for name in wanted
        if "." in name
        for depth in range(1, name.count(".") + 1)
    }
    return sorted(parents)


def _repeated_key(group_keys: list[Any] | None, parents: list[tuple[str, ...]]) -> str | None:
    """The first key an object in this key group holds twice (dotted when nested), or None."""
    if not group_keys:
        return None
    lists = list(zip([(), *parents], group_keys, strict=True)) if parents else [((), group_keys)]
    for parent, names in lists:
        seen: set[str] = set()
        for name in names or []:
            if name in seen:
                return ".".join([*parent, name])
            seen.add(name)
    return None


def _reject_repeated_keys(
    con: duckdb.DuckDBPyConnection,
    keys_sql: str,
    parents: list[tuple[str, ...]],
    rejected: list[Rejected],
    line_text: Callable[[int], str],
    options: SourceOptions,
) -> list[int]:
    """Reject the lines whose objects hold a key twice; a second pass, only when there are some.

    Keeping the first value (what a JSON parser does) would ingest a guess: the line is
    quarantined, naming the key, and its raw text keeps both values.
    """
    lists = [f"k[{i + 1}]" for i in range(len(parents) + 1)] if parents else ["k"]
    repeats = " or ".join(f"coalesce(len(list_distinct({k})) < len({k}), false)" for k in lists)
    found = con.sql(
        f"select n, k from (select n, {keys_sql} as k from jsonl_lines) where {repeats} order by n"
    ).fetchall()
    numbers: list[int] = []
    for number, group_keys in found:
        name = _repeated_key(group_keys, parents) or "?"
        reason = (
            f"duplicate JSON key {show_name(name)}: the object holds it more than once, so "
            "which value counts is a guess"
        )
        text = raw_text(line_text(number), options.encoding)
        rejected.append(Rejected(number, "duplicate JSON key", reason, text))
        numbers.append(number)
    return numbers


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
        # One pass finds every top-level key (in order of first appearance), the lines that are
        # not objects (few; Python explains them) and, as the key lists are grouped anyway,
        # objects holding a key twice, at the top or where a mapping reaches into.
        parents = _mapped_parents(wanted)
        keys_sql = "try(json_keys(line))"
        if parents:
            path_list = ", ".join(_sql_text(p) for p in ["$", *(_json_path(*q) for q in parents)])
            keys_sql = f"try(json_keys(line, [{path_list}]))"
        top = "k[1]" if parents else "k"
        groups = con.sql(
            f"select k, min(n) as first, list(n) filter (where k is null or len({top}) = 0) "
            f"as odd from (select n, {keys_sql} as k from jsonl_lines) group by k order by first"
        ).fetchall()
        keys: dict[str, None] = {}
        odd: list[int] = []
        repeated = False
        for group_keys, _, group_odd in groups:
            if _repeated_key(group_keys, parents) is not None:
                repeated = True
                continue
            top_keys = group_keys[0] if parents and group_keys else group_keys
            keys.update(dict.fromkeys(top_keys or []))
            odd += group_odd or []
        skip: list[int] = []
        if repeated:
            skip += _reject_repeated_keys(con, keys_sql, parents, rejected, line_text, options)
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


def read_parquet(data: bytes, limits: IngestLimits = DEFAULT_LIMITS) -> RawBatch:
    """Parquet with any column types, every column cast to text; the line is the row number.

    A row's size is the UTF-8 bytes of its values as text (Parquet has no record text).
    """
    if not data:
        return _empty(fixed_columns=True)
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableFileError(f"not a readable Parquet file ({exc})") from exc
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    row_errors: dict[int, list[tuple[str, str]]] = {}
    names = table.column_names
    _, problem = _header_names(names)
    columns = {
        name: _arrow_to_text(name, column.combine_chunks(), row_errors)
        for name, column in zip(names, table.columns, strict=True)
    }
    sizes = np.zeros(table.num_rows, dtype=np.int64)
    for column in columns.values():
        sizes += pc.binary_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    for row in np.flatnonzero(sizes > limits.max_row_bytes):
        values = {name: column[int(row)].as_py() or "" for name, column in columns.items()}
        too_large = record_too_large(int(sizes[row]), limits, values)
        row_errors.setdefault(int(row), []).insert(0, too_large)

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


def _arrow_to_text(
    name: str, array: pa.Array, row_errors: dict[int, list[tuple[str, str]]]
) -> pa.Array:
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
                    problem = (
                        "not valid utf-8",
                        f"column {show_name(name)} holds bytes that are not valid utf-8 text",
                    )
                    row_errors.setdefault(i, []).append(problem)
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
