"""Constructed identity data with known truth (no generator needed): people with typos,
nicknames, phone formats, swapped names, households and junk values."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pandas as pd

from dagster_project.lib.generate.vocab import (
    FIRST_NAMES_FEMALE,
    FIRST_NAMES_MALE,
    NICKNAME_PAIRS,
)
from dagster_project.lib.generate.vocab import LAST_NAMES as VOCAB_LAST_NAMES

#: Names from the sample world's vocabulary (one home for synthetic names), lower-cased as
#: a CRM export might write them; the first nickname of each formal name.
FIRST_NAMES = [n.lower() for n in (*FIRST_NAMES_MALE[:31], *FIRST_NAMES_FEMALE[:31])]
NICKNAMES = {
    formal.lower(): nick
    for formal, nick in reversed(NICKNAME_PAIRS)
    if formal.lower() in FIRST_NAMES
}
LAST_NAMES = [n.lower() for n in VOCAB_LAST_NAMES[:50]] + [
    n.lower().replace("'", "") for n in VOCAB_LAST_NAMES[-40:-29]
]
STREETS = ["main", "oak", "pine", "maple", "cedar", "elm", "washington", "lake", "hill", "park"]
SUFFIXES = [("Street", "St."), ("Avenue", "Ave"), ("Road", "Rd"), ("Drive", "Dr.")]
CITIES = [
    ("Boston", "MA", "02"),
    ("New York", "NY", "10"),
    ("Chicago", "IL", "60"),
    ("Austin", "TX", "78"),
    ("Seattle", "WA", "98"),
    ("Denver", "CO", "80"),
]
AREA_CODES = ["212", "617", "312", "512", "206", "303", "415", "646", "718", "773"]
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "aol.com"]


@dataclass
class Person:
    person_id: str
    first: str
    last: str
    birth: str
    street: str
    city: str
    region: str
    postal: str
    phone: str
    email: str


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 1)
    op = rng.choice(["swap", "drop", "sub"])
    if op == "swap":
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if op == "drop":
        return text[:i] + text[i + 1 :]
    return text[:i] + rng.choice("aeiou") + text[i + 1 :]


def _phone_format(rng: random.Random, digits: str) -> str:
    a, b, c = digits[:3], digits[3:6], digits[6:]
    return rng.choice(
        [f"({a}) {b}-{c}", f"{a}.{b}.{c}", f"+1 {a} {b} {c}", f"{a}{b}{c}", f"{a}-{b}-{c}"]
    )


def make_persons(n: int, seed: int, household_rate: float = 0.1) -> list[Person]:
    rng = random.Random(seed)
    persons = []
    for i in range(n):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, region, zip_prefix = rng.choice(CITIES)
        street_name, (suffix, _) = rng.choice(STREETS), rng.choice(SUFFIXES)
        birth = f"{rng.randint(1940, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        phone = f"{rng.choice(AREA_CODES)}{rng.randint(2, 9)}{rng.randint(0, 99):02d}" + (
            f"{rng.randint(0, 9999):04d}"
        )
        email = f"{first}.{last}{i}@{rng.choice(DOMAINS)}"
        persons.append(
            Person(
                person_id=f"p{i:06d}",
                first=first,
                last=last,
                birth=birth,
                street=f"{rng.randint(1, 9999)} {street_name.title()} {suffix}",
                city=city,
                region=region,
                postal=f"{zip_prefix}{rng.randint(100, 999)}",
                phone=phone,
                email=email,
            )
        )
    # households: the next person shares the phone, address and (mostly) the last name
    for i in range(0, n - 1, 2):
        if rng.random() < household_rate:
            head, member = persons[i], persons[i + 1]
            member.phone, member.street = head.phone, head.street
            member.city, member.region, member.postal = head.city, head.region, head.postal
            if rng.random() < 0.8:
                member.last = head.last
    return persons


def messy_records(
    persons: list[Person],
    seed: int,
    *,
    sources: tuple[str, ...] = ("crm", "shop"),
    coverage: float = 0.8,
    junk_rate: float = 0.02,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Raw records (one per person per source, with noise), named identifiers and truth."""
    rng = random.Random(seed)
    rows, ids, truth = [], [], {}
    for s_index, source in enumerate(sources):
        for person in persons:
            if rng.random() > coverage and s_index > 0:
                continue
            record_id = f"{source[0].upper()}{person.person_id[1:]}"
            first = person.first.title()
            if rng.random() < 0.15 and person.first in NICKNAMES:
                first = NICKNAMES[person.first]
            elif rng.random() < 0.1:
                first = _typo(rng, first)
            last = person.last.title() if rng.random() > 0.1 else _typo(rng, person.last.title())
            if rng.random() < 0.03:
                first, last = last, first
            street = person.street
            for long, short in SUFFIXES:
                if rng.random() < 0.5:
                    street = street.replace(long, short)
            birth = person.birth
            if rng.random() < 0.3:
                y, m, d = birth.split("-")
                birth = rng.choice([f"{y}{m}{d}", f"{d}/{m}/{y}"])
            email = person.email.upper() if rng.random() < 0.2 else person.email
            phone = _phone_format(rng, person.phone)
            if rng.random() < junk_rate:
                email = rng.choice(["test@example.com", "none@none.com", "n/a"])
            if rng.random() < junk_rate:
                phone = rng.choice(["0000000000", "1234567890", "n/a"])
            row = {
                "record_uid": f"{source}:{record_id}",
                "source": source,
                "record_id": record_id,
                "first_name": first if rng.random() > 0.03 else None,
                "last_name": last,
                "email": email if rng.random() > 0.1 else None,
                "phone": phone if rng.random() > 0.1 else None,
                "birth_date": birth if rng.random() > 0.05 else None,
                "street_address": street if rng.random() > 0.1 else None,
                "city": person.city,
                "region": person.region,
                "postal_code": person.postal,
                "country": "US",
            }
            rows.append(row)
            truth[row["record_uid"]] = person.person_id
            if source == "crm":
                ids.append((row["record_uid"], "loyalty_id", f"L{person.person_id[1:]}"))
            else:
                ids.append((row["record_uid"], "account_id", f"A{person.person_id[1:]}"))
    records = pd.DataFrame(rows)
    identifiers = pd.DataFrame(ids, columns=["record_uid", "identifier_type", "identifier_value"])
    return records, identifiers, pd.Series(truth, name="person_id")
