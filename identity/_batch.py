"""Normalization of whole frames: the vectorised paths behind ``Normalizer.frame`` and friends.

Split from ``identity.normalize`` so that normalizing one lookup value (the API) imports
neither pandas nor Arrow; the rules (what a valid email or phone is) stay in that module, and
everything here calls them. Work is done once per *distinct* value: a column is dictionary
encoded, each distinct raw value normalized once, and the results taken back to the rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from identity.nicknames import canonical_first_name
from identity.normalize import (
    _EXTENSION_RE2,
    _MAX_EMAIL,
    _MISSING,
    _PLAIN_EMAIL,
    STREET_ABBREVIATIONS,
    NormalizationReport,
    Result,
    Status,
)
from identity.vocabulary import (
    ATTRIBUTE_SCHEMA,
    IDENTITY_ATTRIBUTES,
    NORMALIZED_ATTRIBUTES,
    NORMALIZED_COLUMNS,
)

if TYPE_CHECKING:
    from identity.normalize import Normalizer

#: ``<attribute>_status`` text by Status code + 1 (code -1, no value, is null).
_STATUS_TEXT: np.ndarray = np.array(
    [None, *(Status(code).name.lower() for code in range(len(Status)))], dtype=object
)
_USABLE: tuple[int, ...] = (int(Status.OK), int(Status.CORRECTED))


class Normalized(NamedTuple):
    """One normalization pass over raw records, seen two ways.

    ``records`` is the normalized record frame the matcher compares (casefolded, see
    CONTRACT.md); ``attributes`` is identity_attributes: per people record, each attribute as a
    golden record should show it (null when missing, invalid or junk) with its status.
    """

    records: pd.DataFrame
    attributes: pd.DataFrame
    report: NormalizationReport


def junk_mask(normalizer: Normalizer, text: pa.Array) -> pa.Array:
    """Vectorised ``Normalizer._junk`` over an Arrow string array (null stays false)."""
    folded = pc.utf8_lower(text)
    mask = pc.is_in(folded, value_set=pa.array(sorted(normalizer._block_values), pa.string()))
    for pattern in normalizer._block_re2:
        mask = pc.or_(mask, pc.match_substring_regex(folded, pattern=pattern))
    return pc.fill_null(mask, False)


def email_batch(normalizer: Normalizer, values: list[str]) -> list[Result]:
    """``Normalizer.email`` for many distinct raw values: lowercasing, junk and the strict shape
    test run vectorised in Arrow; only unusual addresses reach email-validator."""
    text = pc.utf8_lower(pc.utf8_trim_whitespace(pa.array(values, type=pa.string())))
    text = pc.utf8_trim_whitespace(
        pc.replace_substring_regex(text, pattern="^mailto:", replacement="")
    )
    junk = junk_mask(normalizer, text)
    plain = pc.and_(
        pc.match_substring_regex(text, pattern=f"^{_PLAIN_EMAIL.pattern}$"),
        pc.less_equal(pc.utf8_length(text), _MAX_EMAIL),
    )
    results: list[Result] = []
    for is_junk, is_plain, address in zip(
        junk.to_pylist(), plain.to_pylist(), text.to_pylist(), strict=True
    ):
        if not address:
            results.append(_MISSING)
        elif is_junk:
            results.append((None, Status.JUNK))
        elif is_plain:
            user, _, domain = address.rpartition("@")
            results.append(normalizer._plain_email(address, user, domain))
        else:
            results.append(normalizer._validated_email(address))
    return results


def phone_batch(normalizer: Normalizer, values: list[str]) -> list[Result]:
    """``Normalizer.phone`` for many distinct raw values: the text work runs vectorised in Arrow
    and each distinct digit string is validated once."""
    text = pc.utf8_trim_whitespace(pa.array(values, type=pa.string()))
    junk = junk_mask(normalizer, text)
    text = pc.replace_substring_regex(text, pattern=_EXTENSION_RE2, replacement="")
    international = pc.or_(pc.starts_with(text, "+"), pc.starts_with(text, "00"))
    digits = pc.replace_substring_regex(text, pattern=r"\D", replacement="")
    cache: dict[tuple[str, bool], Result] = {}
    results: list[Result] = []
    for is_junk, intl, number, raw in zip(
        junk.to_pylist(),
        international.to_pylist(),
        digits.to_pylist(),
        text.to_pylist(),
        strict=True,
    ):
        if not raw:
            results.append(_MISSING)
        elif is_junk:
            results.append((None, Status.JUNK))
        else:
            key = (number, bool(intl))
            if key not in cache:
                cache[key] = normalizer._phone_digits(number, bool(intl))
            results.append(cache[key])
    return results


def street_address_batch(normalizer: Normalizer, values: list[str]) -> list[Result]:
    """``Normalizer.street_address`` for many distinct values: ASCII ones are cleaned and
    abbreviated by vectorised Arrow passes, the rest (accents) one by one."""
    text = pc.utf8_trim_whitespace(pa.array(values, type=pa.string()))
    junk = junk_mask(normalizer, text).to_pylist()
    ascii_mask = pc.fill_null(pc.string_is_ascii(text), False).to_pylist()
    words = pc.utf8_lower(text)
    words = pc.replace_substring(words, pattern="#", replacement=" ")
    words = pc.replace_substring_regex(words, pattern=r"['`.]", replacement="")
    words = pc.replace_substring_regex(words, pattern=r"[^a-z0-9\s]|_", replacement=" ")
    words = pc.utf8_trim_whitespace(
        pc.replace_substring_regex(words, pattern=r"\s+", replacement=" ")
    )
    for long, short in STREET_ABBREVIATIONS.items():
        if long != short:
            words = pc.replace_substring_regex(words, pattern=rf"\b{long}\b", replacement=short)
    results: list[Result] = []
    for raw, is_junk, is_ascii, cleaned in zip(
        values, junk, ascii_mask, words.to_pylist(), strict=True
    ):
        if not is_ascii:
            results.append(normalizer.street_address(raw))
        elif not (raw or "").strip():
            results.append(_MISSING)
        elif is_junk:
            results.append((None, Status.JUNK))
        elif not cleaned:
            results.append((None, Status.INVALID))
        else:
            results.append((cleaned, Status.OK))
    return results


def normalize_frame(normalizer: Normalizer, records: pd.DataFrame) -> Normalized:
    """Normalize a frame of raw records (see CONTRACT.md for input and output columns)."""
    n = len(records)
    report = NormalizationReport(records=n)
    out: dict[str, pd.Series] = {}
    for key in ("record_uid", "source", "record_id"):
        out[key] = _trimmed(records[key]) if key in records else _null_str(n)
    if "record_uid" not in records and {"source", "record_id"} <= set(records.columns):
        out["record_uid"] = out["source"] + ":" + out["record_id"]

    def apply(
        name: str,
        func: Callable[[Any], Result],
        batch: Callable[[list[Any]], list[Result]] | None = None,
    ) -> _Column:
        return _Column.apply(records.get(name), func, report, name, n, batch)

    columns: dict[str, _Column] = {}
    email = columns["email"] = apply(
        "email", normalizer.email, lambda values: email_batch(normalizer, values)
    )
    out["email"] = email.to_series()
    out["email_user"] = email.map(lambda e: e.rpartition("@")[0]).to_series()
    out["email_domain"] = email.map(lambda e: e.rpartition("@")[2]).to_series()
    columns["phone"] = apply(
        "phone", normalizer.phone, lambda values: phone_batch(normalizer, values)
    )
    out["phone"] = columns["phone"].to_series()
    first = columns["first_name"] = apply("first_name", normalizer.name)
    last = columns["last_name"] = apply("last_name", normalizer.name)
    columns["full_name"] = apply("full_name", normalizer.full_name)
    if records.get("full_name") is not None:
        split = columns["full_name"].to_objects()
        first_names, last_names = first.to_objects(), last.to_objects()
        has_split = pd.notna(split)
        fill_first = has_split & pd.isna(first_names)
        fill_last = has_split & pd.isna(last_names)
        first_names[fill_first] = [s[0] for s in split[fill_first]]
        last_names[fill_last] = [s[1] for s in split[fill_last]]
        first, last = _Column.of(first_names), _Column.of(last_names)
    out["first_name"] = first.to_series()
    out["first_name_canonical"] = first.map(canonical_first_name).to_series()
    out["last_name"] = last.to_series()
    columns["birth_date"] = apply("birth_date", normalizer.birth_date)
    out["birth_date"] = columns["birth_date"].to_series()
    columns["street_address"] = apply(
        "street_address",
        normalizer.street_address,
        lambda values: street_address_batch(normalizer, values),
    )
    out["street_address"] = columns["street_address"].to_series()
    country = columns["country"] = apply("country", normalizer.country)
    out["country"] = country.to_series()
    is_us = (
        out["country"].eq("US") | (out["country"].isna() & (normalizer.region == "US"))
    ).to_numpy(bool)
    us = _Column.apply(
        records.get("postal_code"), lambda v: normalizer.postal_code(v, is_us=True), None, "", n
    )
    other = us.remap(lambda v: normalizer.postal_code(v, is_us=False))
    postal = np.where(is_us, us.to_objects(), other.to_objects())
    valid = us.codes >= 0
    if valid.any() and us.statuses is not None and other.statuses is not None:
        codes = us.codes[valid]
        status = np.where(is_us[valid], us.statuses[codes], other.statuses[codes])
        report.add(
            "postal_code",
            invalid=int((status == Status.INVALID).sum()),
            junk=int((status == Status.JUNK).sum()),
        )
    out["postal_code"] = _Column.of(postal).to_series()
    columns["city"] = apply("city", normalizer.place)
    out["city"] = columns["city"].to_series()
    columns["region"] = apply("region", normalizer.region_name)
    out["region"] = columns["region"].to_series()
    observed = records.get("observed_at")
    if observed is not None:
        parsed = pd.to_datetime(observed, utc=True, errors="coerce", format="mixed")
        report.add("observed_at", invalid=int((parsed.isna() & observed.notna()).sum()), junk=0)
        out["observed_at"] = parsed.astype("datetime64[us, UTC]").reset_index(drop=True)
    else:
        out["observed_at"] = pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]")
    frame = pd.DataFrame({c: out[c].reset_index(drop=True) for c in NORMALIZED_COLUMNS})
    attributes = _attributes(records, out, columns, (us, other, is_us))
    return Normalized(records=frame, attributes=attributes, report=report)


def _attributes(
    records: pd.DataFrame,
    out: dict[str, pd.Series],
    columns: dict[str, _Column],
    postal: tuple[_Column, _Column, np.ndarray],
) -> pd.DataFrame:
    """identity_attributes of the people records: golden-ready values and their statuses.

    Email, phone, birth date and country are identity's normalized values; the other
    attributes keep the text as written (trimmed, inner whitespace collapsed), because a
    casefolded, abbreviated matching key is not what a profile should display. Either way a
    value identity found invalid or junk is null, so survivorship passes over it. Built per
    distinct value and taken to the rows by Arrow, like the normalized frame.
    """
    data: dict[str, Any] = {key: out[key] for key in ("record_uid", "source", "record_id")}
    for attribute in IDENTITY_ATTRIBUTES:
        display = attribute not in NORMALIZED_ATTRIBUTES
        if attribute == "postal_code":  # read as a US ZIP or not, row by row
            us, other, is_us = postal
            us_value, us_status = us.golden(display=display)
            other_value, other_status = other.golden(display=display)
            mask = pa.array(is_us, type=pa.bool_())
            value = pc.if_else(mask, us_value, other_value)
            status = pc.if_else(mask, us_status, other_status)
        else:
            value, status = columns[attribute].golden(display=display)
        data[attribute] = pd.Series(value, dtype="str")
        data[f"{attribute}_status"] = pd.Series(status, dtype="str")
    frame = pd.DataFrame(data)[list(ATTRIBUTE_SCHEMA)]
    kind = records.get("source_kind")
    if kind is not None:
        frame = frame[(kind.astype("str") == "people").to_numpy(bool)]
    return frame.reset_index(drop=True)


def _null_str(n: int) -> pd.Series:
    return pd.Series(pa.nulls(n, pa.string()), dtype="str")


def _as_text_array(series: pd.Series) -> pa.Array:
    """Any column as an Arrow string array (datetimes as ISO dates; other types via str)."""
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(
        series.dtype
    ):
        series = series.dt.strftime("%Y-%m-%d")
    if series.dtype != "str":
        series = series.astype("str")
    array = pa.array(series)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array


def _trimmed(series: pd.Series) -> pd.Series:
    """Text without surrounding whitespace; empty becomes null."""
    array = pc.utf8_trim_whitespace(_as_text_array(series))
    array = pc.if_else(pc.equal(array, ""), pa.scalar(None, array.type), array)
    return pd.Series(array, dtype="str")


_SPACES = re.compile(r"\s+")


def _display(raw: Any) -> str | None:
    """A value as written, for display: trimmed, inner whitespace collapsed to one space."""
    if raw is None:
        return None
    return _SPACES.sub(" ", str(raw)).strip() or None


class _Column:
    """A normalized column as codes into per-distinct-value results (work once per value)."""

    def __init__(
        self,
        codes: np.ndarray,
        values: list[Any],
        uniques: list[Any] | None = None,
        statuses: np.ndarray | None = None,
    ) -> None:
        self.codes = codes
        self.values = values
        self.uniques = uniques
        self.statuses = statuses

    @classmethod
    def apply(
        cls,
        series: pd.Series | None,
        func: Callable[[Any], Result],
        report: NormalizationReport | None,
        attribute: str,
        n: int,
        batch: Callable[[list[Any]], list[Result]] | None = None,
    ) -> _Column:
        """Run ``func`` (or ``batch`` on all of them) once per distinct value; count
        invalid/junk/corrected rows."""
        if series is None:
            return cls(np.full(n, -1, dtype=np.int64), [], [], np.zeros(0, dtype=np.int8))
        encoded = pc.dictionary_encode(_as_text_array(series))
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        uniques = encoded.dictionary.to_pylist()
        results = batch(uniques) if batch is not None else [func(u) for u in uniques]
        statuses = np.array([int(r[1]) for r in results], dtype=np.int8)
        if report is not None and uniques:
            counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
            report.add(
                attribute,
                invalid=int(counts[statuses == Status.INVALID].sum()),
                junk=int(counts[statuses == Status.JUNK].sum()),
                corrected=int(counts[statuses == Status.CORRECTED].sum()),
            )
        return cls(codes, [r[0] for r in results], uniques, statuses)

    @classmethod
    def of(cls, objects: np.ndarray) -> _Column:
        """Wrap a row-level object array (None = null)."""
        codes, uniques = pd.factorize(objects, use_na_sentinel=True)
        return cls(codes.astype(np.int64), list(uniques))

    def remap(self, func: Callable[[Any], Result]) -> _Column:
        """The same distinct inputs through another normalizer."""
        if self.uniques is None:
            raise ValueError("remap needs the raw distinct values")
        results = [func(u) for u in self.uniques]
        statuses = np.array([int(r[1]) for r in results], dtype=np.int8)
        return _Column(self.codes, [r[0] for r in results], self.uniques, statuses)

    def map(self, func: Callable[[Any], Any]) -> _Column:
        """Derive another column from the normalized values (nulls stay null)."""
        return _Column(self.codes, [None if v is None else func(v) for v in self.values])

    def golden(self, *, display: bool) -> tuple[pa.Array, pa.Array]:
        """Row-level (value, status) for identity_attributes: the normalized value, or with
        ``display`` the raw value as written; null unless the value is usable (ok/corrected)."""
        statuses = self.statuses if self.statuses is not None else np.zeros(0, dtype=np.int8)
        usable = np.isin(statuses, _USABLE).tolist()
        if display:
            raw = self.uniques or []
            values = [_display(u) if ok else None for u, ok in zip(raw, usable, strict=True)]
        else:
            values = [v if ok else None for v, ok in zip(self.values, usable, strict=True)]
        texts = _STATUS_TEXT[statuses.astype(np.int64) + 1].tolist()
        return self._take_arrow(values), self._take_arrow(texts)

    def _take_arrow(self, values: list[str | None]) -> pa.Array:
        indices = pa.array(self.codes, mask=self.codes < 0)
        return pa.array(values, type=pa.string()).take(indices)

    def to_objects(self) -> np.ndarray:
        """Row-level object array."""
        values = np.empty(len(self.values) + 1, dtype=object)
        values[: len(self.values)] = self.values
        values[-1] = None
        return values[self.codes]

    def to_series(self) -> pd.Series:
        """Row-level pandas string column, built by an Arrow take (no per-row Python)."""
        return pd.Series(self._take_arrow(self.values), dtype="str")
