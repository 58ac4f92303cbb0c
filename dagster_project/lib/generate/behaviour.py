"""Web sessions and orders: the events and files a shop records of the decided visits.

``shopping.py`` decides what every visit is about and whether it ends in a cart and a purchase;
here a web visit gets its device (cookie), account and login, and becomes a session of events
(landing, browsing, the item, the cart, the purchase), and purchases become orders. All of it is
vectorised; web events are produced month by month so memory stays flat at a million persons.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dagster_project.lib.generate import vocab
from dagster_project.lib.generate.catalog import Catalog
from dagster_project.lib.generate.common import (
    DAY,
    Stream,
    Window,
    group_starts,
    join,
    rank_in_group,
    stream,
    strings,
)
from dagster_project.lib.generate.people import Accounts
from dagster_project.lib.generate.sales import Sales
from dagster_project.lib.generate.shopping import (
    CLICK,
    EMAIL_EVENT_TYPES,
    SESSION_GUARD,
    EmailEvents,
    Subscribers,
    Visits,
    cumsum_in_group,
)
from dagster_project.lib.generate.world import N_CATEGORIES, World

__all__ = ["CLICK", "EMAIL_EVENT_TYPES", "SESSION_GUARD"]

# Event type codes, in the order of WEB_EVENT_TYPES.
PAGE_VIEW, PRODUCT_VIEW, SEARCH, ADD_TO_CART, LOGIN, PURCHASE = range(6)
WEB_EVENT_TYPES = ("page_view", "product_view", "search", "add_to_cart", "login", "purchase")

MAX_GAP = 300  # seconds between events in a session, at most
MAX_STEPS = 20

#: Hour-of-day profile of session starts in UTC (US evenings are UTC night).
HOURLY = np.array(
    [9, 8, 6, 4, 3, 2, 1.5, 1, 1, 1.5, 2, 3, 4, 5, 6, 6.5, 6.5, 6.5, 7, 7, 7.5, 8, 9, 9.5]
)
HOURLY = HOURLY / HOURLY.sum()


# --------------------------------------------------------------------------- email


@dataclass
class EmailResult:
    """Email events as arrays (sorted by time) with the addresses they went to."""

    occurred_at: np.ndarray
    event_type: np.ndarray
    campaign: np.ndarray  # index of the featured sale
    address: np.ndarray  # index into ``addresses``
    addresses: pa.Array
    address_person: np.ndarray  # person of each address
    campaign_ids: pa.Array  # sale ids: an email's campaign is the sale it features

    def link_urls(self) -> pa.Array:
        """The landing URL of each campaign's call to action: the sale's page."""
        return join(
            vocab.SHOP_URL + "/sales/",
            self.campaign_ids,
            "?utm_source=email&utm_medium=email&utm_campaign=",
            self.campaign_ids,
        )


def email_result(
    events: EmailEvents, subs: Subscribers, sales: Sales, n: int, noise: dict[str, int]
) -> EmailResult:
    """The events with the address vocabulary compacted to the addresses actually used."""
    is_used = np.zeros(2 * n, dtype=bool)
    is_used[events.address] = True
    used = np.flatnonzero(is_used)
    compact = np.cumsum(is_used) - 1
    addresses = pa.concat_arrays([subs.addr_a, subs.addr_b]).take(pa.array(used))
    noise["email_case_variants"] = int(subs.cased.sum())
    return EmailResult(
        occurred_at=events.occurred_at,
        event_type=events.event_type,
        campaign=events.sale,
        address=compact[events.address],
        addresses=addresses,
        address_person=(used % n).astype(np.int64),
        campaign_ids=sales.sale_id,
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
    """Web sessions sorted by start time, with what each visit decided."""

    person: np.ndarray
    start: np.ndarray
    cookie: np.ndarray
    account: np.ndarray  # account used if the person logs in or buys, else -1
    logged_in: np.ndarray
    utm: np.ndarray  # index into the UTM vocabulary (channels, then sales) or -1
    landing_page: np.ndarray  # index into the page vocabulary
    steps: np.ndarray
    product: np.ndarray  # the item the visit is about, -1 for none
    carted: np.ndarray
    bought: np.ndarray
    product2: np.ndarray  # a second item bought with it, -1 for none
    order: np.ndarray  # order number of a purchase, -1 for none
    from_email: np.ndarray

    def __len__(self) -> int:
        return len(self.person)

    def take(self, rows: np.ndarray) -> Sessions:
        """The sessions at ``rows``."""
        return Sessions(**{k: v[rows] for k, v in self.__dict__.items()})


def page_vocabulary(sale_ids: pa.Array | None = None) -> pa.Array:
    """Paths of pages: static pages, one per category, cart, login, confirmation, then sales."""
    cats = [f"/c/{c[1]}" for c in vocab.CATEGORIES]
    pages = strings(
        [*vocab.STATIC_PAGES, *cats, "/cart", "/account/login", "/checkout/confirmation"]
    )
    if sale_ids is None:
        return pages
    return pa.concat_arrays([pages, join("/sales/", sale_ids)])


N_STATIC = len(vocab.STATIC_PAGES)
CART_PAGE = N_STATIC + N_CATEGORIES
LOGIN_PAGE = CART_PAGE + 1
CONFIRMATION_PAGE = CART_PAGE + 2
SALE_PAGE = CART_PAGE + 3  # page of sale s: SALE_PAGE + s


def web_sessions(
    world: World,
    accounts: Accounts,
    cookies: Cookies,
    visits: Visits,
    order: np.ndarray,
    catalog: Catalog,
    span: tuple[np.ndarray, np.ndarray],
    seed: int,
    noise: dict[str, int],
) -> Sessions:
    """Web visits as sessions: device, account, login, landing page; plus shared computers."""
    rng = stream(seed, Stream.VISITS)
    person, start = visits.person, visits.start
    n = len(person)
    from_email = visits.sale >= 0
    n_channels = len(vocab.UTM_CHANNELS)
    ch_w = np.array([w for *_, w in vocab.UTM_CHANNELS])
    utm = np.where(rng.random(n) < 0.28, rng.choice(n_channels, size=n, p=ch_w / ch_w.sum()), -1)
    utm = np.where(from_email, n_channels + visits.sale, utm)

    # Cookie: the one in use at that time, or now and then another of the person's devices.
    in_turn = (cookies.breaks[person] <= start[:, None]).sum(axis=1)
    other = (rng.random(n) * world.n_cookies[person]).astype(np.int64)
    pick = np.where(rng.random(n) < 0.75, in_turn, other)
    cookie = cookies.offset[person] + np.minimum(pick, world.n_cookies[person] - 1)

    # Account available at that time (a duplicate account is used half the time once it exists).
    a1 = accounts.first_of_person[person]
    a2 = accounts.second_of_person[person]
    created1 = np.where(a1 >= 0, accounts.created_at[np.maximum(a1, 0)], np.iinfo(np.int64).max)
    created2 = np.where(a2 >= 0, accounts.created_at[np.maximum(a2, 0)], np.iinfo(np.int64).max)
    account = np.where(created1 <= start, a1, -1)
    use_second = (created2 <= start) & (rng.random(n) < 0.5)
    account = np.where(use_second, a2, account)
    propensity = world.login_propensity[person] * np.where(from_email, 1.5, 1.0)
    logged_in = (account >= 0) & (rng.random(n) < propensity)

    # Where the session lands: an email on its sale, a habit on the home or a category page.
    has_item = visits.product >= 0
    item_category = catalog.category[np.maximum(visits.product, 0)]
    category = np.where(
        has_item & (rng.random(n) < 0.5),
        item_category,
        world.sample_category(person, rng.random(n)),
    )
    landing = np.where(rng.random(n) < 0.5, 0, N_STATIC + category)
    static = rng.random(n) < 0.15
    landing = np.where(static, rng.integers(1, N_STATIC, n), landing)
    landing = np.where(from_email, SALE_PAGE + visits.sale, landing)
    # A visit that leaves at once (no item) sees only its landing page.
    steps = np.minimum(rng.poisson(1.8, n) + 1, MAX_STEPS)
    steps = np.where(visits.product2 >= 0, np.maximum(steps, 2), steps)
    steps = np.where(visits.product < 0, 0, steps)

    sessions = Sessions(
        person=person.astype(np.int64),
        start=start.astype(np.int64),
        cookie=cookie.astype(np.int64),
        account=account.astype(np.int64),
        logged_in=logged_in,
        utm=utm.astype(np.int64),
        landing_page=landing.astype(np.int64),
        steps=steps.astype(np.int64),
        product=visits.product.astype(np.int64),
        carted=visits.carted,
        bought=visits.bought & (account >= 0),
        product2=visits.product2.astype(np.int64),
        order=np.where(visits.bought & (account >= 0), order, -1).astype(np.int64),
        from_email=from_email,
    )
    shared = _shared_computer_sessions(world, accounts, cookies, span, rng)
    noise["web_shared_cookies"] = len(shared) // 2
    sessions = Sessions(
        **{k: np.concatenate([v, getattr(shared, k)]) for k, v in sessions.__dict__.items()}
    )
    order_by_time = np.argsort(sessions.start, kind="stable")
    return sessions.take(order_by_time)


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
    if len(holder) < 2:
        return _no_sessions(0)
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
    k = len(person)
    out = _no_sessions(k)
    out.person = person
    out.start = start
    out.cookie = np.concatenate([cookies.offset[owner], cookies.offset[owner]])
    out.account = acct.astype(np.int64)
    out.logged_in = np.ones(k, dtype=bool)
    out.steps = np.minimum(rng.poisson(2.0, k) + 1, MAX_STEPS).astype(np.int64)
    return out


def _no_sessions(k: int) -> Sessions:
    """``k`` plain sessions to fill in: no item, landing on the home page."""
    none = np.full(k, -1, dtype=np.int64)
    zero = np.zeros(k, dtype=np.int64)
    false = np.zeros(k, dtype=bool)
    return Sessions(
        person=zero,
        start=zero,
        cookie=zero,
        account=none,
        logged_in=false,
        utm=none,
        landing_page=zero,
        steps=np.ones(k, dtype=np.int64),
        product=none,
        carted=false,
        bought=false,
        product2=none,
        order=none,
        from_email=false,
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
    """Turns sessions into events month by month, noting when each purchase happened."""

    def __init__(
        self, world: World, catalog: Catalog, sessions: Sessions, window: Window, seed: int
    ) -> None:
        self.world = world
        self.catalog = catalog
        self.sessions = sessions
        self.window = window
        self.rng = stream(seed, Stream.WEB)
        self.purchased_at = np.zeros(len(sessions), dtype=np.int64)
        _, self.query_offset, self.query_count = search_vocabulary()
        self.brand_query_offset = int(self.query_offset[-1] + self.query_count[-1])

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

    def _browsed(self, person: np.ndarray, category: np.ndarray) -> np.ndarray:
        """Products looked at while browsing: favourite brands for loyal persons."""
        rng, world, cat = self.rng, self.world, self.catalog
        n = len(person)
        favourite = world.favorite_brands[person, rng.integers(0, 3, n)]
        pair_exists = cat.has_category_brand[category * len(vocab.BRANDS) + favourite]
        loyal = pair_exists & (rng.random(n) < world.brand_loyalty[person])
        u = rng.random(n)
        return np.where(
            loyal, cat.sample_in_brand(category, favourite, u), cat.sample_in_category(category, u)
        )

    def _expand(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Events of the sessions at ``rows``: landing, login, browsing, carts, purchase."""
        rng, world = self.rng, self.world
        s = self.sessions
        n_s = len(rows)
        person = s.person[rows]
        start = s.start[rows]
        account = s.account[rows]
        item = s.product[rows]
        item2 = s.product2[rows]
        bought = s.bought[rows]

        # Browsing steps. A session mostly stays in one category, now and then wanders off.
        steps = s.steps[rows]
        total = int(steps.sum())
        step_session = np.repeat(np.arange(n_s), steps)
        step_index = np.arange(total) - np.repeat(np.cumsum(steps) - steps, steps)
        focus = world.sample_category(person, rng.random(n_s))
        focus = np.where(item >= 0, self.catalog.category[np.maximum(item, 0)], focus)
        category = focus[step_session]
        wander = np.flatnonzero(rng.random(total) < 0.3)
        category[wander] = world.sample_category(
            person[step_session[wander]], rng.random(len(wander))
        )
        kind = np.searchsorted(np.array([0.55, 0.70]), rng.random(total), side="right")

        # The visit's item is viewed at some step (first, after an email); a second item last.
        last = steps - 1
        has2 = item2 >= 0
        span = np.where(has2, last, steps)
        item_step = np.where(s.from_email[rows], 0, (rng.random(n_s) * span).astype(np.int64))
        base = np.cumsum(steps) - steps
        item_pos = base + item_step
        second_pos = base + last
        with_item = np.flatnonzero(item >= 0)
        with_two = np.flatnonzero(has2)
        kind[item_pos[with_item]] = 0
        kind[second_pos[with_two]] = 0
        step_type = np.array([PRODUCT_VIEW, SEARCH, PAGE_VIEW], dtype=np.int8)[kind]
        product = np.full(total, -1, dtype=np.int64)
        query = np.full(total, -1, dtype=np.int64)
        page = np.full(total, -1, dtype=np.int64)

        views = np.flatnonzero(kind == 0)
        product[views] = self._browsed(person[step_session[views]], category[views])
        product[item_pos[with_item]] = item[with_item]
        product[second_pos[with_two]] = item2[with_two]
        carted = np.concatenate(
            [item_pos[with_item[s.carted[rows][with_item]]], second_pos[with_two]]
        )
        carted.sort()

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

        # A purchase ends the session; one not logged in logs in at checkout.
        logs_in_first = s.logged_in[rows]
        late_login = bought & ~logs_in_first
        first_login = np.flatnonzero(logs_in_first)
        late = np.flatnonzero(late_login)
        buying = np.flatnonzero(bought)
        cart_sessions = step_session[carted]

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
        is_purchase = ev["event_type"] == PURCHASE
        ev["order"] = np.where(is_purchase, s.order[rows][local], -1)
        ev["session_start"] = first.astype(np.int8)
        self.purchased_at[rows[local[is_purchase]]] = occurred[is_purchase]
        return ev


@dataclass
class OrderTables:
    """Arrays of the orders and order-lines files."""

    order_number: np.ndarray
    account: np.ndarray
    person: np.ndarray
    ordered_at: np.ndarray
    channel: np.ndarray  # 0 web, 1 app
    status: np.ndarray  # 0 completed, 1 returned, 2 cancelled
    total_cents: np.ndarray
    line_order_number: np.ndarray
    line_number: np.ndarray
    line_product: np.ndarray
    line_quantity: np.ndarray
    line_cents: np.ndarray


ORDER_STATUSES = ("completed", "returned", "cancelled")
ORDER_CHANNELS = ("web", "app")


def order_numbers(web: Visits, app: Visits) -> tuple[np.ndarray, np.ndarray]:
    """Numbers for the purchases of web and app visits, in the order the visits started."""
    start = np.concatenate([web.start[web.bought], app.start[app.bought]])
    order = np.argsort(start, kind="stable")
    number = np.empty(len(start), dtype=np.int64)
    number[order] = np.arange(1, len(start) + 1)
    web_number = np.full(len(web.start), -1, dtype=np.int64)
    web_number[web.bought] = number[: int(web.bought.sum())]
    app_number = np.full(len(app.start), -1, dtype=np.int64)
    app_number[app.bought] = number[int(web.bought.sum()) :]
    return web_number, app_number


def build_orders(
    sim: WebSimulator,
    app: Visits,
    app_number: np.ndarray,
    accounts: Accounts,
    sales: Sales,
    window: Window,
    seed: int,
    noise: dict[str, int],
) -> OrderTables:
    """Orders of web purchases (when the purchase event happened) and of the app."""
    rng = stream(seed, Stream.ORDERS)
    s = sim.sessions
    web_rows = np.flatnonzero(s.order >= 0)
    app_rows = np.flatnonzero(app.bought)
    app_at = np.minimum(app.start[app_rows] + rng.integers(60, 900, len(app_rows)), window.end - 1)
    first = accounts.first_of_person[app.person[app_rows]]
    second = accounts.second_of_person[app.person[app_rows]]
    created2 = np.where(
        second >= 0, accounts.created_at[np.maximum(second, 0)], np.iinfo(np.int64).max
    )
    app_account = np.where((created2 <= app_at) & (rng.random(len(app_rows)) < 0.5), second, first)

    number = np.concatenate([s.order[web_rows], app_number[app_rows]])
    ordered_at = np.concatenate([sim.purchased_at[web_rows], app_at])
    account = np.concatenate([s.account[web_rows], app_account])
    person = np.concatenate([s.person[web_rows], app.person[app_rows]])
    channel = np.concatenate([np.zeros(len(web_rows), np.int8), np.ones(len(app_rows), np.int8)])
    item = np.concatenate([s.product[web_rows], app.product[app_rows]])
    item2 = np.concatenate([s.product2[web_rows], app.product2[app_rows]])
    qty = 1 + rng.poisson(0.25, len(number))
    qty2 = 1 + rng.poisson(0.25, len(number))
    by_number = np.argsort(number, kind="stable")
    number, ordered_at, account, person, channel = (
        a[by_number] for a in (number, ordered_at, account, person, channel)
    )
    item, item2, qty, qty2 = (a[by_number] for a in (item, item2, qty, qty2))

    two = item2 >= 0
    line_order = np.concatenate([number, number[two]])
    line_product = np.concatenate([item, item2[two]])
    line_quantity = np.concatenate([qty, qty2[two]])
    line_at = np.concatenate([ordered_at, ordered_at[two]])
    regular = sim.catalog.price_at(line_product, line_at)
    sale = sales.sale_cents(line_product, line_at)
    line_cents = np.where(sale > 0, np.minimum(sale, regular), regular).astype(np.int64)
    order = np.lexsort((line_product, line_order))
    line_order, line_product = line_order[order], line_product[order]
    line_quantity, line_cents = line_quantity[order], line_cents[order]
    line_number = rank_in_group(line_order) + 1

    index = np.searchsorted(number, line_order)
    total = np.bincount(index, weights=line_quantity * line_cents, minlength=len(number))
    soft = np.isin(
        sim.catalog.category[line_product],
        [i for i, c in enumerate(vocab.CATEGORIES) if c[1] in ("apparel", "footwear")],
    )
    has_soft = np.bincount(index, weights=soft, minlength=len(number)) > 0
    u = rng.random(len(number))
    status = np.where(u < 0.025, 2, np.where(u < 0.025 + np.where(has_soft, 0.08, 0.03), 1, 0))
    noise["orders_returned"] = int((status == 1).sum())
    noise["orders_cancelled"] = int((status == 2).sum())
    noise["orders_in_app"] = int(channel.sum())
    return OrderTables(
        order_number=number,
        account=account,
        person=person,
        ordered_at=ordered_at,
        channel=channel,
        status=status,
        total_cents=np.round(total).astype(np.int64),
        line_order_number=line_order,
        line_number=line_number,
        line_product=line_product,
        line_quantity=line_quantity,
        line_cents=line_cents,
    )
