"""What the probabilistic model compares, and how it picks the pairs it compares.

The comparisons are built from Splink's comparison library over the normalized record frame
(see CONTRACT.md). Email, phone and address are one comparison ("contact"), not five: a
family email, a landline, a street, its postal code and its city agree together for everyone
in a household, and scoring them as independent evidence would count one fact several times
and merge family members. What tells household members apart is personal: first name and
birth date. Which pairs are compared (the blocking keys) is in ``identity/blocking.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler, Levenshtein
from splink.internals.comparison_creator import ComparisonCreator
from splink.internals.comparison_level_creator import ComparisonLevelCreator

from identity.blocking import EMAIL_USER_COLUMN, NAME_PAIR_COLUMN, PERSON_IDENTIFIERS_COLUMN

#: m = u for a level that must weigh nothing.
NEUTRAL_PROBABILITY: Final[float] = 0.01
#: Derived column: birth date as a day number (null when it does not parse).
BIRTH_DAY_COLUMN: Final[str] = "birth_day"
BIRTH_DAY_SQL: Final[str] = (
    "date_diff('day', date '1970-01-01', cast(try_strptime(birth_date, '%Y-%m-%d') as date))"
)
#: A record needs this many non-null compared attributes for the model to score it; with
#: fewer, no comparison could ever reach a useful match probability (e.g. a bare cookie).
MIN_COMPARED_ATTRIBUTES: Final[int] = 2

#: Rules that admit almost only true matches; used to estimate the prior match probability.
DETERMINISTIC_RULES: Final[tuple[str, ...]] = (
    "l.first_name_canonical = r.first_name_canonical and l.last_name = r.last_name "
    "and l.birth_date = r.birth_date",
    "l.email = r.email and l.last_name = r.last_name and l.first_name_canonical = "
    "r.first_name_canonical",
)


# --------------------------------------------------------------------------------------------
# Comparisons: each level is Splink's level (SQL, for batch) paired with the same condition in
# Python (for real time). SQL NULL never satisfies a condition; the Python tests return False
# whenever a value they need is missing, which is the same for the AND/OR conditions used here.
# String distances run on UTF-8 bytes because DuckDB's functions do.
# --------------------------------------------------------------------------------------------

Row = Mapping[str, Any]
LevelTest = Callable[[Row, Row], bool]


@dataclass(frozen=True)
class ComparisonSpec:
    """One comparison: its Splink levels and, level by level, the same test in Python."""

    name: str
    description: str
    levels: tuple[tuple[ComparisonLevelCreator, LevelTest], ...]
    #: The pair is comparable (not at the null level) when both sides have one of these.
    comparable: tuple[str, ...]
    #: Or, when set, when this condition over ``l.<column>`` and ``r.<column>`` holds.
    comparable_sql: str | None = None

    def splink(self) -> ComparisonCreator:
        """The Splink comparison (levels in order, the first is the null level)."""
        return cl.CustomComparison(
            output_column_name=self.name,
            comparison_description=self.description,
            comparison_levels=[level for level, _ in self.levels],
        )

    def tests(self) -> tuple[LevelTest, ...]:
        """Python tests in level order (Splink assigns the first level that holds)."""
        return tuple(test for _, test in self.levels)


def _any_null(*columns: str) -> LevelTest:
    return lambda a, b: all(a[c] is None or b[c] is None for c in columns)


def _equal(column: str) -> LevelTest:
    return lambda a, b: a[column] is not None and a[column] == b[column]


def _both(column: str, a: Row, b: Row) -> tuple[bytes, bytes] | None:
    left, right = a[column], b[column]
    if left is None or right is None:
        return None
    return left.encode("utf-8"), right.encode("utf-8")


def _jaro_winkler(column: str, threshold: float) -> LevelTest:
    def test(a: Row, b: Row) -> bool:
        pair = _both(column, a, b)
        return pair is not None and JaroWinkler.similarity(*pair) >= threshold

    return test


def _levenshtein(column: str, distance: int) -> LevelTest:
    def test(a: Row, b: Row) -> bool:
        pair = _both(column, a, b)
        return pair is not None and Levenshtein.distance(*pair) <= distance

    return test


def _damerau_levenshtein(column: str, distance: int) -> LevelTest:
    def test(a: Row, b: Row) -> bool:
        pair = _both(column, a, b)
        return pair is not None and DamerauLevenshtein.distance(*pair) <= distance

    return test


def one_edit_sql(x: str, y: str) -> str:
    """SQL: x and y at most one edit or adjacent transposition apart (UTF-8 bytes).

    DuckDB's damerau_levenshtein is ten times slower than its levenshtein, and u sampling
    runs these levels on a million random pairs: levenshtein settles all but transpositions,
    which need two strings of one length differing in exactly two bytes (hamming, cheap)
    before damerau_levenshtein decides. Python twin: ``DamerauLevenshtein.distance <= 1``.
    """
    return (
        f"(case when levenshtein({x}, {y}) <= 1 then true "
        f"when strlen({x}) <> strlen({y}) then false "
        f"when hamming({x}, {y}) <> 2 then false "
        f"else damerau_levenshtein({x}, {y}) <= 1 end)"
    )


def _else(a: Row, b: Row) -> bool:
    return True


def _within(column: str, difference: int) -> LevelTest:
    def test(a: Row, b: Row) -> bool:
        left, right = a[column], b[column]
        return left is not None and right is not None and abs(left - right) <= difference

    return test


def birth_day(value: str | None) -> int | None:
    """Days since 1970-01-01 of an ISO birth date, None when it does not parse.

    Python twin of ``BIRTH_DAY_SQL``.
    """
    if value is None:
        return None
    try:
        return (datetime.strptime(value, DATE_FORMAT) - _EPOCH).days
    except ValueError:
        return None


def email_user(value: str | None) -> str | None:
    """The mailbox name (before the first @); Python twin of ``EMAIL_USER_SQL``."""
    if value is None:
        return None
    return value.split("@", 1)[0] or None


DATE_FORMAT: Final[str] = "%Y-%m-%d"
_EPOCH: Final[datetime] = datetime(1970, 1, 1)


def _name_specs() -> list[ComparisonSpec]:
    first_name = ComparisonSpec(
        "first_name",
        "first name: exact (tf adjusted), nickname, swapped with the last name, typos",
        comparable=("first_name",),
        levels=(
            (cll.NullLevel("first_name"), _any_null("first_name")),
            (
                cll.ExactMatchLevel("first_name").configure(tf_adjustment_column="first_name"),
                _equal("first_name"),
            ),
            (
                cll.ExactMatchLevel("first_name_canonical").configure(
                    label_for_charts="Same formal name (nickname)"
                ),
                _equal("first_name_canonical"),
            ),
            # Swapped first and last names agree: the last_name comparison scores that, so this
            # level is neutral (fixed m = u) rather than "All other comparisons". It reads the
            # derived name pair, not last_name: a level on last_name would keep EM from
            # training this comparison on pairs blocked by last name.
            (
                cll.ExactMatchLevel(NAME_PAIR_COLUMN).configure(
                    label_for_charts="Swapped with the last name (scored there)",
                    m_probability=NEUTRAL_PROBABILITY,
                    u_probability=NEUTRAL_PROBABILITY,
                    fix_m_probability=True,
                    fix_u_probability=True,
                ),
                _equal(NAME_PAIR_COLUMN),
            ),
            (cll.JaroWinklerLevel("first_name", 0.92), _jaro_winkler("first_name", 0.92)),
            (cll.JaroWinklerLevel("first_name", 0.8), _jaro_winkler("first_name", 0.8)),
            (cll.ElseLevel(), _else),
        ),
    )
    # No term-frequency adjustment on last names: a rare family name shared at one address is
    # a household, and rewarding its rarity is exactly what merges family members.
    last_name = ComparisonSpec(
        "last_name",
        "last name: exact, swapped with the first name, typos",
        comparable=("last_name",),
        levels=(
            (cll.NullLevel("last_name"), _any_null("last_name")),
            (cll.ExactMatchLevel("last_name"), _equal("last_name")),
            (
                cll.ColumnsReversedLevel("first_name", "last_name", symmetrical=True).configure(
                    label_for_charts="First and last name swapped"
                ),
                lambda a, b: (
                    a["first_name"] is not None
                    and a["first_name"] == b["last_name"]
                    and b["first_name"] is not None
                    and b["first_name"] == a["last_name"]
                ),
            ),
            (cll.JaroWinklerLevel("last_name", 0.92), _jaro_winkler("last_name", 0.92)),
            (cll.JaroWinklerLevel("last_name", 0.8), _jaro_winkler("last_name", 0.8)),
            (cll.ElseLevel(), _else),
        ),
    )
    return [first_name, last_name]


def _birth_date_spec() -> ComparisonSpec:
    # Distances use the derived day number (BIRTH_DAY_COLUMN): parsing dates once per record
    # instead of several times per compared pair keeps prediction fast at millions of pairs.
    levels: list[tuple[ComparisonLevelCreator, LevelTest]] = [
        (
            cll.NullLevel(BIRTH_DAY_COLUMN).configure(
                label_for_charts="Birth date is NULL or invalid"
            ),
            _any_null(BIRTH_DAY_COLUMN),
        ),
        # Tf adjusted so that a placeholder date (1900-01-01) weighs little.
        (
            cll.ExactMatchLevel("birth_date").configure(
                tf_adjustment_column="birth_date", label_for_charts="Same birth date"
            ),
            _equal("birth_date"),
        ),
        (
            cll.LevenshteinLevel("birth_date", 1).configure(
                label_for_charts="Birth date one character apart"
            ),
            _levenshtein("birth_date", 1),
        ),
    ]
    for days, label in ((30, "a month"), (365, "a year"), (3652, "ten years")):
        levels.append(
            (
                cll.AbsoluteDifferenceLevel(BIRTH_DAY_COLUMN, days).configure(
                    label_for_charts=f"Birth dates within {label}"
                ),
                _within(BIRTH_DAY_COLUMN, days),
            )
        )
    levels.append((cll.ElseLevel(), _else))
    return ComparisonSpec(
        "birth_date",
        "birth date: exact (tf adjusted), one-character typo, distance in days",
        comparable=(BIRTH_DAY_COLUMN,),
        levels=tuple(levels),
    )


def _contact_spec() -> ComparisonSpec:
    place_sql = "(postal_code_l = postal_code_r or city_l = city_r)"
    street_sql = f"(street_address_l = street_address_r and {place_sql})"
    same_email, same_phone = _equal("email"), _equal("phone")
    same_street_only = _equal("street_address")
    same_postal, same_city = _equal("postal_code"), _equal("city")

    def same_place(a: Row, b: Row) -> bool:
        return same_postal(a, b) or same_city(a, b)

    def same_street(a: Row, b: Row) -> bool:
        return same_street_only(a, b) and same_place(a, b)

    similar_street = _jaro_winkler("street_address", 0.9)
    similar_city = _jaro_winkler("city", 0.9)
    near_postal = _damerau_levenshtein("postal_code", 1)

    contact_columns = ("email", "phone", "street_address", "postal_code", "city")
    null_sql = " and ".join(f"({c}_l is null or {c}_r is null)" for c in contact_columns)
    return ComparisonSpec(
        "contact",
        "email, phone and address as one piece of evidence: household members share them together",
        comparable=contact_columns,
        levels=(
            (
                cll.CustomLevel(
                    null_sql, label_for_charts="No contact details to compare"
                ).configure(is_null_level=True),
                _any_null(*contact_columns),
            ),
            (
                cll.CustomLevel(
                    f"email_l = email_r and (phone_l = phone_r or {street_sql})",
                    label_for_charts="Same email and same phone or street address",
                ).configure(tf_adjustment_column="email", disable_tf_exact_match_detection=True),
                lambda a, b: same_email(a, b) and (same_phone(a, b) or same_street(a, b)),
            ),
            (
                cll.CustomLevel("email_l = email_r", label_for_charts="Same email").configure(
                    tf_adjustment_column="email", disable_tf_exact_match_detection=True
                ),
                same_email,
            ),
            (
                cll.CustomLevel(
                    f"phone_l = phone_r and {street_sql}",
                    label_for_charts="Same phone and same street address",
                ),
                lambda a, b: same_phone(a, b) and same_street(a, b),
            ),
            (
                cll.CustomLevel("phone_l = phone_r", label_for_charts="Same phone").configure(
                    tf_adjustment_column="phone", disable_tf_exact_match_detection=True
                ),
                same_phone,
            ),
            # No tf adjustment on the street: see last_name.
            (cll.CustomLevel(street_sql, label_for_charts="Same street address"), same_street),
            (
                cll.ExactMatchLevel(EMAIL_USER_COLUMN).configure(
                    label_for_charts="Same mailbox name, other email domain"
                ),
                _equal(EMAIL_USER_COLUMN),
            ),
            (
                cll.CustomLevel(
                    "jaro_winkler_similarity(street_address_l, street_address_r) >= 0.9 "
                    f"and {place_sql}",
                    label_for_charts="Similar street address, same postal code or city",
                ),
                lambda a, b: similar_street(a, b) and same_place(a, b),
            ),
            # The same street in another postal code and city: a typo in both, or a move
            # within the street's town (place levels below would score it as nothing).
            (
                cll.CustomLevel(
                    "street_address_l = street_address_r",
                    label_for_charts="Same street address, other postal code and city",
                ),
                same_street_only,
            ),
            (
                cll.CustomLevel(
                    "postal_code_l = postal_code_r", label_for_charts="Same postal code"
                ),
                same_postal,
            ),
            (
                cll.CustomLevel("city_l = city_r", label_for_charts="Same city").configure(
                    tf_adjustment_column="city", disable_tf_exact_match_detection=True
                ),
                same_city,
            ),
            # A mistyped place (a transposed postal code, a letter off in the city) is weak
            # evidence, but without these levels it scored as a different place.
            (
                cll.CustomLevel(
                    f"{one_edit_sql('postal_code_l', 'postal_code_r')} "
                    "or jaro_winkler_similarity(city_l, city_r) >= 0.9",
                    label_for_charts="Postal code one edit or transposition apart, or similar city",
                ),
                lambda a, b: near_postal(a, b) or similar_city(a, b),
            ),
            (cll.ElseLevel(), _else),
        ),
    )


def identifier_type(value: str) -> str:
    """The type part of a ``type:value`` person identifier (types never hold a colon)."""
    return value.split(":", 1)[0]


#: Separates a record's person identifiers in their text column: normalization collapses
#: every whitespace run in an identifier to one space, so no value holds a newline.
IDENTIFIER_SEPARATOR: Final[str] = "\n"


def person_identifiers_text(values: Any) -> str | None:
    """A record's person identifiers as the model reads them: ``type:value`` entries,
    distinct and sorted, one per line; None when there are none.

    Accepts that text, or a list (or array) of entries.
    """
    if isinstance(values, str):
        items: Sequence[Any] = values.split(IDENTIFIER_SEPARATOR)
    elif isinstance(values, Sequence | np.ndarray):
        items = list(values)
    else:
        return None
    clean = sorted({v for v in items if isinstance(v, str) and v})
    return IDENTIFIER_SEPARATOR.join(clean) or None


def _entries(value: str | None) -> list[str]:
    return value.split(IDENTIFIER_SEPARATOR) if value else []


def _no_common_type(a: Row, b: Row) -> bool:
    left, right = _entries(a[PERSON_IDENTIFIERS_COLUMN]), _entries(b[PERSON_IDENTIFIERS_COLUMN])
    return not {identifier_type(v) for v in left} & {identifier_type(v) for v in right}


def _same_identifier(a: Row, b: Row) -> bool:
    left, right = _entries(a[PERSON_IDENTIFIERS_COLUMN]), _entries(b[PERSON_IDENTIFIERS_COLUMN])
    return not set(left).isdisjoint(right)


def _near_identifier(a: Row, b: Row) -> bool:
    left, right = _entries(a[PERSON_IDENTIFIERS_COLUMN]), _entries(b[PERSON_IDENTIFIERS_COLUMN])
    return any(
        identifier_type(x) == identifier_type(y)
        and DamerauLevenshtein.distance(x.encode("utf-8"), y.encode("utf-8"), score_cutoff=1) <= 1
        for x in left
        for y in right
    )


def identifiers_related(left: str | None, right: str | None) -> bool:
    """Whether two records' identifiers hold the same value, or one type one edit apart."""
    row_l, row_r = {PERSON_IDENTIFIERS_COLUMN: left}, {PERSON_IDENTIFIERS_COLUMN: right}
    return _same_identifier(row_l, row_r) or _near_identifier(row_l, row_r)


def _type_sql(expression: str) -> str:
    # not split_part: DuckDB 2.0 fails to bind ``split_part(x, ':', 1) = ...`` when the
    # column is all null (statistics fold it), as it is on a world without identifiers
    return f"substr({expression}, 1, strpos({expression}, ':') - 1)"


def _near_value_sql(x: str, y: str) -> str:
    """``type:value`` entries x and y of one type, one edit or transposition apart."""
    value_x, value_y = f"substr({x}, strpos({x}, ':') + 1)", f"substr({y}, strpos({y}, ':') + 1)"
    return (
        f"(case when {_type_sql(x)} <> {_type_sql(y)} then false "
        f"else {one_edit_sql(value_x, value_y)} end)"
    )


def _identifier_sql(left: str, right: str) -> dict[str, str]:
    """SQL of the identifier levels over two text columns (Python twins above).

    Almost every record holds one identifier: that case compares the text directly; lists
    (string_split and lambdas, several times slower) are built only for records with more.
    """
    single = f"strpos({left}, chr(10)) = 0 and strpos({right}, chr(10)) = 0"

    def any_pair(condition: str) -> str:
        return (
            f"len(list_filter(string_split({left}, chr(10)), lambda x: len(list_filter("
            f"string_split({right}, chr(10)), lambda y: {condition})) > 0)) > 0"
        )

    same_type = f"{_type_sql('x')} = {_type_sql('y')}"
    return {
        "null": (
            f"{left} is null or {right} is null or (case when {single} then "
            f"{_type_sql(left)} <> {_type_sql(right)} else not ({any_pair(same_type)}) end)"
        ),
        "same": (
            f"(case when {single} then {left} = {right} else list_has_any("
            f"string_split({left}, chr(10)), string_split({right}, chr(10))) end)"
        ),
        "near": (
            f"(case when {single} then {_near_value_sql(left, right)} "
            f"else {any_pair(_near_value_sql('x', 'y'))} end)"
        ),
    }


_IDENTIFIER_SQL: Final[dict[str, str]] = _identifier_sql(
    f"{PERSON_IDENTIFIERS_COLUMN}_l", f"{PERSON_IDENTIFIERS_COLUMN}_r"
)
_COMPARABLE_IDENTIFIERS_SQL: Final[str] = _identifier_sql(
    f"l.{PERSON_IDENTIFIERS_COLUMN}", f"r.{PERSON_IDENTIFIERS_COLUMN}"
)["null"]


def _identifier_spec() -> ComparisonSpec:
    """Person-level named identifiers (national id, loyalty or account number).

    An equal value is already a deterministic link; what the model adds is the value typed
    with one mistake (a transposition, a dropped digit), which no rule can trust. How much
    that weighs is learnt: sequential numbering (L000123 / L000124 for a household signing up
    together) makes one-edit-apart values common among different people in some data, so
    neither the level nor its weight is assumed. Records without a type in common (a CRM
    number against a shop account) have nothing to compare: the null level.
    """
    return ComparisonSpec(
        "identifiers",
        "person-level named identifiers: same value, one edit or transposition apart, other",
        comparable=(PERSON_IDENTIFIERS_COLUMN,),
        comparable_sql=f"not ({_COMPARABLE_IDENTIFIERS_SQL})",
        levels=(
            (
                cll.CustomLevel(
                    _IDENTIFIER_SQL["null"], label_for_charts="No identifier type in common"
                ).configure(is_null_level=True),
                _no_common_type,
            ),
            (
                cll.CustomLevel(_IDENTIFIER_SQL["same"], label_for_charts="Same identifier"),
                _same_identifier,
            ),
            (
                cll.CustomLevel(
                    _IDENTIFIER_SQL["near"],
                    label_for_charts="Same identifier type, one edit or transposition apart",
                ),
                _near_identifier,
            ),
            (cll.ElseLevel(), _else),
        ),
    )


def comparison_specs() -> list[ComparisonSpec]:
    """The model's comparisons, in the order Splink evaluates them."""
    return [*_name_specs(), _birth_date_spec(), _contact_spec(), _identifier_spec()]


def person_comparisons() -> list[ComparisonCreator]:
    """The model's comparisons as Splink comparison creators."""
    return [spec.splink() for spec in comparison_specs()]
