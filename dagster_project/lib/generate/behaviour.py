"""Behaviour driven by the latent traits: email engagement, web sessions, purchases.

All of it is vectorised: a row per send, session or event is drawn in numpy arrays; Python only
loops over campaigns (about one a week) and months. Web events are produced month by month so
memory stays flat at a million persons.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dagster_project.lib.generate import messiness, vocab
from dagster_project.lib.generate.catalog import Catalog
from dagster_project.lib.generate.common import (
    DAY,
    HOUR,
    Stream,
    Window,
    group_starts,
    join,
    rank_in_group,
    stream,
    strings,
    take,
)
from dagster_project.lib.generate.people import Accounts, Crm
from dagster_project.lib.generate.world import N_CATEGORIES, World

# Event type codes, in the order of WEB_EVENT_TYPES.
PAGE_VIEW, PRODUCT_VIEW, SEARCH, ADD_TO_CART, LOGIN, PURCHASE = range(6)
WEB_EVENT_TYPES = ("page_view", "product_view", "search", "add_to_cart", "login", "purchase")
SEND, OPEN, CLICK, UNSUBSCRIBE, BOUNCE = range(5)
EMAIL_EVENT_TYPES = ("send", "open", "click", "unsubscribe", "bounce")

SESSION_GUARD = 4 * HOUR  # sessions start this long before the end, so none runs past it
MAX_GAP = 300  # seconds between events in a session, at most
MAX_STEPS = 20

#: Hour-of-day profile of session starts in UTC (US evenings are UTC night).
_HOURLY = np.array(
    [9, 8, 6, 4, 3, 2, 1.5, 1, 1, 1.5, 2, 3, 4, 5, 6, 6.5, 6.5, 6.5, 7, 7, 7.5, 8, 9, 9.5]
)
_HOURLY = _HOURLY / _HOURLY.sum()


def cumsum_in_group(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Running sum of ``values`` that restarts where ``first`` is true (rows grouped)."""
    total = np.cumsum(values)
    start_idx = np.maximum.accumulate(np.where(first, np.arange(len(values)), 0))
    before = total[start_idx] - values[start_idx]
    return total - before


# --------------------------------------------------------------------------- email


@dataclass
class EmailResult:
    """Email events as arrays (sorted by time) plus the clicks that lead to web sessions."""

    occurred_at: np.ndarray
    event_type: np.ndarray
    campaign: np.ndarray
    address: np.ndarray  # index into ``addresses``
    addresses: pa.Array
    address_person: np.ndarray  # person of each address
    campaign_ids: pa.Array
    campaign_category: np.ndarray
    click_person: np.ndarray
    click_at: np.ndarray
    click_campaign: np.ndarray

    def link_urls(self) -> pa.Array:
        """The landing URL of each campaign's call to action."""
        slugs = strings([c[1] for c in vocab.CATEGORIES])
        return join(
            vocab.SHOP_URL + "/c/",
            take(slugs, self.campaign_category),
            "?utm_source=email&utm_medium=email&utm_campaign=",
            self.campaign_ids,
        )


def _campaigns(window: Window, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Weekly campaigns at 14:00 UTC (morning in the US) with a featured category."""
    first = (window.start // DAY + 3) * DAY + 14 * HOUR
    times = np.arange(first, window.end - 2 * DAY, 7 * DAY, dtype=np.int64)
    popularity = np.array([c[2] for c in vocab.CATEGORIES])
    category = rng.choice(N_CATEGORIES, size=len(times), p=popularity / popularity.sum())
    themes = {11: "black-friday", 12: "holiday-gifts", 1: "new-year", 7: "summer-sale"}
    ids = []
    for t, c in zip(times.tolist(), category.tolist(), strict=True):
        day = datetime.fromtimestamp(t, tz=UTC)
        theme = themes.get(day.month, "weekly")
        ids.append(f"cmp-{day:%Y%m%d}-{theme}-{vocab.CATEGORIES[c][1]}")
    return times, category, pa.array(ids, type=pa.string())


def simulate_email(
    world: World, crm: Crm, accounts: Accounts, window: Window, seed: int, noise: dict[str, int]
) -> EmailResult:
    """Sends to subscribers; opens and clicks follow receptivity, affinity and churn."""
    rng = stream(seed, Stream.EMAIL)
    n = world.n

    # Who the ESP knows, since when, and under which address.
    via_crm = (
        world.has_crm & world.consent_email & pc.is_valid(crm.email).to_numpy(zero_copy_only=False)
    )
    first_acct = accounts.first_of_person
    acct_created = np.where(first_acct >= 0, accounts.created_at[np.maximum(first_acct, 0)], -1)
    via_shop = ~via_crm & (first_acct >= 0) & world.accepts_marketing
    subscribed = via_crm | via_shop
    sub_from = np.where(via_crm, world.signup_at, acct_created)
    base = pc.if_else(pa.array(via_crm), crm.email, world.email)

    # Address quirks: case as the ESP stored it, typo'd domains, stale addresses.
    u = rng.random(n)
    invalid = subscribed & (u < 0.03)
    cased = subscribed & ~invalid & (u < 0.09)
    changed = via_crm & pc.is_valid(world.previous_email).to_numpy(zero_copy_only=False)
    stale_at = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    stale_at[changed] = sub_from[changed] + (
        rng.random(int(changed.sum())) * (window.end - sub_from[changed])
    ).astype(np.int64)
    stale_at[invalid] = np.iinfo(np.int64).min
    has_b = (invalid & (rng.random(n) < 0.5)) | (changed & ~invalid & (rng.random(n) < 0.6))
    case_style = rng.random(n) < 0.5
    cased_addr = pc.if_else(pa.array(case_style), pc.utf8_title(base), pc.utf8_upper(base))
    addr_a = pc.if_else(pa.array(cased), cased_addr, base)
    addr_a = pc.if_else(pa.array(invalid), messiness.email_domain_typo(base), addr_a)
    addr_b = pc.if_else(pa.array(invalid), base, world.email)

    times, categories, campaign_ids = _campaigns(window, rng)
    # Each campaign goes to a random segment of those subscribed by then.
    share = rng.uniform(0.1, 0.25, len(times))
    members = np.flatnonzero(subscribed)
    members = members[np.argsort(sub_from[members], kind="stable")]
    joined = sub_from[members]
    person_parts, campaign_parts = [], []
    for c, t in enumerate(times.tolist()):
        eligible = members[: np.searchsorted(joined, t, side="right")]
        chosen = eligible[rng.random(len(eligible)) < share[c]]
        person_parts.append(chosen.astype(np.int32))
        campaign_parts.append(np.full(len(chosen), c, dtype=np.int16))
    person = np.concatenate(person_parts) if person_parts else np.zeros(0, np.int32)
    campaign = np.concatenate(campaign_parts) if campaign_parts else np.zeros(0, np.int16)
    order = np.argsort(person, kind="stable")  # campaigns already in time order
    person, campaign = person[order], campaign[order]
    sent_at = times[campaign] + rng.integers(0, 2 * HOUR, len(person))
    first = group_starts(person)

    # Stale or invalid address: the first send after it bounces, then the new one or nothing.
    after = sent_at >= stale_at[person]
    k = cumsum_in_group(after.astype(np.int64), first)
    bounce = after & (k == 1)
    use_b = after & (k > 1) & has_b[person]
    keep = ~(after & (k > 1) & ~has_b[person])

    # Unsubscribes end the sends that follow them.
    churned_then = (world.churn_at[person] >= 0) & (sent_at >= world.churn_at[person])
    p_unsub = 0.002 + 0.012 * (1 - world.email_open_rate[person]) ** 2 + 0.01 * churned_then
    delivered = keep & ~bounce
    unsub = delivered & (rng.random(len(person)) < p_unsub)
    unsub_before = cumsum_in_group(unsub.astype(np.int64), first) - unsub
    keep &= unsub_before == 0
    unsub &= keep
    delivered &= keep

    # Opens and clicks: receptivity, interest in the featured category, churn.
    p_open = world.email_open_rate[person] * np.where(churned_then, 0.08, 1.0)
    opened = delivered & (rng.random(len(person)) < p_open)
    open_at = sent_at + 60 + rng.exponential(5 * HOUR, len(person)).astype(np.int64)
    affinity = world.category_affinity[person, categories[campaign]]
    p_click = np.clip(world.email_click_rate[person] * (0.4 + 4.0 * affinity), 0, 0.9)
    clicked = opened & (rng.random(len(person)) < p_click)
    click_at = open_at + 5 + rng.exponential(90, len(person)).astype(np.int64)
    unsub_at = np.where(opened, open_at, sent_at) + rng.integers(HOUR, 72 * HOUR, len(person))
    bounce_at = sent_at + rng.integers(5, 300, len(person))
    opened &= open_at < window.end
    clicked &= opened & (click_at < window.end)
    unsub &= unsub_at < window.end

    address = np.where(use_b, n + person, person).astype(np.int64)
    kinds = [
        (keep, sent_at, SEND),
        (bounce & keep, bounce_at, BOUNCE),
        (opened, open_at, OPEN),
        (clicked, click_at, CLICK),
        (unsub, unsub_at, UNSUBSCRIBE),
    ]
    at = np.concatenate([t[m] for m, t, _ in kinds])
    etype = np.concatenate([np.full(int(m.sum()), code, np.int8) for m, _, code in kinds])
    camp = np.concatenate([campaign[m] for m, _, _ in kinds])
    addr = np.concatenate([address[m] for m, _, _ in kinds])
    # Time order; at the same second a send comes before what follows it (stable sort).
    order = np.argsort(at * 8 + etype, kind="stable")
    at, etype, camp, addr = at[order], etype[order], camp[order], addr[order]

    # Compact the address vocabulary to the addresses actually used.
    is_used = np.zeros(2 * n, dtype=bool)
    is_used[addr] = True
    used = np.flatnonzero(is_used)
    compact = np.cumsum(is_used) - 1
    all_addresses = pa.concat_arrays([addr_a, addr_b])
    addresses = pc.take(all_addresses, pa.array(used))
    noise["email_bounces"] = int((bounce & keep).sum())
    noise["email_case_variants"] = int(cased.sum())
    return EmailResult(
        occurred_at=at,
        event_type=etype,
        campaign=camp,
        address=compact[addr],
        addresses=addresses,
        address_person=(used % n).astype(np.int64),
        campaign_ids=campaign_ids,
        campaign_category=categories,
        click_person=person[clicked].astype(np.int64),
        click_at=click_at[clicked],
        click_campaign=campaign[clicked].astype(np.int64),
    )


# --------------------------------------------------------------------------- web


@dataclass
class Cookies:
    """Browser cookies: each person has 1-4, used in turn over time and devices."""

    owner: np.ndarray
    offset: np.ndarray  # per person, index of the first cookie
    breaks: np.ndarray  # (persons, 3) times at which the next cookie takes over
    user_agent: np.ndarray  # per cookie, index into vocab.USER_AGENTS
    cookie_id: pa.Array


def _uuid4_strings(rng: np.random.Generator, n: int) -> pa.Array:
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    chars = np.empty((n, 36), dtype=np.uint8)
    nibbles = np.empty((n, 32), dtype=np.uint8)
    nibbles[:, 0::2] = hexdigits[raw >> 4]
    nibbles[:, 1::2] = hexdigits[raw & 0x0F]
    dash = ord("-")
    chars[:, 0:8], chars[:, 8] = nibbles[:, 0:8], dash
    chars[:, 9:13], chars[:, 13] = nibbles[:, 8:12], dash
    chars[:, 14:18], chars[:, 18] = nibbles[:, 12:16], dash
    chars[:, 19:23], chars[:, 23] = nibbles[:, 16:20], dash
    chars[:, 24:36] = nibbles[:, 20:32]
    return pa.array(chars.reshape(-1).view("S36"), type=pa.binary()).cast(pa.string())


def activity_span(
    world: World, window: Window, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """When each person browses: from a little before sign-up until churn or the end."""
    lead = rng.exponential(20 * DAY, world.n).astype(np.int64)
    start = np.maximum(window.start, world.signup_at - lead)
    stop = np.minimum(world.active_end(window), window.end) - SESSION_GUARD
    stop = np.maximum(stop, start)
    return start, stop


def build_cookies(
    world: World, start: np.ndarray, stop: np.ndarray, rng: np.random.Generator
) -> Cookies:
    """Cookies per person, each covering a stretch of the person's active period."""
    counts = world.n_cookies.astype(np.int64)
    offset = np.concatenate([[0], np.cumsum(counts)[:-1]])
    owner = np.repeat(np.arange(world.n), counts)
    span = (stop - start).astype(np.float64)
    cuts = np.sort(rng.random((world.n, 3)), axis=1)
    breaks = start[:, None] + (cuts * span[:, None]).astype(np.int64)
    breaks[np.arange(3)[None, :] >= (counts - 1)[:, None]] = np.iinfo(np.int64).max
    ua_w = np.array([w for _, _, w in vocab.USER_AGENTS])
    user_agent = rng.choice(len(ua_w), size=len(owner), p=ua_w / ua_w.sum()).astype(np.int8)
    return Cookies(
        owner=owner,
        offset=offset,
        breaks=breaks,
        user_agent=user_agent,
        cookie_id=_uuid4_strings(rng, len(owner)),
    )


@dataclass
class Sessions:
    """Planned web sessions sorted by start time."""

    person: np.ndarray
    start: np.ndarray
    cookie: np.ndarray
    account: np.ndarray  # account used if the person logs in or buys, else -1
    logged_in: np.ndarray
    utm: np.ndarray  # index into the UTM vocabulary (channels, then campaigns) or -1
    landing_page: np.ndarray  # index into the page vocabulary
    steps: np.ndarray

    def __len__(self) -> int:
        return len(self.person)

    def take(self, rows: np.ndarray) -> Sessions:
        """The sessions at ``rows``."""
        return Sessions(**{k: v[rows] for k, v in self.__dict__.items()})


def page_vocabulary() -> pa.Array:
    """Paths of pages: static pages, one per category, then cart, login, confirmation."""
    cats = [f"/c/{c[1]}" for c in vocab.CATEGORIES]
    return strings(
        [*vocab.STATIC_PAGES, *cats, "/cart", "/account/login", "/checkout/confirmation"]
    )


N_STATIC = len(vocab.STATIC_PAGES)
CART_PAGE = N_STATIC + N_CATEGORIES
LOGIN_PAGE = CART_PAGE + 1
CONFIRMATION_PAGE = CART_PAGE + 2


def _sample_category(world: World, person: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return world.sample_category(person, rng.random(len(person)))


def plan_sessions(
    world: World,
    accounts: Accounts,
    cookies: Cookies,
    email: EmailResult,
    span: tuple[np.ndarray, np.ndarray],
    window: Window,
    seed: int,
    noise: dict[str, int],
) -> Sessions:
    """Sessions from browsing habit, email clicks, and a few shared family computers."""
    rng = stream(seed, Stream.SESSIONS)
    act_from, act_to = span
    months = (act_to - act_from) / (30 * DAY)
    count = rng.poisson(world.activity_rate * months)
    person = np.repeat(np.arange(world.n), count)
    start = act_from[person] + (rng.random(len(person)) * (act_to - act_from)[person]).astype(
        np.int64
    )
    hour = rng.choice(24, size=len(person), p=_HOURLY)
    start = (start // DAY) * DAY + hour * HOUR + rng.integers(0, HOUR, len(person))
    start = np.clip(start, act_from[person], act_to[person])
    n_channels = len(vocab.UTM_CHANNELS)
    ch_w = np.array([w for *_, w in vocab.UTM_CHANNELS])
    utm = np.where(
        rng.random(len(person)) < 0.28,
        rng.choice(n_channels, size=len(person), p=ch_w / ch_w.sum()),
        -1,
    )
    kind = np.zeros(len(person), dtype=np.int8)

    # Email clicks open a session on the person's current device.
    horizon = window.end - SESSION_GUARD
    keep = email.click_at + 120 < horizon
    c_person = email.click_person[keep]
    c_start = email.click_at[keep] + rng.integers(5, 120, int(keep.sum()))
    c_utm = n_channels + email.click_campaign[keep]

    person = np.concatenate([person, c_person])
    start = np.concatenate([start, c_start])
    utm = np.concatenate([utm, c_utm])
    kind = np.concatenate([kind, np.ones(len(c_person), np.int8)])

    # Cookie: the one in use at that time, or now and then another of the person's devices.
    in_turn = (cookies.breaks[person] <= start[:, None]).sum(axis=1)
    other = (rng.random(len(person)) * world.n_cookies[person]).astype(np.int64)
    pick = np.where(rng.random(len(person)) < 0.75, in_turn, other)
    cookie = cookies.offset[person] + np.minimum(pick, world.n_cookies[person] - 1)

    # Account available at that time (a duplicate account is used half the time once it exists).
    a1 = accounts.first_of_person[person]
    a2 = accounts.second_of_person[person]
    created1 = np.where(a1 >= 0, accounts.created_at[np.maximum(a1, 0)], np.iinfo(np.int64).max)
    created2 = np.where(a2 >= 0, accounts.created_at[np.maximum(a2, 0)], np.iinfo(np.int64).max)
    account = np.where(created1 <= start, a1, -1)
    use_second = (created2 <= start) & (rng.random(len(person)) < 0.5)
    account = np.where(use_second, a2, account)
    propensity = world.login_propensity[person] * np.where(kind == 1, 1.5, 1.0)
    logged_in = (account >= 0) & (rng.random(len(person)) < propensity)

    # Where the session lands.
    landing = np.where(
        rng.random(len(person)) < 0.5,
        0,
        N_STATIC + _sample_category(world, person, rng),
    )
    static = rng.random(len(person)) < 0.15
    landing = np.where(static, rng.integers(1, N_STATIC, len(person)), landing)
    email_landing = N_STATIC + email.campaign_category[np.maximum(utm - n_channels, 0)]
    landing = np.where(kind == 1, email_landing, landing)
    steps = np.minimum(rng.poisson(2.6, len(person)) + 1, MAX_STEPS)

    sessions = Sessions(
        person=person.astype(np.int64),
        start=start.astype(np.int64),
        cookie=cookie.astype(np.int64),
        account=account.astype(np.int64),
        logged_in=logged_in,
        utm=utm.astype(np.int64),
        landing_page=landing.astype(np.int64),
        steps=steps.astype(np.int64),
    )
    shared = _shared_computer_sessions(world, accounts, cookies, span, rng)
    noise["web_shared_cookies"] = len(shared) // 2
    sessions = _concat_sessions(sessions, shared)
    order = np.argsort(sessions.start, kind="stable")
    return sessions.take(order)


def _concat_sessions(a: Sessions, b: Sessions) -> Sessions:
    return Sessions(**{k: np.concatenate([v, getattr(b, k)]) for k, v in a.__dict__.items()})


def _shared_computer_sessions(
    world: World,
    accounts: Accounts,
    cookies: Cookies,
    span: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> Sessions:
    """Pairs of persons who log into their own accounts from the same browser."""
    act_from, act_to = span
    holder = np.flatnonzero(accounts.first_of_person >= 0)
    empty = np.zeros(0, dtype=np.int64)
    if len(holder) < 2:
        return Sessions(empty, empty, empty, empty, np.zeros(0, bool), empty, empty, empty)
    pairs = max(1, round(0.003 * len(holder)))
    # Prefer family members (the household computer), then anyone.
    hh = world.household[holder]
    in_hh = holder[hh >= 0]
    in_hh = in_hh[np.argsort(world.household[in_hh], kind="stable")]
    same = np.flatnonzero(world.household[in_hh][1:] == world.household[in_hh][:-1])
    chosen_pairs = [(in_hh[i], in_hh[i + 1]) for i in same[::2].tolist()][: pairs // 2 + 1]
    shuffled = rng.permutation(holder)
    for i in range(0, len(shuffled) - 1, 2):
        if len(chosen_pairs) >= pairs:
            break
        chosen_pairs.append((shuffled[i], shuffled[i + 1]))
    owner = np.array([p[0] for p in chosen_pairs], dtype=np.int64)
    guest = np.array([p[1] for p in chosen_pairs], dtype=np.int64)
    person = np.concatenate([owner, guest])
    acct = accounts.first_of_person[person]
    created = accounts.created_at[acct]
    lo = np.minimum(np.maximum(created, act_from[person]), act_to[person])
    start = lo + (rng.random(len(person)) * (act_to[person] - lo)).astype(np.int64)
    cookie = np.concatenate([cookies.offset[owner], cookies.offset[owner]])
    k = len(person)
    return Sessions(
        person=person,
        start=start,
        cookie=cookie,
        account=acct.astype(np.int64),
        logged_in=np.ones(k, dtype=bool),
        utm=np.full(k, -1, dtype=np.int64),
        landing_page=np.zeros(k, dtype=np.int64),
        steps=np.minimum(rng.poisson(2.0, k) + 1, MAX_STEPS).astype(np.int64),
    )


@dataclass
class WebBatch:
    """Events of one calendar month, sorted by time."""

    label: str
    occurred_at: np.ndarray
    event_type: np.ndarray
    cookie: np.ndarray
    account: np.ndarray
    product: np.ndarray
    query: np.ndarray
    page: np.ndarray
    order: np.ndarray  # order number or -1
    utm: np.ndarray
    session_start: np.ndarray  # 1 on the first event of a session


@dataclass
class Purchases:
    """Orders and lines accumulated over the months."""

    session: list[np.ndarray] = field(default_factory=list)
    ordered_at: list[np.ndarray] = field(default_factory=list)
    account: list[np.ndarray] = field(default_factory=list)
    person: list[np.ndarray] = field(default_factory=list)
    line_order: list[np.ndarray] = field(default_factory=list)
    line_product: list[np.ndarray] = field(default_factory=list)
    line_quantity: list[np.ndarray] = field(default_factory=list)
    line_cents: list[np.ndarray] = field(default_factory=list)


def search_vocabulary() -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Search phrases: product nouns per category, then brand names; with category offsets."""
    phrases: list[str] = []
    offsets = []
    for c in vocab.CATEGORIES:
        offsets.append(len(phrases))
        phrases.extend(noun.lower() for noun in c[4])
    brand_offset = len(phrases)
    phrases.extend(b.lower() for b in vocab.BRANDS)
    counts = np.diff(np.array([*offsets, brand_offset]))
    return strings(phrases), np.array(offsets), counts


class WebSimulator:
    """Turns planned sessions into events month by month, recording purchases as it goes."""

    def __init__(
        self,
        world: World,
        catalog: Catalog,
        sessions: Sessions,
        window: Window,
        seed: int,
    ) -> None:
        self.world = world
        self.catalog = catalog
        self.sessions = sessions
        self.window = window
        self.rng = stream(seed, Stream.WEB)
        self.purchases = Purchases()
        self.next_order = 1
        _, self.query_offset, self.query_count = search_vocabulary()
        self.brand_query_offset = int(self.query_offset[-1] + self.query_count[-1])
        self.median_price = float(np.median(catalog.list_price_cents))

    def months(self) -> Iterator[WebBatch]:
        """One batch per calendar month of the window; events never cross the end."""
        carry: dict[str, np.ndarray] | None = None
        months = self.window.months()
        bounds = np.searchsorted(self.sessions.start, [m[0] for m in months])
        bounds = np.append(bounds, len(self.sessions))
        for i, (_, m_end, label) in enumerate(months):
            events = self._expand(np.arange(bounds[i], bounds[i + 1]))
            if carry is not None:
                events = {k: np.concatenate([carry[k], v]) for k, v in events.items()}
            now = events["occurred_at"] < m_end
            if now.all():
                current, carry = events, None
            else:
                carry = {k: v[~now] for k, v in events.items()}
                current = {k: v[now] for k, v in events.items()}
            # Stable: events of a session at the same second keep their order.
            order = np.argsort(current["occurred_at"], kind="stable")
            current = {k: v[order] for k, v in current.items()}
            is_purchase = current["event_type"] == PURCHASE
            numbers = self.next_order + np.arange(int(is_purchase.sum()))
            self.next_order += len(numbers)
            current["order"][is_purchase] = numbers
            bought = current["session"][is_purchase]
            self.purchases.session.append(bought)
            self.purchases.ordered_at.append(current["occurred_at"][is_purchase])
            self.purchases.account.append(current["account"][is_purchase])
            self.purchases.person.append(self.sessions.person[bought])
            yield WebBatch(
                label=label,
                occurred_at=current["occurred_at"],
                event_type=current["event_type"],
                cookie=current["cookie"],
                account=current["account"],
                product=current["product"],
                query=current["query"],
                page=current["page"],
                order=current["order"],
                utm=current["utm"],
                session_start=current["session_start"],
            )

    def _products(
        self, person: np.ndarray, category: np.ndarray, at: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Viewed products (favourite brands for loyal persons) and their price factor."""
        rng, world, cat = self.rng, self.world, self.catalog
        n = len(person)
        favourite = world.favorite_brands[person, rng.integers(0, 3, n)]
        pair_exists = cat.has_category_brand[category * len(vocab.BRANDS) + favourite]
        loyal = pair_exists & (rng.random(n) < world.brand_loyalty[person])
        u = rng.random(n)
        product = np.where(
            loyal, cat.sample_in_brand(category, favourite, u), cat.sample_in_category(category, u)
        )
        price = cat.price_at(product, at)
        relative = price / cat.list_price_cents[product]
        sensitivity = world.price_sensitivity[person]
        # Sales pull price-sensitive persons in; expensive items push them away.
        factor = np.exp(-2.5 * sensitivity * (relative - 1.0)) * (self.median_price / price) ** (
            0.3 * sensitivity
        )
        return product, factor

    def _expand(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Events of the sessions at ``rows``: landing, login, browsing, carts, purchase."""
        rng, world = self.rng, self.world
        s = self.sessions
        n_s = len(rows)
        person = s.person[rows]
        start = s.start[rows]
        account = s.account[rows]

        # Browsing steps. A session mostly stays in one category, now and then wanders off.
        steps = s.steps[rows]
        total = int(steps.sum())
        step_session = np.repeat(np.arange(n_s), steps)
        step_index = np.arange(total) - np.repeat(np.cumsum(steps) - steps, steps)
        focus = world.sample_category(person, rng.random(n_s))
        category = focus[step_session]
        wander = np.flatnonzero(rng.random(total) < 0.3)
        category[wander] = world.sample_category(
            person[step_session[wander]], rng.random(len(wander))
        )
        kind = np.searchsorted(np.array([0.55, 0.70]), rng.random(total), side="right")
        step_type = np.array([PRODUCT_VIEW, SEARCH, PAGE_VIEW], dtype=np.int8)[kind]
        product = np.full(total, -1, dtype=np.int64)
        query = np.full(total, -1, dtype=np.int64)
        page = np.full(total, -1, dtype=np.int64)

        views = np.flatnonzero(kind == 0)
        view_person = person[step_session[views]]
        product[views], factor = self._products(
            view_person, category[views], start[step_session[views]]
        )
        p_cart = np.clip(0.10 * np.sqrt(world.purchase_rate[view_person]) * factor, 0.0, 0.6)
        carted = views[rng.random(len(views)) < p_cart]
        cart_factor_of_step = np.zeros(total)
        cart_factor_of_step[views] = factor

        searches = np.flatnonzero(kind == 1)
        s_cat = category[searches]
        brand_search = rng.random(len(searches)) < 0.2
        generic = self.query_offset[s_cat] + (
            rng.random(len(searches)) * self.query_count[s_cat]
        ).astype(np.int64)
        favourite = world.favorite_brands[person[step_session[searches]], 0]
        query[searches] = np.where(brand_search, self.brand_query_offset + favourite, generic)

        pages = np.flatnonzero(kind == 2)
        page[pages] = np.where(
            rng.random(len(pages)) < 0.7,
            N_STATIC + category[pages],
            rng.integers(0, N_STATIC, len(pages)),
        )

        # Purchase: carts convert by purchase rate, price sensitivity and the cart's price.
        cart_sessions = step_session[carted]
        n_cart = np.bincount(cart_sessions, minlength=n_s)
        summed = np.bincount(cart_sessions, weights=cart_factor_of_step[carted], minlength=n_s)
        mean_factor = summed / np.maximum(n_cart, 1)
        p_buy = np.clip(0.45 * world.purchase_rate[person] * mean_factor, 0.0, 0.95)
        buys = (n_cart > 0) & (account >= 0) & (rng.random(n_s) < p_buy)
        logs_in_first = s.logged_in[rows]
        late_login = buys & ~logs_in_first
        first_login = np.flatnonzero(logs_in_first)
        late = np.flatnonzero(late_login)
        buying = np.flatnonzero(buys)

        def const(value: int, k: int) -> np.ndarray:
            return np.full(k, value, dtype=np.int64)

        n_cart_events = len(carted)
        session = np.concatenate(
            [np.arange(n_s), first_login, step_session, cart_sessions, late, buying]
        )
        pos = np.concatenate(
            [
                const(0, n_s),
                const(1, len(first_login)),
                2 + 2 * step_index,
                3 + 2 * step_index[carted],
                const(9_998, len(late)),
                const(9_999, len(buying)),
            ]
        )
        ev = {
            "event_type": np.concatenate(
                [
                    const(PAGE_VIEW, n_s),
                    const(LOGIN, len(first_login)),
                    step_type,
                    const(ADD_TO_CART, n_cart_events),
                    const(LOGIN, len(late)),
                    const(PURCHASE, len(buying)),
                ]
            ),
            "product": np.concatenate(
                [
                    const(-1, n_s + len(first_login)),
                    product,
                    product[carted],
                    const(-1, len(late) + len(buying)),
                ]
            ),
            "query": np.concatenate(
                [
                    const(-1, n_s + len(first_login)),
                    query,
                    const(-1, n_cart_events + len(late) + len(buying)),
                ]
            ),
            "page": np.concatenate(
                [
                    s.landing_page[rows],
                    const(LOGIN_PAGE, len(first_login)),
                    page,
                    const(CART_PAGE, n_cart_events),
                    const(LOGIN_PAGE, len(late)),
                    const(CONFIRMATION_PAGE, len(buying)),
                ]
            ),
        }
        order = np.argsort(session * 16_384 + pos, kind="stable")
        local = session[order]
        ev = {k: v[order] for k, v in ev.items()}
        first = group_starts(local)
        gap = np.minimum(rng.exponential(40.0, len(local)).astype(np.int64) + 1, MAX_GAP)
        gap[first] = 0
        occurred = start[local] + cumsum_in_group(gap, first)
        identifies = (ev["event_type"] == LOGIN) | (ev["event_type"] == PURCHASE)
        ev["account"] = np.where(identifies, account[local], -1)
        ev["occurred_at"] = occurred
        ev["cookie"] = s.cookie[rows][local]
        ev["utm"] = s.utm[rows][local]
        ev["session"] = rows[local]
        ev["order"] = np.full(len(local), -1, dtype=np.int64)
        ev["session_start"] = first.astype(np.int8)

        # Order lines: the carted products of buying sessions, priced when the order is placed.
        buy_at = np.zeros(n_s, dtype=np.int64)
        purchase_rows = ev["event_type"] == PURCHASE
        buy_at[local[purchase_rows]] = occurred[purchase_rows]
        line_steps = carted[buys[cart_sessions]]
        if len(line_steps):
            l_session = step_session[line_steps]
            key = l_session * self.catalog.size + product[line_steps]
            uniq, inverse = np.unique(key, return_inverse=True)
            quantity = np.bincount(
                inverse, weights=1 + rng.poisson(0.25, len(key)), minlength=len(uniq)
            ).astype(np.int64)
            sess_of = uniq // self.catalog.size
            prod_of = uniq % self.catalog.size
            self.purchases.line_order.append(rows[sess_of])
            self.purchases.line_product.append(prod_of)
            self.purchases.line_quantity.append(quantity)
            self.purchases.line_cents.append(self.catalog.price_at(prod_of, buy_at[sess_of]))
        return ev


@dataclass
class OrderTables:
    """Arrays of the orders and order-lines files."""

    order_number: np.ndarray
    account: np.ndarray
    person: np.ndarray
    ordered_at: np.ndarray
    status: np.ndarray  # 0 completed, 1 returned, 2 cancelled
    total_cents: np.ndarray
    line_order_number: np.ndarray
    line_number: np.ndarray
    line_product: np.ndarray
    line_quantity: np.ndarray
    line_cents: np.ndarray


ORDER_STATUSES = ("completed", "returned", "cancelled")


def build_orders(sim: WebSimulator, seed: int, noise: dict[str, int]) -> OrderTables:
    """Orders from the purchase events; a few percent returned or cancelled."""
    rng = stream(seed, Stream.ORDERS)
    p = sim.purchases

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    session = cat(p.session)
    order_number = np.arange(1, len(session) + 1, dtype=np.int64)
    line_session = cat(p.line_order)
    by_session = np.argsort(session, kind="stable")
    pos = np.minimum(np.searchsorted(session[by_session], line_session), max(len(session) - 1, 0))
    known = session[by_session][pos] == line_session if len(session) else np.zeros(0, dtype=bool)
    line_order = order_number[by_session[pos[known]]] if len(session) else line_session[known]
    line_product = cat(p.line_product)[known]
    line_quantity = cat(p.line_quantity)[known]
    line_cents = cat(p.line_cents)[known]
    order = np.lexsort((line_product, line_order))
    line_order, line_product = line_order[order], line_product[order]
    line_quantity, line_cents = line_quantity[order], line_cents[order]
    line_number = rank_in_group(line_order) + 1

    total = np.bincount(
        line_order, weights=line_quantity * line_cents, minlength=len(order_number) + 1
    )[1:].astype(np.int64)
    soft = np.isin(
        sim.catalog.category[line_product],
        [i for i, c in enumerate(vocab.CATEGORIES) if c[1] in ("apparel", "footwear")],
    )
    has_soft = np.bincount(line_order, weights=soft, minlength=len(order_number) + 1)[1:] > 0
    u = rng.random(len(order_number))
    status = np.where(u < 0.025, 2, np.where(u < 0.025 + np.where(has_soft, 0.08, 0.03), 1, 0))
    noise["orders_returned"] = int((status == 1).sum())
    noise["orders_cancelled"] = int((status == 2).sum())
    return OrderTables(
        order_number=order_number,
        account=cat(p.account),
        person=cat(p.person),
        ordered_at=cat(p.ordered_at),
        status=status,
        total_cents=total,
        line_order_number=line_order,
        line_number=line_number,
        line_product=line_product,
        line_quantity=line_quantity,
        line_cents=line_cents,
    )
