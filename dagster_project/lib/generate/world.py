"""The hidden truth: persons, their households, clean identities and latent behaviour traits.

Everything here is drawn once per person with numpy; the sources are noisy views of it. Traits
are chosen so that later models have real signal to find (affinities drive views, purchase rate
and price sensitivity drive conversion, receptivity drives email engagement, churn stops it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dagster_project.lib.generate import vocab
from dagster_project.lib.generate.common import (
    DAY,
    Stream,
    Window,
    join,
    padded,
    stream,
    strings,
    take,
    zipf_weights,
)

N_CATEGORIES = len(vocab.CATEGORIES)
N_BRANDS = len(vocab.BRANDS)

# Shares of the population (see the brief: ~70% CRM, ~75% shop accounts, overlapping).
CRM_SHARE = 0.70
ACCOUNT_GIVEN_CRM = 0.85
ACCOUNT_GIVEN_NO_CRM = (0.75 - CRM_SHARE * ACCOUNT_GIVEN_CRM) / (1 - CRM_SHARE)
SECOND_ACCOUNT_SHARE = 0.03
HOUSEHOLD_SHARE = 0.18
CHANGED_EMAIL_SHARE = 0.08
CHURNER_SHARE = 0.30
EXISTING_SHARE = 0.35
HEAVY_BROWSER_SHARE = 0.025
APP_USER_SHARE = 0.6
NEVER_OPENS_SHARE = 0.18


@dataclass
class World:
    """Persons as parallel arrays (index = person number); strings as Arrow arrays."""

    n: int
    person_id: pa.Array
    gender: np.ndarray  # int8: 0 female, 1 male
    first_name: pa.Array
    last_name: pa.Array
    birth_day: np.ndarray  # epoch days
    city: np.ndarray  # index into vocab.CITIES
    postal_code: pa.Array
    street_number: np.ndarray
    street_name: np.ndarray  # index into vocab.STREET_NAMES
    street_suffix: np.ndarray  # index into vocab.STREET_SUFFIXES
    unit: pa.Array  # "4B" or null
    household: np.ndarray  # household number or -1
    email: pa.Array  # current address
    previous_email: pa.Array  # the address before a change of provider, else null
    phone_area: np.ndarray
    phone_exchange: np.ndarray
    phone_line: np.ndarray
    has_shared_phone: np.ndarray
    signup_at: np.ndarray  # epoch seconds
    churn_at: np.ndarray  # epoch seconds, -1 when the person does not churn in the window
    activity_rate: np.ndarray  # web sessions per 30 days while active
    purchase_rate: np.ndarray  # multiplier on the odds of buying during a visit
    price_sensitivity: np.ndarray  # 0..1, reaction to price relative to list price
    email_open_rate: np.ndarray  # chance to open a wanted email; 0 for people who never open
    email_click_rate: np.ndarray  # chance to click an opened email with an average offer
    brand_loyalty: np.ndarray  # chance of picking a favourite brand in a category
    login_propensity: np.ndarray  # chance a browsing session is logged in
    category_affinity: np.ndarray  # (n, categories) rows sum to 1
    favorite_brands: np.ndarray  # (n, 3) indices into vocab.BRANDS
    has_crm: np.ndarray
    n_accounts: np.ndarray  # 0, 1 or 2 shop accounts
    n_cookies: np.ndarray
    consent_email: np.ndarray
    consent_sms: np.ndarray
    consent_push: np.ndarray
    accepts_marketing: np.ndarray  # shop-side email opt-in
    email_tolerance: np.ndarray  # emails in 7 days accepted before fatigue sets in
    never_opens: np.ndarray  # subscribed, yet never opens an email
    novelty_seeking: np.ndarray  # 0..1, appetite for brands never bought
    app_rate: np.ndarray  # visits in the mobile app per 30 days (0 without the app)
    _affinity_cdf: np.ndarray | None = field(default=None, repr=False)

    def sample_category(self, person: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A category per row, drawn from that person's affinity (``u`` uniform in [0, 1))."""
        if self._affinity_cdf is None:
            cum = np.cumsum(self.category_affinity, axis=1, dtype=np.float32)
            self._affinity_cdf = cum / cum[:, -1:]
        chosen = (self._affinity_cdf[person] <= u[:, None].astype(np.float32)).sum(axis=1)
        return np.minimum(chosen, N_CATEGORIES - 1)

    def active_end(self, window: Window) -> np.ndarray:
        """Churn time, or the end of the window for persons who stay."""
        return np.where(self.churn_at >= 0, self.churn_at, window.end)


def _ascii_lower(values: pa.Array) -> pa.Array:
    """Lowercase ASCII letters and digits only: the part of a name that ends up in an email."""
    decomposed = pc.utf8_normalize(values, "NFKD")
    return pc.replace_substring_regex(pc.utf8_lower(decomposed), "[^a-z0-9]", "")


def _first_names(gender: np.ndarray, rng: np.random.Generator) -> pa.Array:
    female = strings(vocab.FIRST_NAMES_FEMALE)
    male = strings(vocab.FIRST_NAMES_MALE)
    f_idx = rng.choice(len(female), size=len(gender), p=zipf_weights(len(female), 0.55))
    m_idx = rng.choice(len(male), size=len(gender), p=zipf_weights(len(male), 0.55))
    return pc.if_else(pa.array(gender == 1), take(male, m_idx), take(female, f_idx))


def _email_locals(
    first: pa.Array, last: pa.Array, birth_day: np.ndarray, rng: np.random.Generator
) -> pa.Array:
    f = _ascii_lower(first)
    ln = _ascii_lower(last)
    fi = pc.utf8_slice_codeunits(f, 0, 1)
    li = pc.utf8_slice_codeunits(ln, 0, 1)
    n = len(first)
    year2 = padded((1970 + birth_day // 365) % 100, 2)
    num3 = padded(rng.integers(1, 1000, n), 1)
    patterns = [
        (join(f, ln, sep="."), 30.0),
        (join(f, ln), 12.0),
        (join(fi, ln), 15.0),
        (join(join(f, ln, sep="."), year2), 10.0),
        (join(f, ln, sep="_"), 5.0),
        (join(f, li), 5.0),
        (join(f, num3), 10.0),
        (join(ln, f, sep="."), 5.0),
        (join(join(fi, ln), year2), 8.0),
    ]
    weights = np.array([w for _, w in patterns])
    choice = rng.choice(len(patterns), size=n, p=weights / weights.sum())
    return pc.choose(pa.array(choice.astype(np.int8)), *[p for p, _ in patterns])


def _domains(n: int, rng: np.random.Generator) -> np.ndarray:
    weights = np.array([w for _, w in vocab.EMAIL_PROVIDERS])
    return rng.choice(len(weights), size=n, p=weights / weights.sum())


def make_unique(
    values: pa.Array, rng: np.random.Generator, *, suffix_at: str = "@", max_rounds: int = 20
) -> pa.Array:
    """Append digits before ``suffix_at`` to every repeat of a value until all are distinct.

    Used for email addresses: two John Smiths must not share ``john.smith@gmail.com`` unless a
    shared address is intended, because the ground truth maps each address to one person.
    """
    for _ in range(max_rounds):
        # Codes are numbered in order of first appearance, so a row repeats an earlier value
        # exactly when its code is not above every code before it.
        codes = pc.dictionary_encode(values).indices.to_numpy(zero_copy_only=False)
        seen_max = np.maximum.accumulate(np.concatenate([[-1], codes[:-1]]))
        dup = codes <= seen_max
        if not dup.any():
            return values
        idx = np.flatnonzero(dup)
        digits = padded(rng.integers(2, 100, len(idx)), 1)
        subset = pc.take(values, pa.array(idx))
        parts = pc.split_pattern(subset, suffix_at, max_splits=1)
        local = pc.list_element(parts, 0)
        domain = pc.list_element(parts, 1)
        fixed = join(join(local, digits), domain, sep=suffix_at)
        values = pc.replace_with_mask(values, pa.array(dup), fixed)
    raise RuntimeError("could not make values unique; widen the suffix range")


def _unique_phones(
    area: np.ndarray, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exchanges and line numbers that are valid NANP numbers and distinct per area code."""

    def draw(k: int) -> tuple[np.ndarray, np.ndarray]:
        exchange = rng.integers(200, 1000, k)
        # N11 codes are service numbers and 555 mostly fictional: both fail validation.
        bad = (exchange % 100 == 11) | (exchange == 555)
        exchange = np.where(bad, exchange - 10, exchange)
        return exchange, rng.integers(0, 10_000, k)

    exchange, line = draw(n)
    for _ in range(50):
        key = area.astype(np.int64) * 10_000_000 + exchange * 10_000 + line
        _, first_index = np.unique(key, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first_index] = False
        if not dup.any():
            break
        e, ln = draw(int(dup.sum()))
        exchange[dup], line[dup] = e, ln
    return exchange.astype(np.int16), line.astype(np.int16)


def _households(n: int, rng: np.random.Generator) -> np.ndarray:
    """Household number per person (-1 for persons living alone)."""
    household = np.full(n, -1, dtype=np.int32)
    target = round(HOUSEHOLD_SHARE * n)
    if target < 2:
        return household
    sizes = rng.choice([2, 3, 4], size=target // 2 + 1, p=[0.6, 0.27, 0.13])
    ends = np.cumsum(sizes)
    sizes = sizes[ends <= target]
    if len(sizes) == 0:
        sizes = np.array([2])
    members = rng.permutation(n)[: int(sizes.sum())]
    household[members] = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    return household


def _behaviour_traits(
    seed: int,
    browse_z: np.ndarray,
    buy_z: np.ndarray,
    receptivity: np.ndarray,
    click_draw: np.ndarray,
    n_accounts: np.ndarray,
    existing: np.ndarray,
) -> dict[str, np.ndarray]:
    """Shopping and email traits, calibrated so the world reproduces published figures.

    Heavy tails on purpose: a few heavy browsers and deal hunters make the ``browsers`` and
    ``frequent_buyers`` segments real, while most people visit now and then and buy rarely.
    People who buy much also use the app much (correlated draws), and those who were already
    customers when the window opens are the retained ones: they buy far more than newcomers,
    most of whom buy once (a cohort's repeat rate stays low while the loyal base orders often).
    Receptivity keeps its rank (it decided email consent), so the people who opted in are also
    the likelier openers.
    """
    rng = stream(seed, Stream.TRAITS)
    n = len(browse_z)
    heavy_browser = rng.random(n) < HEAVY_BROWSER_SHARE
    activity = np.exp(-0.8 + 0.9 * browse_z) * np.where(heavy_browser, 10.0, 1.0)
    loyal = np.where(existing, 1.5, -0.8)
    purchase_rate = np.clip(np.exp(loyal + 0.9 * buy_z), 0.02, 30.0)
    app_user = (n_accounts > 0) & (rng.random(n) < APP_USER_SHARE)
    app_rate = np.exp(-1.0 + 0.5 * loyal + 0.6 * buy_z + 0.8 * rng.normal(0.0, 1.0, n))
    never_opens = rng.random(n) < NEVER_OPENS_SHARE
    open_rate = np.where(never_opens, 0.0, np.clip(0.55 * receptivity**1.15, 0.0, 0.9))
    return {
        "activity_rate": np.clip(activity, 0.02, 40.0),
        "purchase_rate": purchase_rate,
        "email_open_rate": open_rate,
        "email_click_rate": np.clip(0.3 * click_draw, 0.005, 0.6),
        "email_tolerance": np.clip(np.exp(rng.normal(np.log(2.5), 0.6, n)), 1.0, 14.0),
        "never_opens": never_opens,
        "novelty_seeking": rng.beta(1.3, 2.4, n),
        "app_rate": np.where(app_user, np.clip(app_rate, 0.0, 30.0), 0.0),
    }


def build_world(n: int, seed: int, window: Window) -> World:
    """Draw ``n`` persons with identities and traits from ``seed``."""
    rng = stream(seed, Stream.PERSONS)
    ids = stream(seed, Stream.IDENTITY)
    end_day = window.end // DAY

    gender = (rng.random(n) < 0.49).astype(np.int8)
    age_years = np.clip(rng.normal(44, 15, n), 18, 90)
    birth_day = (end_day - age_years * 365.25 - rng.integers(0, 365, n)).astype(np.int32)

    city_weights = np.array([c[4] for c in vocab.CITIES])
    city = rng.choice(len(vocab.CITIES), size=n, p=city_weights / city_weights.sum()).astype(
        np.int16
    )
    zip_prefix = strings([c[2] for c in vocab.CITIES])
    zip_base = (np.arange(len(vocab.CITIES)) * 13) % 50 + 1
    zip_tail = zip_base[city] + rng.integers(0, 40, n)
    postal_code_idx = city.astype(np.int64) * 100 + zip_tail
    street_number = np.clip(np.exp(rng.normal(6.0, 1.3, n)), 1, 19_999).astype(np.int32)
    street_name = rng.choice(
        len(vocab.STREET_NAMES), size=n, p=zipf_weights(len(vocab.STREET_NAMES), 0.6)
    ).astype(np.int16)
    suffix_w = np.array([30, 22, 14, 12, 8, 4, 4, 2, 1, 1, 1, 1], dtype=np.float64)
    street_suffix = rng.choice(len(suffix_w), size=n, p=suffix_w / suffix_w.sum()).astype(np.int8)
    has_unit = rng.random(n) < 0.18
    unit_numbers = rng.integers(1, 40, n)
    unit_letters = strings(list("ABCDEF"))
    unit = pc.if_else(
        pa.array(has_unit),
        join(padded(unit_numbers, 1), take(unit_letters, rng.integers(0, 6, n))),
        pa.scalar(None, pa.string()),
    )

    household = _households(n, rng)
    first = _first_names(gender, ids)
    last_idx = ids.choice(
        len(vocab.LAST_NAMES), size=n, p=zipf_weights(len(vocab.LAST_NAMES), 0.45)
    )

    # Households share an address; most share the head's last name; half share a phone.
    in_household = household >= 0
    head = np.arange(n)
    if in_household.any():
        members = np.flatnonzero(in_household)
        order = members[np.argsort(household[members], kind="stable")]
        head_of = np.zeros(household.max() + 1, dtype=np.int64)
        first_rows = np.ones(len(order), dtype=bool)
        first_rows[1:] = household[order][1:] != household[order][:-1]
        head_of[household[order][first_rows]] = order[first_rows]
        head[members] = head_of[household[members]]
        takes_name = ids.random(n) < 0.85
        last_idx = np.where(in_household & takes_name, last_idx[head], last_idx)
        for arr in (city, postal_code_idx, street_number, street_name, street_suffix):
            arr[:] = arr[head]
        unit = pc.take(unit, pa.array(head))
    last = take(strings(vocab.LAST_NAMES), last_idx)

    # Several unrelated persons with exactly the same common name.
    if n >= 50:
        loners = np.flatnonzero(~in_household)
        k = min(len(loners), max(6, n // 1000) * len(vocab.COMMON_NAME_COLLISIONS) // 3)
        chosen = ids.choice(loners, size=k, replace=False)
        chosen.sort()
        combos = np.arange(k) % len(vocab.COMMON_NAME_COLLISIONS)
        sexes, givens, families = zip(*vocab.COMMON_NAME_COLLISIONS, strict=True)
        gender[chosen] = (np.array(sexes) == "M")[combos].astype(np.int8)
        mask = np.zeros(n, dtype=bool)
        mask[chosen] = True
        first = pc.replace_with_mask(first, pa.array(mask), take(strings(givens), combos))
        last = pc.replace_with_mask(last, pa.array(mask), take(strings(families), combos))

    postal_code = join(take(zip_prefix, postal_code_idx // 100), padded(postal_code_idx % 100, 2))

    # Emails: unique per person; a few changed provider (old one stays in the CRM).
    domains = strings([d for d, _ in vocab.EMAIL_PROVIDERS])
    locals_ = _email_locals(first, last, birth_day, ids)
    domain_idx = _domains(n, ids)
    email = make_unique(join(locals_, take(domains, domain_idx), sep="@"), ids)
    changed = ids.random(n) < CHANGED_EMAIL_SHARE
    old_domain = (domain_idx + ids.integers(1, len(domains), n)) % len(domains)
    old_local = pc.list_element(pc.split_pattern(email, "@", max_splits=1), 0)
    previous = join(old_local, take(domains, old_domain), sep="@")
    previous = pc.if_else(pa.array(changed), previous, pa.scalar(None, pa.string()))
    both = make_unique(pa.concat_arrays([email, previous.drop_null()]), ids)
    previous = pc.replace_with_mask(pa.nulls(n, pa.string()), pa.array(changed), both.slice(n))

    # Phones: area code from the city; household members may share the head's number.
    codes = [c[3] for c in vocab.CITIES]
    code_offsets = np.cumsum([0] + [len(c) for c in codes])[:-1]
    code_counts = np.array([len(c) for c in codes])
    flat_codes = np.array([a for c in codes for a in c], dtype=np.int16)
    area = flat_codes[code_offsets[city] + (ids.random(n) * code_counts[city]).astype(np.int64)]
    exchange, line = _unique_phones(area, ids, n)
    shared_household = ids.random(max(int(household.max()) + 1, 1)) < 0.55
    has_shared_phone = in_household & shared_household[np.maximum(household, 0)]
    area = np.where(has_shared_phone, area[head], area).astype(np.int16)
    exchange = np.where(has_shared_phone, exchange[head], exchange).astype(np.int16)
    line = np.where(has_shared_phone, line[head], line).astype(np.int16)

    # Relationship with the retailer and behaviour.
    # A third were already customers when the window opens (joined up to three years before);
    # the rest join during it, a little more towards the end as the business grows.
    horizon = window.seconds - 2 * DAY
    existing = rng.random(n) < EXISTING_SHARE
    joined_before = window.start - 1 - (rng.random(n) * 3 * 365 * DAY).astype(np.int64)
    joined_during = window.start + (rng.random(n) ** 0.85 * horizon).astype(np.int64)
    signup_at = np.where(existing, joined_before, joined_during)
    churner = rng.random(n) < CHURNER_SHARE
    churn_at = np.maximum(signup_at, window.start) + 14 * DAY
    churn_at = churn_at + rng.exponential(270 * DAY, n).astype(np.int64)
    churn_at = np.where(churner & (churn_at < window.end - DAY), churn_at, -1)

    # Draws of the persons stream keep their order, so identities stay as they were; the
    # behaviour calibrated against published figures is shaped from them and the traits stream.
    browse_z = rng.normal(0.0, 1.0, n)
    buy_z = rng.normal(0.0, 1.0, n)
    price_sensitivity = rng.beta(2.0, 2.0, n)
    receptivity = rng.beta(2.0, 4.0, n)  # decides consent below, and the chance to open
    click_draw = rng.beta(1.5, 6.0, n)
    brand_loyalty = rng.beta(2.0, 3.0, n)

    popularity = np.array([c[2] for c in vocab.CATEGORIES])
    alpha = 0.35 * N_CATEGORIES * popularity / popularity.sum()
    gammas = rng.gamma(alpha, size=(n, N_CATEGORIES))
    gammas[gammas.sum(axis=1) == 0, 0] = 1.0
    category_affinity = (gammas / gammas.sum(axis=1, keepdims=True)).astype(np.float32)

    # Three favourite brands, popular ones more often; a repeat means a stronger favourite.
    favorite_brands = rng.choice(N_BRANDS, size=(n, 3), p=zipf_weights(N_BRANDS, 0.8))
    favorite_brands = favorite_brands.astype(np.int16)

    has_crm = rng.random(n) < CRM_SHARE
    has_account = rng.random(n) < np.where(has_crm, ACCOUNT_GIVEN_CRM, ACCOUNT_GIVEN_NO_CRM)
    n_accounts = has_account.astype(np.int8) + (
        has_account & (rng.random(n) < SECOND_ACCOUNT_SHARE)
    ).astype(np.int8)
    login_propensity = np.where(has_account & (rng.random(n) >= 0.15), rng.beta(1.2, 1.5, n), 0.0)
    n_cookies = rng.choice([1, 2, 3, 4], size=n, p=[0.45, 0.32, 0.16, 0.07]).astype(np.int8)
    consent_email = rng.random(n) < np.clip(0.45 + 0.8 * (receptivity - 0.33), 0.1, 0.95)
    consent_sms = rng.random(n) < 0.3
    consent_push = rng.random(n) < 0.25
    accepts_marketing = rng.random(n) < np.clip(0.4 + 0.8 * (receptivity - 0.33), 0.1, 0.9)
    behaviour = _behaviour_traits(
        seed, browse_z, buy_z, receptivity, click_draw, n_accounts, existing
    )

    width = max(7, len(str(n)))
    return World(
        n=n,
        person_id=padded(np.arange(1, n + 1), width, "person_"),
        gender=gender,
        first_name=first,
        last_name=last,
        birth_day=birth_day,
        city=city,
        postal_code=postal_code,
        street_number=street_number,
        street_name=street_name,
        street_suffix=street_suffix,
        unit=unit,
        household=household,
        email=email,
        previous_email=previous,
        phone_area=area,
        phone_exchange=exchange,
        phone_line=line,
        has_shared_phone=has_shared_phone,
        signup_at=signup_at,
        churn_at=churn_at,
        price_sensitivity=price_sensitivity,
        brand_loyalty=brand_loyalty,
        login_propensity=login_propensity,
        category_affinity=category_affinity,
        favorite_brands=favorite_brands,
        has_crm=has_crm,
        n_accounts=n_accounts,
        n_cookies=n_cookies,
        consent_email=consent_email,
        consent_sms=consent_sms,
        consent_push=consent_push,
        accepts_marketing=accepts_marketing,
        **behaviour,
    )


def street_line(world: World, *, abbreviate: np.ndarray) -> pa.Array:
    """``123 Maple St Apt 4B``; full suffix (``Street``) where ``abbreviate`` is false."""
    full = strings([s for s, _ in vocab.STREET_SUFFIXES])
    short = strings([a for _, a in vocab.STREET_SUFFIXES])
    suffix = pc.if_else(
        pa.array(abbreviate), take(short, world.street_suffix), take(full, world.street_suffix)
    )
    base = join(
        padded(world.street_number, 1),
        take(strings(vocab.STREET_NAMES), world.street_name),
        suffix,
        sep=" ",
    )
    with_unit = join(base, world.unit, sep=" Apt ")
    return pc.coalesce(with_unit, base)


def persons_table(world: World) -> pa.Table:
    """Ground truth: one row per person with the clean identity and every latent trait."""
    cities = vocab.CITIES
    phone = join(
        "+1",
        padded(world.phone_area, 3),
        padded(world.phone_exchange, 3),
        padded(world.phone_line, 4),
    )
    columns: dict[str, pa.Array | np.ndarray] = {
        "person_id": world.person_id,
        "gender": take(strings(["F", "M"]), world.gender),
        "first_name": world.first_name,
        "last_name": world.last_name,
        "birth_date": pa.array(world.birth_day, type=pa.date32()),
        "email": world.email,
        "previous_email": world.previous_email,
        "phone": phone,
        "has_shared_phone": world.has_shared_phone,
        "street_address": street_line(world, abbreviate=np.ones(world.n, dtype=bool)),
        "city": take(strings([c[0] for c in cities]), world.city),
        "region": take(strings([c[1] for c in cities]), world.city),
        "postal_code": world.postal_code,
        "household_id": pa.array(world.household, mask=world.household < 0),
        "signed_up_at": pa.array(world.signup_at, type=pa.timestamp("s", tz="UTC")),
        "churned_at": pa.array(
            world.churn_at, type=pa.timestamp("s", tz="UTC"), mask=world.churn_at < 0
        ),
        "is_churned": world.churn_at >= 0,
        "activity_rate": world.activity_rate,
        "purchase_rate": world.purchase_rate,
        "price_sensitivity": world.price_sensitivity,
        "email_open_rate": world.email_open_rate,
        "email_click_rate": world.email_click_rate,
        "brand_loyalty": world.brand_loyalty,
        "email_tolerance": world.email_tolerance,
        "never_opens": world.never_opens,
        "novelty_seeking": world.novelty_seeking,
        "app_rate": world.app_rate,
        "login_propensity": world.login_propensity,
        "has_crm_record": world.has_crm,
        "shop_accounts": world.n_accounts,
        "cookies": world.n_cookies,
        "has_email_consent": world.consent_email,
        "has_sms_consent": world.consent_sms,
        "has_push_consent": world.consent_push,
        "accepts_marketing": world.accepts_marketing,
    }
    brands = strings(vocab.BRANDS)
    for k in range(3):
        columns[f"favorite_brand_{k + 1}"] = take(brands, world.favorite_brands[:, k])
    for c, (_, slug, *_rest) in enumerate(vocab.CATEGORIES):
        columns[f"affinity_{slug.replace('-', '_')}"] = world.category_affinity[:, c]
    return pa.table(columns)
