"""Deterministic links: records that share a normalized email, phone or named identifier.

A shared value is only a *deterministic* key when it plausibly belongs to one person. Guards (in
the spirit of Segment's identity rules) turn the others into rejected edges that are kept for
audit but never join customers:

- junk placeholders never reach this module (normalization nulls them and counts them);
- ``max_distinct_names_per_email`` / ``_phone``: a value on records of more distinct first names
  than the limit (a household phone, a family mailbox) is a weak signal only. Names that are the
  same person written differently (nickname, a typo, an initial, first/last swapped) count once,
  unless their birth dates differ (see :func:`names_compatible`);
- ``shared_device:<type>``: a record that carries several values of one identifier type (a
  cookie seen logging into two accounts: a shared computer) links through none of them.

Each shared value links its records as a star on the first record (n - 1 edges, not n^2).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final, NamedTuple

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from identity._frames import arrow_frame, empty_frame
from identity.blocking import PERSON_IDENTIFIERS_COLUMN
from identity.comparisons import IDENTIFIER_SEPARATOR, identifiers_related
from identity.nicknames import NAME_FORMALS
from identity.normalize import Normalizer, Status, edit_distance
from identity.settings import IdentitySettings
from identity.vocabulary import (
    AUDITED_EDGE_COLUMNS,
    EDGE_COLUMNS,
    EDGE_SCHEMA,
    IDENTIFIER_COLUMNS,
    pandas_dtypes,
)

logger = logging.getLogger(__name__)

_NAMED_GUARDS: Final[dict[str, str]] = {
    "email": "max_distinct_names_per_email",
    "phone": "max_distinct_names_per_phone",
}
#: Rejected-edge reason: nothing personal to compare, different emails (see below).
NO_PERSONAL_EVIDENCE: Final[str] = "no_personal_evidence"
_MIN_TYPO_LENGTH: Final[int] = 3
_LONG_NAME: Final[int] = 7


@dataclass
class RuleStats:
    """What the rules saw and refused, for run metadata."""

    shared_values: dict[str, int] = field(default_factory=dict)
    edges_accepted: int = 0
    edges_rejected: dict[str, int] = field(default_factory=dict)
    weak_values: dict[str, int] = field(default_factory=dict)
    identifier_junk: dict[str, int] = field(default_factory=dict)
    identifier_invalid: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """Plain dict for logs and metadata."""
        return {
            "shared_values": dict(self.shared_values),
            "edges_accepted": self.edges_accepted,
            "edges_rejected": dict(self.edges_rejected),
            "weak_values": dict(self.weak_values),
            "identifier_junk": dict(self.identifier_junk),
            "identifier_invalid": dict(self.identifier_invalid),
        }


@dataclass
class RuleResult:
    """Rule edges (accepted and rejected) and the values that are not deterministic keys."""

    edges: pd.DataFrame
    weak_values: pd.DataFrame
    ambiguous: pd.DataFrame
    stats: RuleStats
    identifiers: pa.Table | None = None
    #: Per record (in the records' order), its person identifiers as ``type:value`` (see
    #: :func:`person_identifiers`); the model compares them.
    person_identifiers: pd.Series | None = None


def person_identifiers(
    records: pd.DataFrame, identifiers: pa.Table | None, device_types: Sequence[str]
) -> pd.Series:
    """Each record's person-level identifiers, as the model compares them.

    ``type:value`` entries, distinct and sorted, one per line (null: none; see
    ``identity.comparisons.person_identifiers_text``). ``identifiers`` is the long identifier
    table of :func:`deterministic_edges` (record, type, value, ``is_ambiguous``). Emails and
    phones (contact details), device identifiers (``device_types``: a cookie belongs to a
    browser, not a person) and the values of a shared device (a record holding several values
    of one type) are left out.
    """
    if identifiers is None or identifiers.num_rows == 0:
        column = pa.nulls(len(records), pa.string())
    else:
        with duckdb.connect() as con:
            con.register("ids_in", identifiers)
            con.register(
                "uids_in",
                pa.table(
                    {
                        "record_uid": pa.array(records["record_uid"].astype("str")),
                        "position": pa.array(np.arange(len(records), dtype=np.int64)),
                    }
                ),
            )
            table = con.sql(
                """
                with entries as (
                    select distinct record_uid, identifier_type || ':' || identifier_value as entry
                    from ids_in
                    where not coalesce(is_ambiguous, false)
                      and not list_contains($excluded, identifier_type)
                ),
                texts as (
                    select record_uid, string_agg(entry, $separator order by entry) as text
                    from entries group by record_uid
                )
                select t.text
                from uids_in as u left join texts as t using (record_uid)
                order by u.position
                """,
                params={
                    "excluded": ["email", "phone", *device_types],
                    "separator": IDENTIFIER_SEPARATOR,
                },
            ).to_arrow_table()
        column = table.column(0).combine_chunks().cast(pa.string())
    return pd.Series(
        column.to_pandas(), index=records.index, name=PERSON_IDENTIFIERS_COLUMN
    ).astype("str")


def with_person_identifiers(records: pd.DataFrame, rules: RuleResult) -> pd.DataFrame:
    """``records`` (the frame the rules ran on) with the person-identifier lists they built."""
    if rules.person_identifiers is None:
        return records.assign(**{PERSON_IDENTIFIERS_COLUMN: None})
    return records.assign(**{PERSON_IDENTIFIERS_COLUMN: rules.person_identifiers})


def empty_identifier_frame() -> pd.DataFrame:
    """The long identifier frame with no rows."""
    return pd.DataFrame({c: pd.Series(dtype="str") for c in IDENTIFIER_COLUMNS[:3]})


def normalize_identifiers(
    identifiers: pd.DataFrame | None, normalizer: Normalizer, stats: RuleStats | None = None
) -> pd.DataFrame:
    """Normalize a long identifier frame (record_uid, identifier_type, identifier_value, ...).

    Emails and phones go through their normalizers; other identifiers are trimmed, inner
    whitespace collapsed, case kept (vectorised). Junk and unreadable values are dropped and
    counted per type in ``stats``. Extra columns (first_seen_at, last_seen_at) are kept.
    """
    if identifiers is None or identifiers.empty:
        return empty_identifier_frame()
    frame = identifiers.dropna(subset=["identifier_value"]).reset_index(drop=True)
    types = frame["identifier_type"].astype("str")
    raw = pa.array(frame["identifier_value"].astype("str"))
    values = pc.utf8_trim_whitespace(raw)
    values = pc.replace_substring_regex(values, pattern=r"\s+", replacement=" ")
    status = np.zeros(len(frame), dtype=np.int8)
    junk = normalizer._junk_mask(values).to_numpy(zero_copy_only=False)
    status[junk] = Status.JUNK
    result = np.array(values.to_pylist(), dtype=object)
    result[junk] = None
    for kind, batch in (("email", normalizer.email_batch), ("phone", normalizer.phone_batch)):
        rows = np.flatnonzero((types == kind).to_numpy())
        if len(rows) == 0:
            continue
        distinct, codes = np.unique(
            np.array(raw.take(pa.array(rows)).to_pylist(), dtype=object), return_inverse=True
        )
        results = batch(list(distinct))
        result[rows] = np.array([r[0] for r in results], dtype=object)[codes]
        status[rows] = np.array([int(r[1]) for r in results], dtype=np.int8)[codes]
    if stats is not None:
        for code, target in (
            (Status.INVALID, stats.identifier_invalid),
            (Status.JUNK, stats.identifier_junk),
        ):
            for type_, count in types[status == code].value_counts().items():
                target[str(type_)] = target.get(str(type_), 0) + int(count)
    result[pd.isna(result)] = None
    frame["identifier_value"] = pd.Series(
        pa.array(result, type=pa.string(), from_pandas=True), dtype="str"
    )
    frame["identifier_value"] = frame["identifier_value"].where(frame["identifier_value"] != "")
    frame["identifier_type"] = types
    frame["record_uid"] = frame["record_uid"].astype("str")
    return frame.dropna(subset=["identifier_value"]).reset_index(drop=True)


class NameKey(NamedTuple):
    """What the distinct-names guard compares about a record."""

    canonical: str | None
    written: str | None
    last: str | None
    birth_date: str | None


@lru_cache(maxsize=262_144)
def _typo_of(a: str, b: str, slack: int = 0) -> bool:
    """One edit apart (two for long names, plus ``slack``): the same name mistyped."""
    allowed = (2 if min(len(a), len(b)) >= _LONG_NAME else 1) + slack
    return min(len(a), len(b)) >= _MIN_TYPO_LENGTH and edit_distance(a, b, allowed) <= allowed


def _forms(name: str | None, canonical: str | None = None) -> frozenset[str]:
    """A first name as written, canonical, and every formal name it may stand for."""
    forms: set[str] = set()
    for value in (name, canonical):
        if value is not None:
            forms.add(value)
            forms |= NAME_FORMALS.get(value, frozenset())
    return frozenset(forms)


def _any_typo(left: Iterable[str], right: Iterable[str], slack: int) -> bool:
    right = tuple(right)
    return any(a == b or _typo_of(a, b, slack) for a in left for b in right)


def names_compatible(a: NameKey, b: NameKey) -> bool:
    """Whether two records' names can belong to the same person.

    Equal first names (after nicknames) always can. Looser matches (a typo, an initial, first
    and last swapped) only count when the birth dates do not contradict them, because that is
    how households differ: Mary and Mark Smith share a phone but not a birthday. Equal birth
    dates or last names allow one more edit (two independently mistyped copies of one name).
    """
    both_dates = a.birth_date is not None and b.birth_date is not None
    if a.canonical is None or b.canonical is None:
        # no first name to compare: only a different birth date tells two people apart
        return not (both_dates and a.birth_date != b.birth_date)
    forms_a, forms_b = _forms(a.written, a.canonical), _forms(b.written, b.canonical)
    if forms_a & forms_b:
        return True
    if both_dates and a.birth_date != b.birth_date:
        return False
    same_last = a.last is not None and a.last == b.last
    slack = 1 if both_dates or same_last else 0
    shorter, longer = sorted((a.canonical, b.canonical), key=len)
    if len(shorter) == 1 and longer.startswith(shorter):
        return True
    if _any_typo(forms_a, forms_b, slack):
        return True
    # first and last name swapped on one of the records
    return (
        a.last is not None
        and b.last is not None
        and _any_typo(forms_a, _forms(b.last), slack)
        and _any_typo(_forms(a.last), forms_b, slack)
    )


def first_names_conflict(a: NameKey, b: NameKey) -> bool:
    """Whether two first names are clearly different people's (a veto on model edges).

    Looser than :func:`names_compatible` because the model has already weighed the other
    attributes: only names that are no nickname, initial or swap of each other and more than
    two edits apart (three for long names) conflict, so typo-ridden copies still match.
    """
    if a.canonical is None or b.canonical is None:
        return False
    forms_a, forms_b = _forms(a.written, a.canonical), _forms(b.written, b.canonical)
    if forms_a & forms_b:
        return False
    shorter, longer = sorted((a.canonical, b.canonical), key=len)
    if longer.startswith(shorter) and (len(shorter) == 1 or len(longer) == len(shorter) + 1):
        # an initial, or a last letter dropped: a short name (ky / kyo) is too short for the
        # typo rule, yet losing its last letter is the most common way to mistype it
        return False
    if _any_typo(forms_a, forms_b, slack=1):
        return False
    # swapped first and last names, or the last name typed into the first-name field
    a_moved = a.last is not None and _any_typo(_forms(a.last), forms_b, slack=1)
    b_moved = b.last is not None and _any_typo(forms_a, _forms(b.last), slack=1)
    return not ((a_moved and (b.last is None or b_moved)) or (b_moved and a.last is None))


def names_conflict(a: NameKey, b: NameKey) -> bool:
    """Evidence that two records are different people: clearly different first names, or
    different birth dates without the same first name."""
    if first_names_conflict(a, b):
        return True
    if a.birth_date is None or b.birth_date is None or a.birth_date == b.birth_date:
        return False
    if a.canonical is None or b.canonical is None:
        return True
    return not (_forms(a.written, a.canonical) & _forms(b.written, b.canonical))


def distinct_names(names: Iterable[NameKey]) -> int:
    """How many different people a set of names stands for.

    A name joins the first group that holds a compatible name and no conflicting one, so
    typo variants chain through the correct spelling while an uninformative record (no first
    name, no birth date) cannot bridge two people who contradict each other. Informative
    records are placed first.
    """
    groups: list[list[NameKey]] = []
    ordered = sorted(
        set(names),
        key=lambda k: (k.canonical is None, k.birth_date is None, *(x or "" for x in k)),
    )
    for name in ordered:
        for group in groups:
            if any(names_compatible(name, m) for m in group) and not any(
                names_conflict(name, m) for m in group
            ):
                group.append(name)
                break
        else:
            groups.append([name])
    return len(groups)


_MASK_SQL: Final[str] = """
    case
        when identifier_type = 'email' and contains(identifier_value, '@') then
            left(identifier_value, 1) || '***@' || split_part(identifier_value, '@', -1)
        when identifier_type = 'phone' then
            left(identifier_value, 2) || repeat('*', greatest(length(identifier_value) - 6, 0))
            || right(identifier_value, 4)
        when length(identifier_value) <= 6 then '***'
        else left(identifier_value, 2) || '***' || right(identifier_value, 2)
    end
"""


_SEEN = pa.timestamp("us", tz="UTC")


def _records_table(records: pd.DataFrame) -> pa.Table:
    """The record columns the rules read, as Arrow (string columns convert without copies)."""
    columns: dict[str, pa.Array] = {}
    for name in (
        "record_uid",
        "email",
        "phone",
        "first_name_canonical",
        "first_name",
        "last_name",
        "birth_date",
    ):
        if name in records:
            columns[name] = pa.array(records[name].astype("str"), type=pa.large_string())
        else:
            columns[name] = pa.nulls(len(records), pa.large_string())
    observed = (
        pd.to_datetime(records["observed_at"], utc=True).astype("datetime64[us, UTC]")
        if "observed_at" in records
        else pd.Series(pd.NaT, index=records.index, dtype="datetime64[us, UTC]")
    )
    columns["observed_at"] = pa.array(observed, type=_SEEN)
    return pa.table(columns)


def _identifiers_table(identifiers: pd.DataFrame | None) -> pa.Table:
    columns = {
        "record_uid": pa.large_string(),
        "identifier_type": pa.large_string(),
        "identifier_value": pa.large_string(),
        "first_seen_at": _SEEN,
        "last_seen_at": _SEEN,
    }
    if identifiers is None or identifiers.empty:
        return pa.schema(columns).empty_table()
    arrays = {}
    for name, type_ in columns.items():
        if name not in identifiers:
            arrays[name] = pa.nulls(len(identifiers), type_)
        elif type_ == _SEEN:
            values = pd.to_datetime(identifiers[name], utc=True).astype("datetime64[us, UTC]")
            arrays[name] = pa.array(values, type=_SEEN)
        else:
            arrays[name] = pa.array(identifiers[name].astype("str"), type=type_)
    return pa.table(arrays)


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> pd.DataFrame:
    relation = con.sql(sql, params=params) if params is not None else con.sql(sql)
    return arrow_frame(relation.to_arrow_table())


def deterministic_edges(
    records: pd.DataFrame,
    identifiers: pd.DataFrame | None,
    settings: IdentitySettings,
) -> RuleResult:
    """Rule edges between records sharing an identifier, with the guards applied.

    ``records`` is the normalized record frame; ``identifiers`` the normalized long identifier
    frame (see :func:`normalize_identifiers`). Returned edges carry ``is_accepted`` and
    ``rejected_reason``. The grouping runs in DuckDB (millions of identifiers in seconds);
    only values whose records may be several people reach the Python name comparison.
    """
    stats = RuleStats()
    con = duckdb.connect()
    try:
        con.register("records_in", _records_table(records))
        con.register("ids_in", _identifiers_table(identifiers))
        con.execute(
            """
            create temp table long as
            with long_in as (
                select record_uid, 'email' as identifier_type, email as identifier_value,
                       observed_at as first_seen_at, observed_at as last_seen_at
                from records_in where email is not null
                union all
                select record_uid, 'phone', phone, observed_at, observed_at
                from records_in where phone is not null
                union all
                select i.record_uid, i.identifier_type, i.identifier_value,
                       coalesce(i.first_seen_at, r.observed_at),
                       coalesce(i.last_seen_at, r.observed_at)
                from ids_in i left join records_in r using (record_uid)
            )
            select record_uid, identifier_type, identifier_value,
                   min(first_seen_at) as first_seen_at, max(last_seen_at) as last_seen_at
            from long_in
            group by record_uid, identifier_type, identifier_value
            """
        ).fetchall()
        # group-bys and joins rather than window functions: several times faster in DuckDB
        con.execute(
            """
            create temp table ambiguous_keys as
            select record_uid, identifier_type from long
            group by record_uid, identifier_type having count(*) > 1
            """
        ).fetchall()
        con.execute(
            """
            create temp table shared_values as
            select identifier_type, identifier_value, min(record_uid) as any_hub
            from long
            group by identifier_type, identifier_value having count(*) > 1
            """
        ).fetchall()
        con.execute(
            """
            create temp table shared as
            with flagged as (
                select l.record_uid, l.identifier_type, l.identifier_value, v.any_hub,
                       a.record_uid is not null as is_ambiguous
                from long l
                join shared_values v using (identifier_type, identifier_value)
                left join ambiguous_keys a using (record_uid, identifier_type)
            ),
            clean_hubs as (
                -- a phone's star centres on a named record when there is one: a record
                -- without a first name must not be the only way its household is joined
                select f.identifier_type, f.identifier_value,
                       arg_min(
                           f.record_uid,
                           (f.identifier_type = 'phone' and r.first_name_canonical is null,
                            f.record_uid)
                       ) as clean_hub
                from flagged f left join records_in r using (record_uid)
                where not f.is_ambiguous
                group by f.identifier_type, f.identifier_value
            )
            select f.*, c.clean_hub
            from flagged f left join clean_hubs c using (identifier_type, identifier_value)
            """
        ).fetchall()
        shared_counts = _fetch(
            con,
            "select identifier_type, count(distinct identifier_value) as n from shared "
            "group by identifier_type",
        )
        stats.shared_values = {
            str(t): int(n)
            for t, n in zip(shared_counts["identifier_type"], shared_counts["n"], strict=True)
        }
        weak = _weak_values(con, settings, stats)
        con.register("weak_in", pa.Table.from_pandas(weak, preserve_index=False))
        edges = _fetch(
            con,
            f"""
            with pairs as (
                select s.*,
                       case when is_ambiguous then coalesce(clean_hub, any_hub)
                            else clean_hub end as hub,
                       case when is_ambiguous then 'shared_device:' || s.identifier_type
                            else w.reason end as rejected_reason
                from shared s
                left join weak_in w using (identifier_type, identifier_value)
            )
            select least(record_uid, hub) as record_uid_l,
                   greatest(record_uid, hub) as record_uid_r,
                   'rule' as evidence_type,
                   'same_' || identifier_type as rule,
                   identifier_type,
                   1.0::double as match_probability,
                   null::double as match_weight,
                   '{{"value":"' || replace(replace({_MASK_SQL}, '\\', '\\\\'), '"', '\\"')
                       || '"}}' as details,
                   rejected_reason is null as is_accepted,
                   rejected_reason
            from pairs
            where hub is not null and record_uid <> hub
            qualify row_number() over (
                partition by record_uid_l, record_uid_r, rule
                order by rejected_reason nulls first
            ) = 1
            order by record_uid_l, record_uid_r, rule
            """,
        )
        ambiguous = _fetch(
            con,
            "select record_uid, identifier_type, identifier_value from long "
            "join ambiguous_keys using (record_uid, identifier_type) order by all",
        )
        long = con.sql(
            "select l.*, a.record_uid is not null as is_ambiguous from long l "
            "left join ambiguous_keys a using (record_uid, identifier_type)"
        ).to_arrow_table()
    finally:
        con.close()
    edges = _edge_dtypes(edges)
    lists = person_identifiers(records, long, settings.anonymous_identifier_types)
    edges = _guard_phone_edges(edges, records.assign(**{PERSON_IDENTIFIERS_COLUMN: lists}))
    stats.edges_accepted = int(edges["is_accepted"].sum())
    for reason, count in edges.loc[~edges["is_accepted"], "rejected_reason"].value_counts().items():
        stats.edges_rejected[str(reason)] = int(count)
    logger.info("rules: %s", stats.as_dict())
    return RuleResult(
        edges=edges,
        weak_values=weak,
        ambiguous=ambiguous,
        stats=stats,
        identifiers=long,
        person_identifiers=lists,
    )


def _guard_phone_edges(edges: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Refuse phone links that a household explains as well as one person.

    The distinct-names guard cannot see a relative whose record has no first name: it counts
    no name for it. Such a link is refused (``no_personal_evidence``) when nothing personal
    can be compared and the emails differ (see :func:`without_personal_evidence`).
    """
    candidates = (
        edges["is_accepted"].to_numpy(dtype=bool) & (edges["rule"] == "same_phone").to_numpy()
    )
    if not candidates.any():
        return edges
    rows = np.flatnonzero(candidates)
    household = without_personal_evidence(edges.iloc[rows], records)
    if not household.any():
        return edges
    edges = edges.copy()
    refused = edges.index[rows[household]]
    edges.loc[refused, "is_accepted"] = False
    edges.loc[refused, "rejected_reason"] = NO_PERSONAL_EVIDENCE
    return edges


def _weak_values(
    con: duckdb.DuckDBPyConnection, settings: IdentitySettings, stats: RuleStats
) -> pd.DataFrame:
    """Emails and phones whose records name more distinct people than the limits allow."""
    limits = {
        "email": settings.max_distinct_names_per_email,
        "phone": settings.max_distinct_names_per_phone,
    }
    suspects = _fetch(
        con,
        """
        with named as (
            select s.identifier_type, s.identifier_value, n.*
            from shared s join records_in n using (record_uid)
            where s.identifier_type in ('email', 'phone')
              and (n.first_name_canonical is not null or n.birth_date is not null)
        ),
        rough as (
            select identifier_type, identifier_value
            from named
            group by identifier_type, identifier_value
            having greatest(count(distinct first_name_canonical), count(distinct birth_date))
                   > case identifier_type when 'email' then $email else $phone end
        ),
        pairs as (
            -- pairs that are certainly one person: same canonical first name, or a one-edit
            -- typo (or a missing first name) that no birth date contradicts
            select a.identifier_type, a.identifier_value,
                   coalesce(
                       a.first_name_canonical = b.first_name_canonical
                       or (
                           (
                               a.first_name_canonical is null
                               or b.first_name_canonical is null
                               or (least(length(a.first_name), length(b.first_name)) >= 3
                                   and damerau_levenshtein(a.first_name, b.first_name) <= 1)
                           )
                           and not coalesce(a.birth_date <> b.birth_date, false)
                       ),
                       false
                   ) as is_safe
            from named a
            join rough using (identifier_type, identifier_value)
            join named b
              on a.identifier_type = b.identifier_type
             and a.identifier_value = b.identifier_value
             and a.record_uid < b.record_uid
        ),
        suspects as (
            select identifier_type, identifier_value from pairs
            group by identifier_type, identifier_value
            having not bool_and(is_safe)
        )
        select n.identifier_type, n.identifier_value, n.first_name_canonical, n.first_name,
               n.last_name, n.birth_date
        from named n join suspects using (identifier_type, identifier_value)
        """,
        {"email": limits["email"], "phone": limits["phone"]},
    )
    groups: dict[tuple[str, str], list[NameKey]] = {}
    columns = [
        suspects[c].astype("object").where(suspects[c].notna(), None).tolist()
        for c in (
            "identifier_type",
            "identifier_value",
            "first_name_canonical",
            "first_name",
            "last_name",
            "birth_date",
        )
    ]
    for type_, value, *name in zip(*columns, strict=True):
        groups.setdefault((type_, value), []).append(NameKey(*name))
    rows = []
    for (type_, value), keys in groups.items():
        count = distinct_names(keys)
        if count > limits[type_]:
            rows.append((type_, value, _NAMED_GUARDS[type_], count))
    weak = pd.DataFrame(
        rows, columns=["identifier_type", "identifier_value", "reason", "distinct_names"]
    )
    for type_, count in weak["identifier_type"].value_counts().items():
        stats.weak_values[str(type_)] = int(count)
    return weak.astype(
        {
            "identifier_type": "str",
            "identifier_value": "str",
            "reason": "str",
            "distinct_names": "int64",
        }
    )


def _edge_dtypes(edges: pd.DataFrame) -> pd.DataFrame:
    if edges.empty:
        return empty_edge_frame()
    return edges.astype(pandas_dtypes(EDGE_SCHEMA, AUDITED_EDGE_COLUMNS)).reset_index(drop=True)


def empty_edge_frame(*, audited: bool = True) -> pd.DataFrame:
    """An edge frame with no rows and the contract's dtypes."""
    return empty_frame(EDGE_SCHEMA, AUDITED_EDGE_COLUMNS if audited else EDGE_COLUMNS)


def rule_strength(rules: Sequence[str], unique_types: Sequence[str]) -> np.ndarray:
    """Rank of rule evidence for splitting: unique ids > other ids > email > phone."""
    unique = {f"same_{t}" for t in unique_types}
    return np.array(
        [
            4 if r in unique else 1 if r == "same_phone" else 2 if r == "same_email" else 3
            for r in rules
        ],
        dtype=np.int8,
    )


def _column(records: pd.DataFrame, column: str, uids: pd.Series) -> np.ndarray:
    """``column`` of the records ``uids`` name, as objects (None when missing)."""
    if column not in records:
        return np.full(len(uids), None, dtype=object)
    values = records.set_index("record_uid")[column].reindex(uids.to_numpy())
    return values.astype("object").where(values.notna(), None).to_numpy()


def without_personal_evidence(pairs: pd.DataFrame, records: pd.DataFrame) -> np.ndarray:
    """Which pairs (``record_uid_l``/``_r``) rest on household evidence alone.

    A household shares its phone, its address and its family name; what tells its members
    apart is personal: a first name, a birth date, a person's own identifier, a mailbox. A
    pair with no first names and no birth dates to compare (one record lacks each: a shop
    account without a first name) and no same or near person identifier, whose emails
    differ, is as likely a relative as the person, whatever a shared phone or the model says.
    """
    if pairs.empty:
        return np.zeros(0, dtype=bool)
    left, right = pairs["record_uid_l"], pairs["record_uid_r"]

    def both(column: str) -> tuple[np.ndarray, np.ndarray]:
        return _column(records, column, left), _column(records, column, right)

    first_l, first_r = both("first_name_canonical")
    birth_l, birth_r = both("birth_date")
    email_l, email_r = both("email")
    present = pd.notna
    suspect = (
        ~(present(first_l) & present(first_r))
        & ~(present(birth_l) & present(birth_r))
        & present(email_l)
        & present(email_r)
        & (email_l != email_r)
    )
    if suspect.any() and PERSON_IDENTIFIERS_COLUMN in records:
        rows = np.flatnonzero(suspect)
        ids_l = _column(records, PERSON_IDENTIFIERS_COLUMN, left.iloc[rows])
        ids_r = _column(records, PERSON_IDENTIFIERS_COLUMN, right.iloc[rows])
        for row, a, b in zip(rows, ids_l, ids_r, strict=True):
            if identifiers_related(a, b):
                suspect[row] = False
    return suspect


def guard_model_edges(edges: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Reject model edges that a household explains as well as one person.

    A probabilistic model that sees the same last name, phone and street scores household
    members as one person. Two first names that are clearly different (see
    :func:`first_names_conflict`) veto such an edge (``rejected_reason = conflicting_names``);
    so does nothing personal to compare beside different emails (see
    :func:`without_personal_evidence`; ``no_personal_evidence``).
    """
    if edges.empty:
        return edges
    household = without_personal_evidence(edges, records)
    if household.any():
        edges = edges.copy()
        edges.loc[household, "is_accepted"] = False
        edges.loc[household, "rejected_reason"] = NO_PERSONAL_EVIDENCE
        logger.info("model edges rejected for lack of personal evidence: %d", int(household.sum()))
    if "first_name_canonical" not in records:
        return edges
    columns = ["first_name_canonical", "first_name", "last_name", "birth_date"]
    present = [c for c in columns if c in records]
    table = records.set_index("record_uid")[present]
    for column in columns:
        if column not in table:
            table[column] = None
    table = table[columns].astype("object")
    table = table.where(table.notna(), None)
    left = table.reindex(edges["record_uid_l"]).itertuples(index=False)
    right = table.reindex(edges["record_uid_r"]).itertuples(index=False)
    conflict = np.fromiter(
        (first_names_conflict(NameKey(*a), NameKey(*b)) for a, b in zip(left, right, strict=True)),
        dtype=bool,
        count=len(edges),
    )
    conflict &= edges["is_accepted"].to_numpy(dtype=bool)
    if not conflict.any():
        return edges
    out = edges.copy()
    out.loc[conflict, "is_accepted"] = False
    out.loc[conflict, "rejected_reason"] = "conflicting_names"
    logger.info("model edges rejected for conflicting first names: %d", int(conflict.sum()))
    return out
