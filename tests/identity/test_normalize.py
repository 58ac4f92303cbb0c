from __future__ import annotations

import random
from datetime import date

import pandas as pd
import phonenumbers
import pytest

from identity import (
    ATTRIBUTE_SCHEMA,
    ATTRIBUTE_STATUSES,
    MAX_LOOKUP_LENGTH,
    NORMALIZED_COLUMNS,
    IdentitySettings,
    IdentitySettingsError,
    LookupValueError,
    Normalizer,
    Status,
    load_identity_settings,
    lookup_value,
    normalize_with_report,
)

TODAY = date(2026, 1, 1)


@pytest.fixture(scope="module")
def normalizer() -> Normalizer:
    return Normalizer(IdentitySettings(), today=TODAY)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Bob.Smith@Gmail.COM ", "bob.smith@gmail.com"),
        ("mailto:ann@example.org", "ann@example.org"),
        ("jürgen@müller.de", "jürgen@müller.de"),
    ],
)
def test_email_is_lowercased_and_validated(normalizer: Normalizer, raw: str, expected: str):
    assert normalizer.email(raw) == (expected, Status.OK)


@pytest.mark.parametrize("raw", ["not an email", "a..b@x.com", "x@localhost", "a@b", "@x.com"])
def test_invalid_email_is_null_and_flagged(normalizer: Normalizer, raw: str):
    assert normalizer.email(raw) == (None, Status.INVALID)


@pytest.mark.parametrize("raw", ["TEST@example.com", "none@none.com", "noemail@shop.com", "n/a"])
def test_placeholder_emails_are_junk(normalizer: Normalizer, raw: str):
    assert normalizer.email(raw) == (None, Status.JUNK)


def test_blocklist_is_extendable_with_wildcards():
    custom = Normalizer(IdentitySettings(blocklist=("*@internal.test-corp.com", "Bogus")))
    assert custom.email("ops@internal.test-corp.com")[1] == Status.JUNK
    assert custom.name("bogus")[1] == Status.JUNK
    assert custom.email("ann@example.org")[1] == Status.OK
    replaced = Normalizer(IdentitySettings(use_default_blocklist=False))
    assert replaced.email("test@example.com") == ("test@example.com", Status.OK)


@pytest.mark.parametrize(
    "raw", ["(212) 555-0199", "212.555.0199", "+1 212 555 0199", "2125550199", "1-212-555-0199"]
)
def test_phone_formats_agree_on_e164(normalizer: Normalizer, raw: str):
    assert normalizer.phone(raw) == ("+12125550199", Status.OK)


def test_phone_with_country_code_and_extension(normalizer: Normalizer):
    assert normalizer.phone("+44 20 7946 0958") == ("+442079460958", Status.OK)
    assert normalizer.phone("0044 20 7946 0958") == ("+442079460958", Status.OK)
    assert normalizer.phone("(212) 555-0199 ext. 12") == ("+12125550199", Status.OK)


@pytest.mark.parametrize("raw", ["0000000000", "1234567890", "555-555-5555", "n/a", "9999999999"])
def test_placeholder_phones_are_junk(normalizer: Normalizer, raw: str):
    assert normalizer.phone(raw) == (None, Status.JUNK)


@pytest.mark.parametrize("raw", ["(555) 123-4567", "4821", "call me"])
def test_invalid_phones_are_null(normalizer: Normalizer, raw: str):
    assert normalizer.phone(raw) == (None, Status.INVALID)


def test_default_region_reads_national_numbers():
    british = Normalizer(IdentitySettings(phone_default_region="gb"))
    assert british.phone("020 7946 0958") == ("+442079460958", Status.OK)


def test_nanp_fast_path_agrees_with_phonenumbers(normalizer: Normalizer):
    rng = random.Random(3)
    for _ in range(3000):
        digits = f"{rng.randint(200, 999)}{rng.randint(0, 9_999_999):07d}"
        number = phonenumbers.parse(digits, "US")
        expected = (
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if phonenumbers.is_valid_number(number)
            else None
        )
        value, status = normalizer.phone(digits)
        if status != Status.JUNK:
            assert value == expected, digits


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  José ", "jose"),
        ("O'Brien", "obrien"),
        ("Müller-Lüdenscheidt", "muller-ludenscheidt"),
        ("Mary  Ann", "mary ann"),
        ("Søren", "soren"),
    ],
)
def test_names_are_casefolded_without_accents(normalizer: Normalizer, raw: str, expected: str):
    assert normalizer.name(raw) == (expected, Status.OK)


@pytest.mark.parametrize("raw", ["n/a", "TEST", "Unknown", "asdf"])
def test_placeholder_names_are_junk(normalizer: Normalizer, raw: str):
    assert normalizer.name(raw) == (None, Status.JUNK)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1985-03-04", "1985-03-04"),
        ("1985-03-04T00:00:00Z", "1985-03-04"),
        ("19850304", "1985-03-04"),
        ("04/03/1985", "1985-03-04"),  # ambiguous: day first
        ("25/12/1999", "1999-12-25"),
        ("03/25/1980", "1980-03-25"),  # only month-first is possible
        ("1985/03/04", "1985-03-04"),
    ],
)
def test_birth_dates(normalizer: Normalizer, raw: str, expected: str):
    assert normalizer.birth_date(raw) == (expected, Status.OK)


@pytest.mark.parametrize(
    "raw", ["31/02/1990", "yesterday", "1850-01-01", "2030-01-01", "13/13/1990"]
)
def test_unreadable_birth_dates_are_null(normalizer: Normalizer, raw: str):
    assert normalizer.birth_date(raw) == (None, Status.INVALID)


def test_addresses_and_places(normalizer: Normalizer):
    assert normalizer.street_address("12 Main Street, Apt. #5")[0] == "12 main st apt 5"
    assert normalizer.street_address("12 MAIN ST.")[0] == "12 main st"
    assert normalizer.street_address("1 North Avenue")[0] == "1 n ave"
    assert normalizer.postal_code("2134", is_us=True)[0] == "02134"
    assert normalizer.postal_code("02134-1234", is_us=True)[0] == "02134"
    assert normalizer.postal_code("sw1a 1aa", is_us=False)[0] == "SW1A1AA"
    assert normalizer.region_name("California")[0] == "ca"
    assert normalizer.place("São Paulo")[0] == "sao paulo"
    assert normalizer.country("United States") == ("US", Status.OK)
    assert normalizer.country("usa") == ("US", Status.OK)
    assert normalizer.country("Deutschland") == ("DE", Status.OK)
    assert normalizer.country("Narnia") == ("NARNIA", Status.INVALID)


def test_frame_normalization_counts_and_splits_full_names():
    raw = pd.DataFrame(
        {
            "record_uid": ["s:1", "s:2", "s:3", "s:4"],
            "email": ["Bob@X.com", "test@example.com", "nope", None],
            "first_name": ["Bob", None, "n/a", None],
            "last_name": ["Smith", None, "Doe", "Given"],
            "full_name": [None, "Smith, Jane", None, "Dr. Ann Lee Jr."],
            "birth_date": ["1980-01-02", "31/02/1990", None, "19800102"],
            "postal_code": ["2134", None, None, None],
            "observed_at": ["2024-01-01T10:00:00+02:00", None, None, "garbage"],
        }
    )
    frame, report = normalize_with_report(raw, today=TODAY)
    assert list(frame.columns) == list(NORMALIZED_COLUMNS)
    assert frame["email"].tolist()[0] == "bob@x.com"
    assert frame["email_user"][0] == "bob" and frame["email_domain"][0] == "x.com"
    assert frame["first_name_canonical"][0] == "robert"
    # 'Last, First' fills both missing names; an existing last name is kept
    assert (frame["first_name"][1], frame["last_name"][1]) == ("jane", "smith")
    assert (frame["first_name"][3], frame["last_name"][3]) == ("ann", "given")
    assert frame["postal_code"][0] == "02134"
    assert frame["observed_at"][0] == pd.Timestamp("2024-01-01T08:00:00Z")
    assert pd.isna(frame["observed_at"][3])
    assert report.junk == {"email": 1, "first_name": 1}
    assert report.invalid["email"] == 1 and report.invalid["birth_date"] == 1
    assert report.invalid["observed_at"] == 1
    # absent input columns become null columns, never a crash
    assert frame["phone"].isna().all() and frame["city"].isna().all()


def test_single_record_normalization_matches_the_frame(normalizer: Normalizer):
    raw = {
        "record_uid": "s:1",
        "email": " Ann.Lee@Example.ORG",
        "phone": "212.555.0199",
        "full_name": "Lee, Ann",
        "birth_date": "04/03/1985",
        "street_address": "1 Oak Road",
        "postal_code": "2134",
        "city": "Boston",
        "region": "Massachusetts",
        "country": "USA",
    }
    one = normalizer.record(raw)
    frame, _ = Normalizer(IdentitySettings(), today=TODAY).frame(pd.DataFrame([raw]))
    row = frame.iloc[0].to_dict()
    for column in NORMALIZED_COLUMNS:
        if column == "observed_at":
            continue
        expected = None if pd.isna(row[column]) else row[column]
        assert one[column] == expected, column


def test_settings_errors_name_the_key():
    with pytest.raises(IdentitySettingsError) as error:
        load_identity_settings(
            {"max_cluster_size": 0, "phone_default_region": "XX", "surprise": 1},
            where="cdp.yml",
        )
    message = str(error.value)
    assert "cdp.yml" in message
    assert "identity.max_cluster_size" in message
    assert "identity.phone_default_region" in message
    assert "identity.surprise" in message


def test_settings_take_the_default_phone_region():
    settings = load_identity_settings({}, default_phone_region="GB")
    assert settings.phone_default_region == "GB"
    assert load_identity_settings({"phone_default_region": "us"}).phone_default_region == "US"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ann@gmial.com", "ann@gmail.com"),
        ("ann@yaho.com", "ann@yahoo.com"),
        ("ann@hotmail.con", "ann@hotmail.com"),
        ("ann@outlok.com", "ann@outlook.com"),
    ],
)
def test_misspelt_mailbox_providers_are_corrected(normalizer: Normalizer, raw: str, expected: str):
    assert normalizer.email(raw) == (expected, Status.CORRECTED)


@pytest.mark.parametrize("raw", ["ann@gmail.com", "ann@mail.co.uk", "ann@acme.com", "ann@att.com"])
def test_other_domains_are_left_alone(normalizer: Normalizer, raw: str):
    assert normalizer.email(raw) == (raw, Status.OK)


def test_batch_paths_agree_with_the_scalar_ones(normalizer: Normalizer):
    emails = [
        " Bob@X.com",
        "mailto:ann@example.org",
        "test@example.com",
        "noemail@shop.com",
        "a..b@x.com",
        "jürgen@müller.de",
        "ann@gmial.com",
        "x@localhost",
        "user@test",
        "",
        "n/a",
        "Ops@Internal.Example.COM",
    ]
    assert normalizer.email_batch(emails) == [normalizer.email(e) for e in emails]
    phones = [
        "(212) 555-0199",
        "+1 212 555 0199",
        "0044 20 7946 0958",
        "+44 20 7946 0958",
        "0000000000",
        "n/a",
        "212 555 0199 x12",
        "4821",
        "call me",
        "",
        "(555) 123-4567",
        "1-212-555-0199",
        "5555555555",
    ]
    assert normalizer.phone_batch(phones) == [normalizer.phone(p) for p in phones]
    streets = [
        "12 Main Street, Apt. #5",
        "1 North Ave.",
        "n/a",
        "  ",
        "Rua São João 5",
        "O'Neil Road",
        "Main_St",
        "123 Streetwise Avenue",
        "--",
        "PO Box 7",
    ]
    assert normalizer.street_address_batch(streets) == [
        normalizer.street_address(s) for s in streets
    ]


def test_attributes_are_golden_ready_with_a_status_per_value() -> None:
    """identity_attributes: E.164 phones, validated emails, ISO dates and countries; names and
    address as written; junk and invalid values null with their status; people records only."""
    records = pd.DataFrame(
        {
            "record_uid": ["crm:1", "crm:2", "web:cookie:k1"],
            "source": ["crm", "crm", "web"],
            "record_id": ["1", "2", "cookie:k1"],
            "source_kind": ["people", "people", "events"],
            "email": [" Test@Example.com ", "Ann.Lee@GMIAL.com", "k@x.com"],
            "phone": ["(520) 213-7631", "0000000000", None],
            "first_name": ["  Mary   Ann ", "N/A", None],
            "last_name": ["O'Neil", "12", None],
            "birth_date": ["25/03/1980", "1850-01-01", None],
            "street_address": ["12  Main Street ", None, None],
            "postal_code": ["2139", "00000", None],
            "city": ["Boston", None, None],
            "region": ["MA", None, None],
            "country": ["USA", "Atlantis", None],
        }
    )
    normalized = Normalizer(IdentitySettings(), today=TODAY).normalize(records)
    attributes = normalized.attributes.set_index("record_uid")
    assert list(normalized.attributes.columns) == list(ATTRIBUTE_SCHEMA)
    assert list(attributes.index) == ["crm:1", "crm:2"]  # the cookie is not a people record
    one = attributes.loc["crm:1"].replace({float("nan"): None})
    assert (one["email"], one["email_status"]) == (None, "junk")
    assert (one["phone"], one["phone_status"]) == ("+15202137631", "ok")
    assert one["first_name"] == "Mary Ann" and one["last_name"] == "O'Neil"
    assert one["birth_date"] == "1980-03-25" and one["country"] == "US"
    assert (one["street_address"], one["postal_code"], one["city"]) == (
        "12 Main Street",
        "2139",
        "Boston",
    )
    assert one["full_name"] is None and one["full_name_status"] is None  # no value, no status
    two = attributes.loc["crm:2"].replace({float("nan"): None})
    assert (two["email"], two["email_status"]) == ("ann.lee@gmail.com", "corrected")
    assert (two["phone"], two["phone_status"]) == (None, "junk")
    assert two["first_name"] is None and two["first_name_status"] == "junk"
    assert two["last_name"] is None and two["last_name_status"] == "invalid"
    assert two["birth_date"] is None and two["birth_date_status"] == "invalid"
    # outside the US (the country is not), 00000 is an ordinary postal code
    assert (two["postal_code"], two["postal_code_status"]) == ("00000", "ok")
    assert two["country"] is None and two["country_status"] == "invalid"
    statuses = {s for c in attributes if c.endswith("_status") for s in attributes[c].dropna()}
    assert statuses <= set(ATTRIBUTE_STATUSES)
    # one pass: the matching frame is what frame() returns
    frame, report = Normalizer(IdentitySettings(), today=TODAY).frame(records)
    pd.testing.assert_frame_equal(frame, normalized.records)
    assert report.as_dict() == normalized.report.as_dict()


def test_attribute_statuses_are_the_normalizer_statuses() -> None:
    assert set(ATTRIBUTE_STATUSES) == {status.name.lower() for status in Status}


def test_lookup_value_says_why_a_value_names_no_one() -> None:
    normalizer = Normalizer(IdentitySettings())
    assert lookup_value(normalizer, "email", "  Ann@Shop.COM ") == "ann@shop.com"
    assert lookup_value(None, "alias_customer_id", "  c-1 ") == "c-1"  # checked, not normalized
    cases = [
        ("email", "   ", "the identifier's value is empty"),
        ("email", "a" * (MAX_LOOKUP_LENGTH + 1), f"longer than {MAX_LOOKUP_LENGTH}"),
        ("email", "not an address", "is not a valid email address"),
        ("phone", "12", "international form"),
        ("email", "test@example.com", "placeholder value"),
    ]
    for kind, value, message in cases:
        with pytest.raises(LookupValueError, match=message):
            lookup_value(normalizer, kind, value)
    with pytest.raises(LookupValueError, match=r"`lookup\.value` is empty"):
        lookup_value(normalizer, "email", "", field="`lookup.value`")
