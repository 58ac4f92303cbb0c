"""Raw identity attributes -> the normalized record frame every matcher step reads.

Normalization decides what "the same value" means, so it is deliberately conservative: a value
that cannot be read becomes null (and is counted), junk placeholders become null (and are counted
separately), nothing is guessed. Whole frames are normalized once per *distinct* value
(``identity._batch``, pandas and Arrow), so a million records cost as much as their distinct
emails, phones and names; this module holds the rules and imports neither, so the API can
normalize a lookup value without loading them. The costly library calls get fast paths that
give the same answers: a strict regex accepts plain ASCII emails before ``email-validator`` sees
the rest, and North-American numbers are validated against ``phonenumbers``' own metadata
patterns compiled once (exactly what ``is_valid_number`` checks).
"""

from __future__ import annotations

import logging
import re
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import IntEnum
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, Final

import email_validator
import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from identity.nicknames import canonical_first_name
from identity.settings import IdentitySettings
from identity.vocabulary import NORMALIZED_COLUMNS

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from identity._batch import Normalized

logger = logging.getLogger(__name__)


class Status(IntEnum):
    """Outcome of normalizing one value."""

    OK = 0
    INVALID = 1
    JUNK = 2
    CORRECTED = 3


Result = tuple[Any, Status]
_MISSING: Final[Result] = (None, Status.OK)


@dataclass
class NormalizationReport:
    """Per-attribute counts of values that were present but unusable (metadata, not errors)."""

    records: int = 0
    invalid: dict[str, int] = field(default_factory=dict)
    junk: dict[str, int] = field(default_factory=dict)
    corrected: dict[str, int] = field(default_factory=dict)

    def add(self, attribute: str, invalid: int, junk: int, corrected: int = 0) -> None:
        """Accumulate counts for one attribute."""
        for target, count in (
            (self.invalid, invalid),
            (self.junk, junk),
            (self.corrected, corrected),
        ):
            if count:
                target[attribute] = target.get(attribute, 0) + count

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for logs and asset metadata."""
        return {
            "records": self.records,
            "invalid": dict(self.invalid),
            "junk": dict(self.junk),
            "corrected": dict(self.corrected),
        }


# --- text helpers -------------------------------------------------------------------------

_NON_DECOMPOSING: Final[dict[str, str]] = {
    "ø": "o",
    "æ": "ae",
    "œ": "oe",
    "ł": "l",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "ı": "i",
}
_NON_DECOMPOSING_TABLE = str.maketrans(_NON_DECOMPOSING)
_SPACES = re.compile(r"\s+")


def strip_accents(text: str) -> str:
    """Casefold and remove diacritics (é -> e, ß -> ss, ø -> o)."""
    folded = text.casefold()
    if folded.isascii():
        return folded
    decomposed = unicodedata.normalize("NFKD", folded.translate(_NON_DECOMPOSING_TABLE))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _text(raw: Any) -> str | None:
    """Trimmed text of a raw cell, or None when empty/missing."""
    if type(raw) is str:
        return raw.strip() or None
    if raw is None:
        return None
    if isinstance(raw, float) and raw != raw:  # NaN
        return None
    pandas = sys.modules.get("pandas")  # pd.NA / pd.NaT exist only once pandas is loaded
    if pandas is not None and (raw is pandas.NA or raw is pandas.NaT):
        return None
    text = raw if isinstance(raw, str) else str(raw)
    text = text.strip()
    return text or None


def edit_distance(a: str, b: str, limit: int = 2) -> int:
    """Optimal-string-alignment distance (typos incl. transpositions), capped at ``limit + 1``.

    Names are short, so the quadratic table is cheap; the cap stops early on clear mismatches.
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous_previous: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous_previous[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous_previous, previous = previous, current
    return previous[-1]


# --- email --------------------------------------------------------------------------------

# A strict subset of what email-validator accepts: dot-atom ASCII local part, LDH labels and an
# alphabetic TLD. Anything else (unicode, quoted local parts, odd dots) goes to the library.
_PLAIN_EMAIL = re.compile(
    r"(?P<user>[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,64}(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})"
)
_SPECIAL_USE_DOMAINS = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)

#: Consumer mailbox providers whose misspellings (gmial.com, yaho.com, hotmail.con) are common
#: enough to correct, as mail-check tools do. Only a unique provider one edit away (same
#: top-level domain), or the exact provider with a mistyped ".com", is corrected.
POPULAR_EMAIL_DOMAINS: Final[frozenset[str]] = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "ymail.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "protonmail.com",
        "gmx.com",
        "mail.com",
        "comcast.net",
        "att.net",
        "verizon.net",
        "sbcglobal.net",
        "bellsouth.net",
        "charter.net",
        "cox.net",
    }
)
_COM_TYPOS: Final[frozenset[str]] = frozenset(
    {"co", "con", "cm", "om", "cmo", "ocm", "comm", "vom", "xom", "cim", "coom"}
)
_MIN_CORRECTED_LABEL: Final[int] = 4


@lru_cache(maxsize=65536)
def corrected_email_domain(domain: str) -> str:
    """The popular provider a misspelt domain stands for, or the domain unchanged."""
    if domain in POPULAR_EMAIL_DOMAINS:
        return domain
    label, _, tail = domain.partition(".")
    candidates = set()
    for provider in POPULAR_EMAIL_DOMAINS:
        provider_label, _, provider_tail = provider.partition(".")
        if (label == provider_label and provider_tail == "com" and tail in _COM_TYPOS) or (
            tail == provider_tail
            and len(label) >= _MIN_CORRECTED_LABEL
            and edit_distance(label, provider_label, 1) <= 1
        ):
            candidates.add(provider)
    return candidates.pop() if len(candidates) == 1 else domain


_SPECIAL_USE_SET = frozenset(_SPECIAL_USE_DOMAINS)
_MAX_EMAIL: Final[int] = 254


def _is_special_use(domain: str) -> bool:
    return domain in _SPECIAL_USE_SET or domain.rpartition(".")[2] in _SPECIAL_USE_SET


# --- phone --------------------------------------------------------------------------------

_PHONE_TYPES: Final[tuple[str, ...]] = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)
_EXTENSION_RE2 = r"(?i)\s*(?:ext\.?|extension|x|#)\s*\d{1,6}\s*$"
_EXTENSION = re.compile(_EXTENSION_RE2)
_NON_DIGITS = re.compile(r"\D")


@lru_cache(maxsize=8)
def _valid_national_number_pattern(country_code: int) -> re.Pattern[str] | None:
    """Every number-type pattern of every region sharing a calling code, as one regex.

    ``phonenumbers.is_valid_number`` accepts a number iff its national significant number fully
    matches one of these patterns for some region of its calling code; doing it with one
    compiled regex is ~30x faster and gives the same answer (tested).
    """
    patterns: list[str] = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
        if metadata is None:
            continue
        for name in _PHONE_TYPES:
            desc = getattr(metadata, name, None)
            if desc is not None and desc.national_number_pattern:
                patterns.append(f"(?:{desc.national_number_pattern})")
    return re.compile("|".join(patterns)) if patterns else None


def _is_structural_junk(digits: str) -> bool:
    """One repeated digit or a straight run (1234567890): placeholders, not phones."""
    if digits.count(digits[0]) == len(digits):
        return True
    return digits in "01234567890123456789" or digits in "98765432109876543210"


# --- dates --------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ][0-9:.+\-Z]*)?")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_YEAR_FIRST_DATE = re.compile(r"(\d{4})[/.](\d{1,2})[/.](\d{1,2})")
_YEAR_LAST_DATE = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})")
_MIN_BIRTH_YEAR: Final[int] = 1900


# --- addresses ----------------------------------------------------------------------------

#: USPS-style abbreviations, applied per token so "Main Street" and "main st." agree.
STREET_ABBREVIATIONS: Final[dict[str, str]] = {
    "street": "st",
    "str": "st",
    "avenue": "ave",
    "av": "ave",
    "aven": "ave",
    "road": "rd",
    "boulevard": "blvd",
    "boul": "blvd",
    "drive": "dr",
    "drv": "dr",
    "lane": "ln",
    "court": "ct",
    "place": "pl",
    "terrace": "ter",
    "highway": "hwy",
    "parkway": "pkwy",
    "circle": "cir",
    "square": "sq",
    "trail": "trl",
    "way": "wy",
    "expressway": "expy",
    "freeway": "fwy",
    "crescent": "cres",
    "point": "pt",
    "mount": "mt",
    "heights": "hts",
    "apartment": "apt",
    "suite": "ste",
    "building": "bldg",
    "floor": "fl",
    "unit": "unit",
    "number": "no",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
}
_APOSTROPHES = re.compile(r"['’`.]")
_PUNCTUATION = re.compile(r"[^\w\s]|_")
_NAME_DROP = re.compile(r"['’`.]")
_NAME_OTHER = re.compile(r"[^a-z\s\-]")
_NAME_TITLES: Final[frozenset[str]] = frozenset(
    {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "rev"}
)
_NAME_SUFFIXES: Final[frozenset[str]] = frozenset(
    {"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"}
)
_US_ZIP = re.compile(r"(\d{5})(?:\d{4})?")
_POSTAL_DROP = re.compile(r"[\s\-.]")

US_STATES: Final[dict[str, str]] = {
    "alabama": "al",
    "alaska": "ak",
    "arizona": "az",
    "arkansas": "ar",
    "california": "ca",
    "colorado": "co",
    "connecticut": "ct",
    "delaware": "de",
    "district of columbia": "dc",
    "florida": "fl",
    "georgia": "ga",
    "hawaii": "hi",
    "idaho": "id",
    "illinois": "il",
    "indiana": "in",
    "iowa": "ia",
    "kansas": "ks",
    "kentucky": "ky",
    "louisiana": "la",
    "maine": "me",
    "maryland": "md",
    "massachusetts": "ma",
    "michigan": "mi",
    "minnesota": "mn",
    "mississippi": "ms",
    "missouri": "mo",
    "montana": "mt",
    "nebraska": "ne",
    "nevada": "nv",
    "new hampshire": "nh",
    "new jersey": "nj",
    "new mexico": "nm",
    "new york": "ny",
    "north carolina": "nc",
    "north dakota": "nd",
    "ohio": "oh",
    "oklahoma": "ok",
    "oregon": "or",
    "pennsylvania": "pa",
    "rhode island": "ri",
    "south carolina": "sc",
    "south dakota": "sd",
    "tennessee": "tn",
    "texas": "tx",
    "utah": "ut",
    "vermont": "vt",
    "virginia": "va",
    "washington": "wa",
    "west virginia": "wv",
    "wisconsin": "wi",
    "wyoming": "wy",
    "puerto rico": "pr",
}

_COUNTRY_ALIASES: Final[dict[str, str]] = {
    "usa": "US",
    "u s a": "US",
    "u s": "US",
    "united states of america": "US",
    "america": "US",
    "uk": "GB",
    "u k": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "deutschland": "DE",
    "holland": "NL",
    "the netherlands": "NL",
    "espana": "ES",
    "russia": "RU",
    "south korea": "KR",
    "korea": "KR",
    "czech republic": "CZ",
    "uae": "AE",
    "viet nam": "VN",
    # ISO alpha-3 of the most common countries in customer data
    "gbr": "GB",
    "deu": "DE",
    "fra": "FR",
    "esp": "ES",
    "ita": "IT",
    "nld": "NL",
    "bel": "BE",
    "che": "CH",
    "aut": "AT",
    "swe": "SE",
    "nor": "NO",
    "dnk": "DK",
    "fin": "FI",
    "irl": "IE",
    "prt": "PT",
    "pol": "PL",
    "can": "CA",
    "mex": "MX",
    "bra": "BR",
    "arg": "AR",
    "aus": "AU",
    "nzl": "NZ",
    "jpn": "JP",
    "chn": "CN",
    "ind": "IN",
    "zaf": "ZA",
}


def _clean_words(text: str) -> str:
    """Casefolded, accent-free words: apostrophes and dots vanish, other punctuation splits."""
    folded = strip_accents(text)
    folded = _APOSTROPHES.sub("", folded)
    folded = _PUNCTUATION.sub(" ", folded)
    return _SPACES.sub(" ", folded).strip()


@lru_cache(maxsize=1)
def _country_names() -> dict[str, str]:
    """Cleaned country name / code -> ISO alpha-2, from phonenumbers' locale data.

    The locale data takes a third of a second to import, so it is read on first use only.
    """
    from phonenumbers.geodata.locale import LOCALE_DATA

    names: dict[str, str] = {}
    for code, by_language in LOCALE_DATA.items():
        if len(code) != 2 or not code.isalpha():
            continue
        names[code.casefold()] = code
        for language in ("aa", "en", "de", "fr", "es", "it", "nl", "pt"):
            name = by_language.get(language)
            while isinstance(name, str) and name.startswith("*"):
                name = by_language.get(name[1:])
            if isinstance(name, str) and name:
                names.setdefault(_clean_words(name), code)
    for alias, code in _COUNTRY_ALIASES.items():
        names[alias] = code
    return names


# --- the normalizer -----------------------------------------------------------------------


class Normalizer:
    """Scalar normalizers for each attribute plus the vectorised frame path that reuses them.

    Holds the settings (blocklist, default phone region); build one per run and reuse it.
    """

    def __init__(
        self, settings: IdentitySettings | None = None, *, today: date | None = None
    ) -> None:
        self.settings = settings or IdentitySettings()
        self.today = today or datetime.now(UTC).date()
        self.region = self.settings.phone_default_region
        self._region_code = phonenumbers.country_code_for_region(self.region)
        self._block_values = self.settings.blocklist_values
        wildcards = self.settings.blocklist_wildcards
        self._block_at, self._block_other = self.settings.blocklist_regexes
        self._block_re2 = [
            "^" + ".*".join(re.escape(part) for part in w.split("*")) + "$" for w in wildcards
        ]

    # scalar normalizers: each returns (value, Status); a missing input is (None, OK)

    def _blocked(self, value: str) -> bool:
        """Whether an already casefolded value is junk (exact entries, then wildcards)."""
        if value in self._block_values:
            return True
        if "@" in value:
            return self._block_at is not None and self._block_at.match(value) is not None
        return self._block_other is not None and self._block_other.match(value) is not None

    def _junk(self, text: str) -> bool:
        return self._blocked(text.casefold())

    @cached_property
    def _country_names(self) -> dict[str, str]:
        return _country_names()

    def warm_up(self) -> None:
        """Read the reference data loaded on first use now (country names), so that a
        latency-bound caller (real-time resolution) does not pay for it on its first record."""
        _ = self._country_names

    def _junk_mask(self, text: pa.Array) -> pa.Array:
        """Vectorised ``_junk`` over an Arrow string array (null stays false)."""
        from identity._batch import junk_mask

        return junk_mask(self, text)

    def email(self, raw: Any) -> Result:
        """Lowercased, validated address; null if invalid or a placeholder."""
        text = _text(raw)
        if text is None:
            return _MISSING
        text = text.lower().removeprefix("mailto:").strip()
        if self._blocked(text):
            return None, Status.JUNK
        match = _PLAIN_EMAIL.fullmatch(text)
        if match is not None and len(text) <= _MAX_EMAIL:
            return self._plain_email(text, match["user"], match["domain"])
        return self._validated_email(text)

    def _plain_email(self, text: str, user: str, domain: str) -> Result:
        if _is_special_use(domain):
            return self._validated_email(text)
        corrected = corrected_email_domain(domain)
        if corrected != domain:
            return f"{user}@{corrected}", Status.CORRECTED
        return text, Status.OK

    def _validated_email(self, text: str) -> Result:
        try:
            info = email_validator.validate_email(
                text, check_deliverability=False, test_environment=False
            )
        except email_validator.EmailNotValidError:
            return None, Status.INVALID
        normalized = info.normalized.lower()
        if self._blocked(normalized):
            return None, Status.JUNK
        return normalized, Status.OK

    def email_batch(self, values: list[str]) -> list[Result]:
        """``email`` for many distinct raw values, vectorised (see ``identity._batch``)."""
        from identity._batch import email_batch

        return email_batch(self, values)

    def phone(self, raw: Any) -> Result:
        """E.164 number; null if it is not a valid number or a placeholder."""
        text = _text(raw)
        if text is None:
            return _MISSING
        if self._junk(text):
            return None, Status.JUNK
        text = _EXTENSION.sub("", text)
        return self._phone_digits(_NON_DIGITS.sub("", text), text.startswith(("+", "00")))

    def phone_batch(self, values: list[str]) -> list[Result]:
        """``phone`` for many distinct raw values, vectorised (see ``identity._batch``)."""
        from identity._batch import phone_batch

        return phone_batch(self, values)

    def _phone_digits(self, digits: str, international: bool) -> Result:
        if not digits:
            return None, Status.INVALID
        if self._blocked(digits):
            return None, Status.JUNK
        if international and digits.startswith("00"):
            digits = digits[2:]
        fast = self._nanp_fast_path(digits, international)
        if fast is not None:
            return fast
        try:
            number = phonenumbers.parse(("+" if international else "") + digits, self.region)
        except phonenumbers.NumberParseException:
            return None, Status.INVALID
        if not phonenumbers.is_valid_number(number):
            return None, Status.INVALID
        national = str(number.national_number)
        if _is_structural_junk(national) or self._blocked(national):
            return None, Status.JUNK
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), Status.OK

    def _nanp_fast_path(self, digits: str, international: bool) -> Result | None:
        """Validate +1 numbers by the metadata regex; None when the general path must decide."""
        if international:
            if not (digits.startswith("1") and len(digits) == 11):
                return None
            national = digits[1:]
        elif self._region_code == 1 and len(digits) == 10:
            national = digits
        elif self._region_code == 1 and len(digits) == 11 and digits.startswith("1"):
            national = digits[1:]
        else:
            return None
        if self._blocked(national) or _is_structural_junk(national):
            return None, Status.JUNK
        pattern = _valid_national_number_pattern(1)
        if pattern is None or pattern.fullmatch(national) is None:
            return None, Status.INVALID
        return "+1" + national, Status.OK

    def name(self, raw: Any) -> Result:
        """Casefolded letters, spaces and hyphens; null if empty or a placeholder."""
        text = _text(raw)
        if text is None:
            return _MISSING
        if self._junk(text):
            return None, Status.JUNK
        cleaned = _NAME_DROP.sub("", strip_accents(text))
        cleaned = _NAME_OTHER.sub(" ", cleaned)
        cleaned = _SPACES.sub(" ", cleaned).strip(" -")
        if not cleaned:
            return None, Status.INVALID
        if self._blocked(cleaned):
            return None, Status.JUNK
        return cleaned, Status.OK

    def full_name(self, raw: Any) -> Result:
        """(first, last) from a full name: 'Last, First' or 'First [Middle] Last'."""
        text = _text(raw)
        if text is None:
            return _MISSING
        if self._junk(text):
            return None, Status.JUNK
        if "," in text:
            last_part, _, first_part = text.partition(",")
            text = f"{first_part} {last_part}"
        cleaned, status = self.name(text)
        if cleaned is None:
            return None, status
        tokens = [
            t for t in cleaned.split(" ") if t.replace("-", "") not in _NAME_TITLES | _NAME_SUFFIXES
        ]
        if not tokens:
            return None, Status.INVALID
        first = tokens[0]
        last = tokens[-1] if len(tokens) > 1 else None
        return (first, last), Status.OK

    def birth_date(self, raw: Any) -> Result:
        """ISO date from ISO 8601, YYYYMMDD, YYYY/MM/DD or D/M/YYYY (see ``_day_month``)."""
        if isinstance(raw, datetime):
            raw = raw.date()
        if isinstance(raw, date):
            return self._checked_date(raw.year, raw.month, raw.day)
        text = _text(raw)
        if text is None:
            return _MISSING
        if self._junk(text):
            return None, Status.JUNK
        for pattern in (_ISO_DATE, _COMPACT_DATE, _YEAR_FIRST_DATE):
            match = pattern.fullmatch(text)
            if match is not None:
                year, month, day = (int(g) for g in match.groups())
                return self._checked_date(year, month, day)
        match = _YEAR_LAST_DATE.fullmatch(text)
        if match is not None:
            first, second, year = (int(g) for g in match.groups())
            day, month = _day_month(first, second)
            return self._checked_date(year, month, day)
        return None, Status.INVALID

    def _checked_date(self, year: int, month: int, day: int) -> Result:
        try:
            value = date(year, month, day)
        except ValueError:
            return None, Status.INVALID
        if value.year < _MIN_BIRTH_YEAR or value > self.today:
            return None, Status.INVALID
        return value.isoformat(), Status.OK

    def street_address(self, raw: Any) -> Result:
        """Casefolded words without punctuation, suffixes abbreviated (street -> st)."""
        text = _text(raw)
        if text is None:
            return _MISSING
        if self._junk(text):
            return None, Status.JUNK
        words = _clean_words(text.replace("#", " "))
        if not words:
            return None, Status.INVALID
        return " ".join(STREET_ABBREVIATIONS.get(w, w) for w in words.split(" ")), Status.OK

    def street_address_batch(self, values: list[str]) -> list[Result]:
        """``street_address`` for many distinct values, vectorised (see ``identity._batch``)."""
        from identity._batch import street_address_batch

        return street_address_batch(self, values)

    def postal_code(self, raw: Any, *, is_us: bool) -> Result:
        """Uppercase without spaces; US codes become the 5-digit ZIP (leading zeros restored)."""
        text = _text(raw)
        if text is None:
            return _MISSING
        if self._junk(text):
            return None, Status.JUNK
        cleaned = _POSTAL_DROP.sub("", text).upper()
        if not cleaned or not cleaned.isalnum():
            return None, Status.INVALID
        if is_us:
            if cleaned.isdigit() and len(cleaned) in (3, 4):
                return cleaned.zfill(5), Status.OK
            match = _US_ZIP.fullmatch(cleaned)
            if match is None:
                return None, Status.INVALID
            if match[1] == "00000":
                return None, Status.JUNK
            return match[1], Status.OK
        return cleaned, Status.OK

    def place(self, raw: Any) -> Result:
        """A city: casefolded words without punctuation."""
        text = _text(raw)
        if text is None:
            return _MISSING
        if self._junk(text):
            return None, Status.JUNK
        words = _clean_words(text)
        return (words, Status.OK) if words else (None, Status.INVALID)

    def region_name(self, raw: Any) -> Result:
        """A region: like a city, US state names shortened to their code."""
        value, status = self.place(raw)
        if value is None:
            return value, status
        return US_STATES.get(value, value), status

    def country(self, raw: Any) -> Result:
        """ISO 3166 alpha-2 when recognisable, else the cleaned text uppercased (counted)."""
        text = _text(raw)
        if text is None:
            return _MISSING
        if self._junk(text):
            return None, Status.JUNK
        words = _clean_words(text)
        if not words:
            return None, Status.INVALID
        code = self._country_names.get(words)
        if code is None:
            return words.upper(), Status.INVALID
        return code, Status.OK

    def identifier(self, identifier_type: str, raw: Any) -> Result:
        """A named identifier: emails and phones as above; others trimmed, case kept."""
        if identifier_type == "email":
            return self.email(raw)
        if identifier_type == "phone":
            return self.phone(raw)
        text = _text(raw)
        if text is None:
            return _MISSING
        text = _SPACES.sub(" ", text)
        if self._junk(text):
            return None, Status.JUNK
        return text, Status.OK

    # one record (real time) ------------------------------------------------------------

    def record(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Normalize one record given as a mapping of canonical attribute -> raw value."""
        out: dict[str, Any] = {c: None for c in NORMALIZED_COLUMNS}
        for key in ("record_uid", "source", "record_id"):
            out[key] = _text(raw.get(key))
        out["email"] = self.email(raw.get("email"))[0]
        if out["email"] is not None:
            out["email_user"], _, out["email_domain"] = out["email"].rpartition("@")
        out["phone"] = self.phone(raw.get("phone"))[0]
        out["first_name"] = self.name(raw.get("first_name"))[0]
        out["last_name"] = self.name(raw.get("last_name"))[0]
        if out["first_name"] is None or out["last_name"] is None:
            split = self.full_name(raw.get("full_name"))[0]
            if split is not None:
                out["first_name"] = out["first_name"] or split[0]
                out["last_name"] = out["last_name"] or split[1]
        out["first_name_canonical"] = canonical_first_name(out["first_name"])
        out["birth_date"] = self.birth_date(raw.get("birth_date"))[0]
        out["street_address"] = self.street_address(raw.get("street_address"))[0]
        out["country"] = self.country(raw.get("country"))[0]
        out["postal_code"] = self.postal_code(
            raw.get("postal_code"), is_us=self._is_us(out["country"])
        )[0]
        out["city"] = self.place(raw.get("city"))[0]
        out["region"] = self.region_name(raw.get("region"))[0]
        observed = raw.get("observed_at")
        if _text(observed):
            import pandas as pd

            out["observed_at"] = pd.Timestamp(observed).tz_convert(UTC)
        else:
            out["observed_at"] = None
        return out

    def _is_us(self, country: str | None) -> bool:
        return country == "US" if country is not None else self.region == "US"

    # whole frames ---------------------------------------------------------------------

    def frame(self, records: pd.DataFrame) -> tuple[pd.DataFrame, NormalizationReport]:
        """Normalize a frame of raw records (see CONTRACT.md for input and output columns)."""
        normalized = self.normalize(records)
        return normalized.records, normalized.report

    def normalize(self, records: pd.DataFrame) -> Normalized:
        """One pass over raw records: the normalized record frame the matcher compares, and
        identity_attributes (golden-ready values with their status, people records only)."""
        from identity._batch import normalize_frame

        return normalize_frame(self, records)


def _day_month(first: int, second: int) -> tuple[int, int]:
    """(day, month) of a D/M/YYYY or M/D/YYYY date.

    Day first (DD/MM/YYYY) unless that cannot be a date and month first can: '03/25/1980'
    (second part > 12) is read as 25 March. Ambiguous dates ('03/04/1980') are day first.
    """
    if second > 12 >= first:
        return second, first
    return first, second


def normalize_with_report(
    records: pd.DataFrame, settings: IdentitySettings | None = None, *, today: date | None = None
) -> tuple[pd.DataFrame, NormalizationReport]:
    """The normalized record frame plus counts of invalid and junk values per attribute."""
    frame, report = Normalizer(settings, today=today).frame(records)
    if report.invalid or report.junk:
        logger.info("normalization: invalid %s, junk %s", report.invalid, report.junk)
    return frame, report


def normalize_records(
    records: pd.DataFrame, settings: IdentitySettings | None = None, *, today: date | None = None
) -> pd.DataFrame:
    """The normalized record frame of the contract (absent inputs become null columns)."""
    return normalize_with_report(records, settings, today=today)[0]


# one lookup (the API's customer(lookup:), access and erasure requests) ----------------------

#: Longest identifier value a lookup accepts.
MAX_LOOKUP_LENGTH: Final[int] = 512


class LookupValueError(ValueError):
    """An identifier value that names no one: empty, too long, invalid or blocklisted junk.

    The message says what is wrong and how to write it; callers word it for their own users
    (a GraphQL error, a CLI message) by re-raising it as their error type.
    """


def lookup_value(
    normalizer: Normalizer | None,
    identifier_type: str,
    value: str,
    *,
    field: str = "the identifier's value",
) -> str:
    """The normalized value a lookup of ``identifier_type`` searches for.

    ``normalizer`` None only checks and strips (ids that are not normalized, such as retired
    customer ids). ``field`` names the value in messages (``lookup.value`` in GraphQL).
    LookupValueError for a value that can name no one, with a message a person can act on.
    """
    if not value or not value.strip():
        raise LookupValueError(f"{field} is empty")
    if len(value) > MAX_LOOKUP_LENGTH:
        raise LookupValueError(f"{field} is longer than {MAX_LOOKUP_LENGTH} characters")
    if normalizer is None:
        return value.strip()
    normalized, status = normalizer.identifier(identifier_type, value)
    shown = value.strip()[:80]
    if status == Status.INVALID:
        if identifier_type == "phone":
            raise LookupValueError(
                f"'{shown}' is not a valid phone number (numbers without a +country code are "
                f"read as {normalizer.region}); write it in international form, e.g. "
                "+14155552671"
            )
        what = "email address" if identifier_type == "email" else identifier_type
        raise LookupValueError(f"'{shown}' is not a valid {what}")
    if status == Status.JUNK:
        raise LookupValueError(
            f"'{shown}' is a placeholder value (blocklisted junk such as test@example.com or "
            "0000000000); identity never links records by it, so it names no one"
        )
    if normalized is None:
        raise LookupValueError(f"{field} is empty after normalization")
    return str(normalized)
