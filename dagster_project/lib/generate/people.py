"""The two person-describing exports: the CRM/loyalty file and the e-commerce accounts.

The CRM is the cleaner, older system (formal names, the email people joined with). The shop
accounts are self-typed by customers, so they carry most of the noise: nicknames, typos,
swapped names, a newer email, any phone format, missing and junk values, duplicate accounts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dagster_project.lib.generate import messiness, vocab
from dagster_project.lib.generate.common import (
    DAY,
    HOUR,
    Stream,
    Window,
    iso_date,
    join,
    padded,
    stream,
    strings,
    take,
    where,
)
from dagster_project.lib.generate.world import World, make_unique, street_line

_BOOL_TEXT = strings(["false", "true"])


@dataclass
class Crm:
    """CRM rows (sorted by customer number) and whose row each is."""

    table: pa.Table
    person: np.ndarray
    email: pa.Array  # the address each CRM row holds, per person (null without a row)


@dataclass
class Accounts:
    """Shop accounts sorted by creation time."""

    table: pa.Table
    person: np.ndarray
    created_at: np.ndarray
    account_id: pa.Array
    first_of_person: np.ndarray  # per person: index of the first account or -1
    second_of_person: np.ndarray  # per person: index of the duplicate account or -1


def _bool_text(values: np.ndarray) -> pa.Array:
    return take(_BOOL_TEXT, values.astype(np.int8))


def _case_modes(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    hit = rng.random(n) < share
    return np.where(hit, rng.integers(1, 4, n), 0)


def build_crm(world: World, seed: int, noise: dict[str, int]) -> Crm:
    """One CRM row per person with a loyalty membership, numbered in the order they joined."""
    rng = stream(seed, Stream.CRM)
    members = np.flatnonzero(world.has_crm)
    members = members[np.argsort(world.signup_at[members], kind="stable")]
    n = len(members)
    index = pa.array(members)

    first = pc.take(world.first_name, index)
    last = pc.take(world.last_name, index)
    shouting = rng.random(n) < 0.02  # a few rows typed in capitals
    first = where(shouting, pc.utf8_upper(first), first)
    last = where(shouting, pc.utf8_upper(last), last)
    first_typo = rng.random(n) < 0.01
    last_typo = rng.random(n) < 0.01
    first = messiness.typos(first, first_typo, rng)
    last = messiness.typos(last, last_typo, rng)

    person_email = pc.coalesce(world.previous_email, world.email)
    email = pc.take(person_email, index)
    email_missing = rng.random(n) < 0.04
    email_junk = ~email_missing & (rng.random(n) < 0.005)
    email = messiness.blank(email, email_missing)
    email = messiness.junk(email, email_junk, vocab.JUNK_EMAILS, rng)

    style = np.where(rng.random(n) < 0.7, 0, 4)
    phone = messiness.phone_text(
        world.phone_area[members], world.phone_exchange[members], world.phone_line[members], style
    )
    phone_missing = rng.random(n) < 0.10
    phone_junk = ~phone_missing & (rng.random(n) < 0.005)
    phone = messiness.blank(phone, phone_missing)
    phone = messiness.junk(phone, phone_junk, vocab.JUNK_PHONES, rng)

    street = pc.take(street_line(world, abbreviate=np.ones(world.n, dtype=bool)), index)
    street_typo = rng.random(n) < 0.01
    street = messiness.typos(street, street_typo, rng)
    address_missing = rng.random(n) < 0.03

    cities = world.city[members]
    birth = iso_date(world.birth_day[members])
    birth_missing = rng.random(n) < 0.06

    table = pa.table(
        {
            "customer_number": padded(np.arange(1, n + 1), 7, "C"),
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": phone,
            "street": messiness.blank(street, address_missing),
            "city": messiness.blank(
                take(strings([c[0] for c in vocab.CITIES]), cities), address_missing
            ),
            "state": messiness.blank(
                take(strings([c[1] for c in vocab.CITIES]), cities), address_missing
            ),
            "postal_code": messiness.blank(pc.take(world.postal_code, index), address_missing),
            "country": pa.array(["US"] * n, type=pa.string()),
            "birth_date": messiness.blank(birth, birth_missing),
            "signup_date": iso_date(world.signup_at[members] // DAY),
            "consent_email": _bool_text(world.consent_email[members]),
            "consent_sms": _bool_text(world.consent_sms[members]),
            "consent_push": _bool_text(world.consent_push[members]),
        }
    )
    noise["crm_typos"] = int(first_typo.sum() + last_typo.sum() + street_typo.sum())
    noise["crm_junk_values"] = int(email_junk.sum() + phone_junk.sum())
    noise["crm_missing_values"] = int(
        email_missing.sum() + phone_missing.sum() + address_missing.sum() + birth_missing.sum()
    )
    crm_email = where(world.has_crm, person_email, None)
    return Crm(table=table, person=members, email=crm_email)


def build_accounts(world: World, window: Window, seed: int, noise: dict[str, int]) -> Accounts:
    """Shop accounts: most persons one, a few a forgotten-password duplicate."""
    rng = stream(seed, Stream.SHOP)
    last_moment = window.end - HOUR
    holders = np.flatnonzero(world.n_accounts >= 1)
    first_created = world.signup_at[holders] + np.where(
        world.has_crm[holders], rng.exponential(20 * DAY, len(holders)).astype(np.int64), 0
    )
    first_created = np.minimum(first_created, last_moment)
    dupes = np.flatnonzero(world.n_accounts >= 2)
    first_at = np.zeros(world.n, dtype=np.int64)
    first_at[holders] = first_created
    second_created = first_at[dupes] + (
        rng.random(len(dupes)) * (last_moment - first_at[dupes])
    ).astype(np.int64)

    person = np.concatenate([holders, dupes])
    created = np.concatenate([first_created, second_created])
    is_second = np.concatenate([np.zeros(len(holders), bool), np.ones(len(dupes), bool)])
    order = np.lexsort((is_second, person, created))
    person, created, is_second = person[order], created[order], is_second[order]
    n = len(person)
    index = pa.array(person)

    account_id = padded(100_000_001 + np.arange(n), 9, "A")
    first_of = np.full(world.n, -1, dtype=np.int64)
    second_of = np.full(world.n, -1, dtype=np.int64)
    first_of[person[~is_second]] = np.flatnonzero(~is_second)
    second_of[person[is_second]] = np.flatnonzero(is_second)

    # Names: nicknames, typos, swapped fields, case noise, junk.
    first, used_nickname = messiness.nicknames(pc.take(world.first_name, index), 0.25, rng)
    last = pc.take(world.last_name, index)
    first_typo = rng.random(n) < 0.03
    last_typo = rng.random(n) < 0.04
    first = messiness.typos(first, first_typo, rng)
    last = messiness.typos(last, last_typo, rng)
    swapped = rng.random(n) < 0.02
    first, last = where(swapped, last, first), where(swapped, first, last)
    first = messiness.case_noise(first, _case_modes(rng, n, 0.05))
    last = messiness.case_noise(last, _case_modes(rng, n, 0.05))
    name_junk = rng.random(n) < 0.005
    first = messiness.junk(first, name_junk, vocab.JUNK_NAMES, rng)
    first = messiness.blank(first, rng.random(n) < 0.01)
    last = messiness.blank(last, rng.random(n) < 0.01)

    # Email: the current address; a duplicate account often uses another one.
    email = pc.take(world.email, index)
    alternate = rng.random(n) < 0.6
    alt_rows = np.flatnonzero(is_second & alternate)
    if len(alt_rows):
        local = pc.list_element(pc.split_pattern(pc.take(email, pa.array(alt_rows)), "@"), 0)
        providers = strings([d for d, _ in vocab.EMAIL_PROVIDERS])
        alt = join(
            join(local, padded(rng.integers(10, 100, len(alt_rows)), 2)),
            take(providers, rng.integers(0, len(providers), len(alt_rows))),
            sep="@",
        )
        known = pa.concat_arrays([world.email, world.previous_email.drop_null()])
        unique = make_unique(pa.concat_arrays([known, alt]), rng).slice(len(known))
        mask = np.zeros(n, dtype=bool)
        mask[alt_rows] = True
        email = pc.replace_with_mask(email, pa.array(mask), unique)
    email_case = rng.random(n) < 0.04
    email = where(email_case, pc.utf8_title(email), email)
    email_junk = rng.random(n) < 0.015
    email = messiness.junk(email, email_junk, vocab.JUNK_EMAILS, rng)
    email_spaces = rng.random(n) < 0.01
    email = messiness.padded_spaces(email, email_spaces)
    email = messiness.blank(email, rng.random(n) < 0.02)

    # Phone: any format, often missing, sometimes junk; households share a number.
    style = rng.integers(0, len(messiness.PHONE_STYLES), n)
    phone = messiness.phone_text(
        world.phone_area[person], world.phone_exchange[person], world.phone_line[person], style
    )
    phone_junk = rng.random(n) < 0.01
    phone = messiness.junk(phone, phone_junk, vocab.JUNK_PHONES, rng)
    phone = messiness.blank(phone, rng.random(n) < 0.20)

    # Shipping address: suffix spelled out or not, typos, state names, ZIP+4, country spellings.
    abbreviate = rng.random(world.n) < 0.5
    street = pc.take(street_line(world, abbreviate=abbreviate), index)
    street_typo = rng.random(n) < 0.03
    street = messiness.typos(street, street_typo, rng)
    street = messiness.case_noise(street, np.where(rng.random(n) < 0.03, 1, 0))
    cities = world.city[person]
    city = take(strings([c[0] for c in vocab.CITIES]), cities)
    city = messiness.case_noise(city, np.where(rng.random(n) < 0.03, 2, 0))
    state_code = take(strings([c[1] for c in vocab.CITIES]), cities)
    state_name = take(strings([vocab.STATE_NAMES[c[1]] for c in vocab.CITIES]), cities)
    state = where(rng.random(n) < 0.1, state_name, state_code)
    zip5 = pc.take(world.postal_code, index)
    zip4 = join(zip5, padded(rng.integers(1, 10_000, n), 4), sep="-")
    ship_zip = where(rng.random(n) < 0.05, zip4, zip5)
    country = take(strings(["US", "USA", "United States"]), rng.choice(3, n, p=[0.85, 0.1, 0.05]))
    no_address = rng.random(n) < 0.08

    table = pa.table(
        {
            "account_id": account_id,
            "email": email,
            "first_name": first,
            "last_name": last,
            "phone": phone,
            "ship_street": messiness.blank(street, no_address),
            "ship_city": messiness.blank(city, no_address),
            "ship_state": messiness.blank(state, no_address),
            "ship_zip": messiness.blank(ship_zip, no_address),
            "ship_country": messiness.blank(country, no_address),
            "accepts_marketing": _bool_text(world.accepts_marketing[person]),
            "created_at": pa.array(created, type=pa.timestamp("s", tz="UTC")),
        }
    )
    noise["shop_nicknames"] = int(used_nickname.sum())
    noise["shop_typos"] = int(first_typo.sum() + last_typo.sum() + street_typo.sum())
    noise["shop_swapped_names"] = int(swapped.sum())
    noise["shop_junk_values"] = int(name_junk.sum() + email_junk.sum() + phone_junk.sum())
    noise["shop_duplicate_accounts"] = int(is_second.sum())
    noise["shop_case_noise_emails"] = int(email_case.sum())
    return Accounts(
        table=table,
        person=person,
        created_at=created,
        account_id=account_id,
        first_of_person=first_of,
        second_of_person=second_of,
    )
