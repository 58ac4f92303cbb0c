"""Bounds on what one record may carry: size per value, size per record, no control characters.

A CDP copies delivered values into the lake, resolves identities on them and serves them to
every channel, so one 5 MB "first name" or a NUL byte travels a long way. These checks run on
every value of every format (CSV, JSON lines, Parquet) before a row can reach the lake; a row
that fails is quarantined with a reason naming the column and the limit or character, never
the value itself (reasons end up in metadata and logs; the raw record stays in the quarantine).

Control characters: C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F) are refused,
except TAB, LF and CR: multi-line text is legitimate in a quoted CSV field, a JSON string
(``\\n``) or a Parquet string (addresses, notes), and tabs are ordinary text. Nothing else in
a customer record needs them; NUL in particular truncates strings in C libraries and drivers.

Checks are vectorised: a length kernel per column and three SIMD byte comparisons over each
column's data buffer; the regular expression and Python run only for columns and rows that
hold a suspect (about 3 ms per 50,000 rows of a dozen columns).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dagster_project.lib.config import IngestLimits

#: Refused characters; the same class for Python's re and Arrow's RE2.
CONTROL_PATTERN = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]"
_CONTROL = re.compile(CONTROL_PATTERN)

_ALLOWED_C0 = np.array([0x09, 0x0A, 0x0D], dtype=np.uint8)

_C0_NAMES = (
    *("NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL"),
    *("BS", "HT", "LF", "VT", "FF", "CR", "SO", "SI"),
    *("DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB"),
    *("CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US"),
)
#: Above this, an oversized record is not parsed just to name its long columns.
_NAME_SCAN_LIMIT = 16 * 1024 * 1024
#: Column names come from the delivered file; shown escaped and cut, like any untrusted text.
_NAME_LIMIT = 80

RECORD_TOO_LARGE = "record too large"


def show_name(name: str) -> str:
    """A column or key name as it may appear in a reason: quoted, control characters escaped."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", name)
    if len(text) > _NAME_LIMIT:
        text = text[:_NAME_LIMIT] + "..."
    return f"'{text}'"


def describe_control(char: str) -> str:
    """``U+0000 (NUL)``: the code point and, for C0 and DEL, its usual abbreviation."""
    code = ord(char)
    if code < 0x20:
        return f"U+{code:04X} ({_C0_NAMES[code]})"
    if code == 0x7F:
        return "U+007F (DEL)"
    return f"U+{code:04X} (C1 control)"


def _kind(name: str, problem: str, named: Collection[str]) -> str:
    """The counter key (shown in metadata): it names only columns that cdp.yml names.

    Other names come from the file itself (a headerless CSV, a JSON object keyed by email),
    so they may be values; the reason, kept in the quarantine file, still names them.
    """
    return (
        f"column {show_name(name)}: {problem}" if name in named else f"unmapped column: {problem}"
    )


def _too_long(
    name: str, length: int, limits: IngestLimits, named: Collection[str]
) -> tuple[str, str]:
    return (
        _kind(name, "value too long", named),
        f"column {show_name(name)}: value too long ({length:,} characters; "
        f"max_field_chars is {limits.max_field_chars})",
    )


def _control(name: str, value: str, named: Collection[str]) -> tuple[str, str]:
    match = _CONTROL.search(value)
    described = describe_control(match.group()) if match else "a control character"
    return (
        _kind(name, "control character", named),
        f"column {show_name(name)}: control character {described} at position "
        f"{match.start() + 1 if match else '?'}; remove it from the export or fix the encoding",
    )


def _may_hold_control(data: np.ndarray) -> bool:
    """Whether UTF-8 bytes may encode a refused character (the regex then decides).

    C0 bytes other than TAB/LF/CR, DEL, or 0xC2, the lead byte of U+0080-U+00BF (the C1 block
    and some Latin-1 punctuation). Three SIMD comparisons, no temporary per byte kind.
    """
    low = data < 0x20
    if low.any() and not np.isin(data[low], _ALLOWED_C0).all():
        return True
    return bool((data == 0x7F).any() or (data == 0xC2).any())


def field_problems(
    columns: Mapping[str, pa.Array], limits: IngestLimits, named: Collection[str] = ()
) -> dict[int, list[tuple[str, str]]]:
    """Per row, the (kind, reason) of each value that is too long or holds a control character.

    ``named`` are the columns cdp.yml maps: only those are named in the kind (see ``_kind``).
    """
    problems: dict[int, list[tuple[str, str]]] = {}
    for name, array in columns.items():
        if len(array) == 0 or array.null_count == len(array):
            continue
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            array = array.cast(pa.string())
        # A value longer in characters is longer in bytes: the byte length prefilters for free.
        byte_lengths = pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False)
        for row in np.flatnonzero(byte_lengths > limits.max_field_chars):
            length = len(array[int(row)].as_py())
            if length > limits.max_field_chars:
                problem = _too_long(name, length, limits, named)
                problems.setdefault(int(row), []).append(problem)
        data = array.buffers()[2]
        if data is None or not _may_hold_control(np.frombuffer(data, dtype=np.uint8)):
            continue
        flagged = pc.match_substring_regex(array, CONTROL_PATTERN).fill_null(False)
        for row in np.flatnonzero(flagged.to_numpy(zero_copy_only=False)):
            value = array[int(row)].as_py()
            problems.setdefault(int(row), []).append(_control(name, value, named))
    return problems


def record_too_large(
    size: int, limits: IngestLimits, values: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """(kind, reason) for a record above max_row_bytes, naming its overlong columns if known."""
    reason = f"{RECORD_TOO_LARGE}: {size:,} bytes (max_row_bytes is {limits.max_row_bytes})"
    if values:
        long = [(n, len(v)) for n, v in values.items() if len(v) > limits.max_field_chars]
        if long:
            listed = ", ".join(f"{show_name(n)} ({length:,} characters)" for n, length in long[:5])
            more = f" and {len(long) - 5} more" if len(long) > 5 else ""
            reason += (
                f"; too long for max_field_chars ({limits.max_field_chars}): column"
                f"{'s' if len(long) > 1 else ''} {listed}{more}"
            )
    return RECORD_TOO_LARGE, reason


def json_values(text: str) -> dict[str, str] | None:
    """Top-level values of an oversized JSON line as text, to name the long ones (or None)."""
    if len(text) > _NAME_SCAN_LIMIT:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        for k, v in value.items()
    }


def can_scan(size: int) -> bool:
    """Whether an oversized record is small enough to parse just to name its long columns."""
    return size <= _NAME_SCAN_LIMIT
