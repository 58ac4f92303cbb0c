"""The world's behaviour week by week: sale emails and their outcomes, visits and purchases.

Everything a person does goes through the response model (``response.py``): each delivered email
is opened, clicked or unsubscribed from with its probabilities, a click becomes a web visit, and
every visit (habitual web browsing, email clicks, the mobile app, a consumable running out, a
return to an item seen before) ends in a cart and a purchase with ``purchase_probability``. The
person's history feeds back week by week: what they bought by category (durables suppress,
consumables come due), which brands they know, the item they looked at and its price then, the
emails they received in the last 7 days, an unsubscribe.

The retailer's historical email policy (what the world's email data reflects): each day's email
features one of the sales starting that day (half the time one in a category the person likes);
each subscriber was given a cadence at random when they joined (every other week to daily), so
the effect of frequency is identifiable from the data; mail stops after an unsubscribe and, by a
sunset rule, after ``SUNSET_DAYS`` without an open or click. Mobile-app visits leave no web
events (the world exports no app analytics), only their orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dagster_project.lib.generate import messiness, response
from dagster_project.lib.generate.catalog import Catalog
from dagster_project.lib.generate.common import (
    DAY,
    HOUR,
    Stream,
    Window,
    group_starts,
    stream,
)
from dagster_project.lib.generate.people import Accounts, Crm
from dagster_project.lib.generate.response import Intent
from dagster_project.lib.generate.sales import SALE_START_HOUR, THEME_APPEAL, Sales
from dagster_project.lib.generate.world import N_BRANDS, World

SEND, OPEN, CLICK, UNSUBSCRIBE, BOUNCE = range(5)
EMAIL_EVENT_TYPES = ("send", "open", "click", "unsubscribe", "bounce")
WEB, APP = 0, 1

#: Cadences the retailer assigned at random: (weekdays mailed, every other week, share).
CADENCES: tuple[tuple[tuple[int, ...] | None, bool, float], ...] = (
    (None, True, 0.42),  # one personal weekday, every other week
    (None, False, 0.33),  # one personal weekday
    ((1, 4), False, 0.12),  # Tuesday and Friday
    ((0, 1, 3, 5), False, 0.08),
    ((0, 1, 2, 3, 4, 5, 6), False, 0.05),  # daily
)
TARGETED_SHARE = 0.5  # sends whose sale is picked from a category the person likes
SESSION_GUARD = 4 * HOUR  # web visits start this long before the end, so none runs past it
P_REVISIT = 0.15  # chance a visit returns to the item looked at last (within REVISIT_DAYS)
REVISIT_DAYS = 45
P_SALE_ITEM = 0.55  # chance a visit's item is one on sale (when the category has one)
P_SECOND_LINE = 0.2  # chance an order holds a second product
BOUNCE_SHARE = 0.45  # visits without a cart that leave from the landing page
GROWTH = 0.8  # traffic grows from 0.6 to 1.4 times its average over the window


def cumsum_in_group(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Running sum of ``values`` that restarts where ``first`` is true (rows grouped)."""
    total = np.cumsum(values)
    start_idx = np.maximum.accumulate(np.where(first, np.arange(len(values)), 0))
    before = total[start_idx] - values[start_idx]
    return total - before


# --------------------------------------------------------------------------- subscribers


@dataclass
class Subscribers:
    """Who the email service knows, since when, and under which addresses (a, then b)."""

    subscribed: np.ndarray
    since: np.ndarray
    stale_at: np.ndarray  # address a stops working (max int: never)
    has_b: np.ndarray  # a second address takes over once a stops working
    addr_a: pa.Array
    addr_b: pa.Array
    cased: np.ndarray


def subscribers(
    world: World, crm: Crm, accounts: Accounts, window: Window, seed: int
) -> Subscribers:
    """Subscribers and their address quirks: case as stored, typo'd domains, stale addresses."""
    rng = stream(seed, Stream.EMAIL)
    n = world.n
    via_crm = (
        world.has_crm & world.consent_email & pc.is_valid(crm.email).to_numpy(zero_copy_only=False)
    )
    first_acct = accounts.first_of_person
    acct_created = np.where(first_acct >= 0, accounts.created_at[np.maximum(first_acct, 0)], -1)
    via_shop = ~via_crm & (first_acct >= 0) & world.accepts_marketing
    subscribed = via_crm | via_shop
    sub_from = np.where(via_crm, world.signup_at, acct_created)
    base = pc.if_else(pa.array(via_crm), crm.email, world.email)

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
    return Subscribers(subscribed, sub_from, stale_at, has_b, addr_a, addr_b, cased)


# --------------------------------------------------------------------------- sends


@dataclass
class Sends:
    """One week's sends in time order, with what the address history makes of each."""

    person: np.ndarray
    at: np.ndarray
    sale: np.ndarray
    emails_7d: np.ndarray  # sends to the person in the 7 days up to this one, included
    bounce: np.ndarray  # the first send after the address went stale
    use_b: np.ndarray  # goes to the second address


class Mailer:
    """The retailer's historical policy: a cadence per subscriber, one sale per email.

    Sends are produced a week at a time for the subscribers still mailed, so nothing is
    planned for people who unsubscribed or were sunset (most of the list, eventually).
    """

    def __init__(
        self, world: World, subs: Subscribers, sales: Sales, window: Window, seed: int
    ) -> None:
        rng = stream(seed, Stream.SENDS)
        self.rng = rng
        self.world = world
        self.subs = subs
        self.sales = sales
        self.first_sale = window.start + SALE_START_HOUR * HOUR
        self.weekday0 = int((self.first_sale // DAY + 3) % 7)  # Monday 0
        members = np.flatnonzero(subs.subscribed)
        self.person = members
        self.day0 = np.maximum(0, -(-(subs.since[members] - self.first_sale) // DAY) + 1)
        shares = np.array([c[2] for c in CADENCES])
        cadence = rng.choice(len(CADENCES), size=len(members), p=shares / shares.sum())
        own_day = rng.integers(0, 7, len(members))
        masks = np.array(
            [0 if w is None else sum(1 << d for d in w) for w, _, _ in CADENCES], dtype=np.int64
        )
        self.mask = np.where(masks[cadence] == 0, 1 << own_day, masks[cadence])
        self.fortnightly = np.array([f for _, f, _ in CADENCES])[cadence]
        self.after_stale = np.zeros(len(members), dtype=np.int64)
        self.active = np.ones(len(members), dtype=bool)
        self.member_of = np.full(world.n, -1, dtype=np.int64)
        self.member_of[members] = np.arange(len(members))
        # Sales by (start day, category), to pick one in a liked category.
        key = sales.start_day.astype(np.int64) * len(response.CATEGORY_KIND) + sales.category
        self.by_category = np.argsort(key, kind="stable")
        self.category_key = key[self.by_category]

    def stop(self, person: np.ndarray) -> None:
        """No more mail for these persons (unsubscribed, sunset)."""
        member = self.member_of[person]
        self.active[member[member >= 0]] = False

    def week(self, first_day: int, last_day: int) -> Sends:
        """Sends of sale days ``first_day`` up to (not including) ``last_day``."""
        parts: list[tuple[np.ndarray, ...]] = []
        candidates = np.flatnonzero(self.active & (self.day0 < last_day))
        mask, fortnightly = self.mask[candidates], self.fortnightly[candidates]
        for d in range(first_day, min(last_day, self.sales.n_days)):
            if self.sales.day_first[d + 1] == self.sales.day_first[d]:
                continue
            wd = (self.weekday0 + d) % 7
            since = d - self.day0[candidates]
            mails = (
                self.active[candidates]
                & (since >= 0)
                & (((mask >> wd) & 1) == 1)
                & (~fortnightly | ((since // 7) % 2 == 0))
            )
            member = candidates[mails]
            since = since[mails]
            if len(member) == 0:
                continue
            person = self.person[member]
            at = self.first_sale + d * DAY + self.rng.integers(0, 2 * HOUR, len(member))
            # Emails in the last 7 days: each mailed weekday once a week, one per fortnight.
            recent = np.zeros(len(member), dtype=np.int64)
            for w in range(7):
                on = ((self.mask[member] >> w) & 1) == 1
                recent += on & ((wd - w) % 7 <= since)
            recent = np.where(self.fortnightly[member], 1, recent)
            # Stale or invalid address: the first send after it bounces, then the new one or none.
            after = at >= self.subs.stale_at[person]
            self.after_stale[member] += after
            k = self.after_stale[member]
            bounce = after & (k == 1)
            use_b = after & (k > 1) & self.subs.has_b[person]
            lost = after & (k > 1) & ~self.subs.has_b[person]
            self.active[member[lost]] = False
            keep = ~lost
            sale = self._featured(person[keep], np.full(int(keep.sum()), d))
            parts.append((person[keep], at[keep], sale, recent[keep], bounce[keep], use_b[keep]))
        if not parts:
            z = np.zeros(0, dtype=np.int64)
            f = np.zeros(0, dtype=bool)
            return Sends(z, z, z, z, f, f)
        cols = [np.concatenate([p[i] for p in parts]) for i in range(6)]
        order = np.argsort(cols[1], kind="stable")
        return Sends(*(c[order] for c in cols))

    def _featured(self, person: np.ndarray, day: np.ndarray) -> np.ndarray:
        """The day's sale for each email: half the time one in a category the person likes."""
        rng, sales = self.rng, self.sales
        lo, hi = sales.day_first[day], sales.day_first[day + 1]
        pick = lo + (rng.random(len(day)) * (hi - lo)).astype(np.int64)
        liked = self.world.sample_category(person, rng.random(len(person)))
        targeted = rng.random(len(person)) < TARGETED_SHARE
        want = day.astype(np.int64) * len(response.CATEGORY_KIND) + liked
        first = np.searchsorted(self.category_key, want, side="left")
        last = np.searchsorted(self.category_key, want, side="right")
        at = first + (rng.random(len(person)) * (last - first)).astype(np.int64)
        match = self.by_category[np.minimum(at, max(len(self.by_category) - 1, 0))]
        return np.where(targeted & (last > first), match, pick)


# --------------------------------------------------------------------------- visits


@dataclass
class PlannedVisits:
    """Habitual visits (web and app) planned up front, sorted by time."""

    person: np.ndarray
    start: np.ndarray
    channel: np.ndarray
    intent: np.ndarray


def _growing_times(
    lo: np.ndarray, hi: np.ndarray, rate: np.ndarray, window: Window, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Visits at ``rate`` per 30 days in [lo, hi), scaled by the shop's growth over the window.

    Traffic grows linearly from ``1 - GROWTH / 2`` to ``1 + GROWTH / 2`` times its average, so
    the last weeks are busier than the first; times are drawn by inverting that density.
    """
    base = 1.0 - GROWTH / 2
    x_lo = (lo - window.start) / window.seconds
    x_hi = (hi - window.start) / window.seconds
    weight = base * (x_hi - x_lo) + GROWTH / 2 * (x_hi**2 - x_lo**2)
    count = rng.poisson(rate * window.seconds / (30 * DAY) * np.maximum(weight, 0.0))
    person = np.repeat(np.arange(len(rate)), count)
    u = rng.random(len(person)) * weight[person]
    a = x_lo[person]
    x = (-base + np.sqrt(base**2 + 2 * GROWTH * (base * a + GROWTH / 2 * a**2 + u))) / GROWTH
    start = window.start + (x * window.seconds).astype(np.int64)
    return person, np.clip(start, lo[person], np.maximum(hi[person] - 1, lo[person]))


def plan_visits(
    world: World,
    accounts: Accounts,
    span: tuple[np.ndarray, np.ndarray],
    hourly: np.ndarray,
    window: Window,
    seed: int,
) -> PlannedVisits:
    """Web sessions from browsing habit, app visits, and the visit that opens an account."""
    rng = stream(seed, Stream.SESSIONS)
    act_from, act_to = span
    person, start = _growing_times(act_from, act_to, world.activity_rate, window, rng)
    hour = rng.choice(24, size=len(person), p=hourly)
    start = (start // DAY) * DAY + hour * HOUR + rng.integers(0, HOUR, len(person))
    start = np.clip(start, act_from[person], act_to[person])

    app_rng = stream(seed, Stream.APP)
    first = accounts.first_of_person
    created = np.where(first >= 0, accounts.created_at[np.maximum(first, 0)], act_to)
    app_from = np.minimum(np.maximum(act_from, created), act_to)
    app_person, app_start = _growing_times(app_from, act_to, world.app_rate, window, app_rng)

    # Opening a shop account during the window: a visit that usually means to buy.
    opens = (first >= 0) & (created >= window.start)
    signup_person = np.flatnonzero(opens)
    signup_start = np.minimum(
        created[opens] + app_rng.integers(60, 2 * DAY, len(signup_person)), act_to[opens]
    )
    share = world.app_rate / np.maximum(world.app_rate + world.activity_rate, 1e-9)
    signup_app = app_rng.random(len(signup_person)) < share[opens]

    n_web, n_app = len(person), len(app_person)
    person = np.concatenate([person, app_person, signup_person])
    start = np.concatenate([start, app_start, signup_start])
    channel = np.concatenate(
        [np.full(n_web, WEB), np.full(n_app, APP), np.where(signup_app, APP, WEB)]
    )
    intent = np.concatenate(
        [
            np.full(n_web, Intent.BROWSE),
            np.full(n_app, Intent.APP),
            np.full(len(signup_person), Intent.SIGNUP),
        ]
    )
    order = np.argsort(start, kind="stable")
    return PlannedVisits(
        person[order], start[order], channel[order].astype(np.int8), intent[order].astype(np.int8)
    )


# --------------------------------------------------------------------------- results


@dataclass
class EmailEvents:
    """Email events in time order; ``address`` indexes a then b (person + n)."""

    occurred_at: np.ndarray
    event_type: np.ndarray
    sale: np.ndarray
    address: np.ndarray


@dataclass
class Visits:
    """Decided visits: what was looked at, carted and bought (order lines up to two)."""

    person: np.ndarray
    start: np.ndarray
    channel: np.ndarray
    intent: np.ndarray
    sale: np.ndarray  # the email's sale for email visits, else -1
    product: np.ndarray  # the item the visit is about, -1 for none
    carted: np.ndarray
    bought: np.ndarray
    product2: np.ndarray  # a second item in the basket, -1 for none
    quantity: np.ndarray
    quantity2: np.ndarray

    def take(self, rows: np.ndarray) -> Visits:
        """The visits at ``rows``."""
        return Visits(**{k: v[rows] for k, v in self.__dict__.items()})

    @classmethod
    def concat(cls, parts: list[Visits]) -> Visits:
        """All parts in order."""
        if not parts:
            z = np.zeros(0, dtype=np.int64)
            b = np.zeros(0, dtype=bool)
            return cls(z, z, z, z, z, z, b, b, z, z, z)
        return cls(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in parts[0].__dict__})


@dataclass
class Behaviour:
    """What the simulation produced: email events, web visits to expand, app visits."""

    email: EmailEvents
    web: Visits
    app: Visits
    noise: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- simulation


@dataclass
class _State:
    """Each person's history as the weeks go by."""

    last_buy_day: np.ndarray  # (persons, categories) day of the last purchase, -inf never
    brands: np.ndarray  # bit b set: bought brand b
    watched: np.ndarray  # the item looked at last and not bought, -1 none
    watched_cents: np.ndarray
    watched_day: np.ndarray
    engaged_at: np.ndarray  # last open or click (or the subscription), for the sunset rule
    unsub_at: np.ndarray


class Simulation:
    """Runs the weeks: emails first (their clicks join the week's visits), then the visits."""

    def __init__(
        self,
        world: World,
        catalog: Catalog,
        sales: Sales,
        accounts: Accounts,
        subs: Subscribers,
        window: Window,
        seed: int,
    ) -> None:
        self.world = world
        self.catalog = catalog
        self.sales = sales
        self.window = window
        self.rng = stream(seed, Stream.MAILING)
        self.buy_rng = stream(seed, Stream.SHOPPING)
        n = world.n
        self.traits = response.Traits(
            open_rate=world.email_open_rate,
            click_rate=world.email_click_rate,
            email_tolerance=world.email_tolerance,
            purchase_rate=world.purchase_rate,
            price_sensitivity=world.price_sensitivity,
            novelty=world.novelty_seeking,
            brand_loyalty=world.brand_loyalty,
            category_affinity=world.category_affinity,
            favorite_brands=world.favorite_brands,
        )
        first = accounts.first_of_person
        self.account_from = np.where(
            first >= 0, accounts.created_at[np.maximum(first, 0)], np.iinfo(np.int64).max
        )
        self.subs = subs
        self.state = _State(
            last_buy_day=np.full((n, len(response.CATEGORY_KIND)), -np.inf, dtype=np.float32),
            brands=np.zeros(n, dtype=np.uint64),
            watched=np.full(n, -1, dtype=np.int32),
            watched_cents=np.zeros(n, dtype=np.float64),
            watched_day=np.zeros(n, dtype=np.float32),
            engaged_at=subs.since.astype(np.int64),
            unsub_at=np.full(n, np.iinfo(np.int64).max, dtype=np.int64),
        )
        self.median_cents = response.CATEGORY_MEDIAN_PRICE * 100.0
        self.pending: list[Visits] = []

    def run(self, mailer: Mailer, planned: PlannedVisits) -> Behaviour:
        """Every week in order; returns the events and decided visits."""
        window = self.window
        n_weeks = -(-window.seconds // (7 * DAY))
        bounds = window.start + np.arange(n_weeks + 1) * 7 * DAY
        bounds[-1] = window.end + 1
        visit_cut = np.searchsorted(planned.start, bounds)
        emails: list[EmailEvents] = []
        web: list[Visits] = []
        app: list[Visits] = []
        noise = {"email_bounces": 0}
        for w in range(n_weeks):
            events, clicks = self._emails(mailer, mailer.week(7 * w, 7 * w + 7), noise)
            emails.append(events)
            rows = np.arange(visit_cut[w], visit_cut[w + 1])
            visits = self._gather(planned, rows, clicks, bounds[w + 1])
            decided = self._decide(visits)
            web.append(decided.take(np.flatnonzero(decided.channel == WEB)))
            app.append(decided.take(np.flatnonzero((decided.channel == APP) & decided.bought)))
        email = EmailEvents(
            **{
                k: np.concatenate([getattr(e, k) for e in emails])
                for k in ("occurred_at", "event_type", "sale", "address")
            }
        )
        order = np.argsort(email.occurred_at * 8 + email.event_type, kind="stable")
        email = EmailEvents(**{k: v[order] for k, v in email.__dict__.items()})
        web_visits = Visits.concat(web)
        web_visits = web_visits.take(np.argsort(web_visits.start, kind="stable"))
        return Behaviour(email=email, web=web_visits, app=Visits.concat(app), noise=noise)

    # ----------------------------------------------------------------------- emails

    def _emails(
        self, mailer: Mailer, sends: Sends, noise: dict[str, int]
    ) -> tuple[EmailEvents, Visits]:
        rng, st, sales = self.rng, self.state, self.sales
        person, at = sends.person, sends.at
        unsubscribed = at >= st.unsub_at[person]
        sunset = at - st.engaged_at[person] > response.SUNSET_DAYS * DAY
        mailer.stop(person[unsubscribed | sunset])
        rows = np.flatnonzero(~(unsubscribed | sunset))
        person, at, sale = person[rows], at[rows], sends.sale[rows]
        # Within the week a person's sends after their unsubscribe are not sent: group by person.
        by_person = np.lexsort((at, person))
        rows, person, at, sale = rows[by_person], person[by_person], at[by_person], sale[by_person]
        bounce = sends.bounce[rows]
        delivered = ~bounce
        category = sales.category[sale]
        brand = sales.brand[sale]
        day = (at - self.window.start) / DAY
        watched = st.watched[person]
        seen = (watched >= 0) & sales.covers(sale, np.maximum(watched, 0))
        sale_cents = sales.sale_cents(np.maximum(watched, 0), at)
        drop = np.where(
            seen & (sale_cents > 0),
            np.clip(1.0 - sale_cents / np.maximum(st.watched_cents[person], 1.0), 0.0, 1.0),
            0.0,
        )
        churn = self.world.churn_at[person]
        offer = response.Offer(
            person=person,
            category=category,
            brand=brand,
            discount=sales.discount[sale],
            relative_price=sales.relative_price[sale],
            theme_appeal=THEME_APPEAL[sales.theme[sale]],
        )
        history = response.History(
            emails_7d=sends.emails_7d[rows],
            days_since_category_purchase=day - st.last_buy_day[person, category],
            brand_bought=self._knows_brand(person, brand),
            viewed_price_drop=drop,
            lapsed=(churn >= 0) & (at >= churn),
        )
        outcome = response.respond(self.traits, offer, history).sample(rng)
        opened = delivered & outcome.opened
        clicked = delivered & outcome.clicked
        unsub = delivered & outcome.unsubscribed
        n = len(rows)
        open_at = at + 60 + rng.exponential(5 * HOUR, n).astype(np.int64)
        click_at = open_at + 5 + rng.exponential(90, n).astype(np.int64)
        unsub_at = np.where(opened, open_at, at) + rng.integers(HOUR, 72 * HOUR, n)
        bounce_at = at + rng.integers(5, 300, n)
        first = group_starts(person)
        unsub_before = cumsum_in_group(unsub.astype(np.int64), first) - unsub
        keep = unsub_before == 0
        end = self.window.end
        opened &= keep & (open_at < end)
        clicked &= opened & (click_at < end)
        unsub &= keep & (unsub_at < end)
        bounce &= keep

        np.minimum.at(st.unsub_at, person[unsub], unsub_at[unsub])
        mailer.stop(person[unsub])
        np.maximum.at(st.engaged_at, person[opened], open_at[opened])
        address = np.where(sends.use_b[rows], self.world.n + person, person).astype(np.int64)
        kinds = [
            (keep, at, SEND),
            (bounce, bounce_at, BOUNCE),
            (opened, open_at, OPEN),
            (clicked, click_at, CLICK),
            (unsub, unsub_at, UNSUBSCRIBE),
        ]
        noise["email_bounces"] += int(bounce.sum())
        events = EmailEvents(
            occurred_at=np.concatenate([t[m] for m, t, _ in kinds]),
            event_type=np.concatenate([np.full(int(m.sum()), c, np.int8) for m, _, c in kinds]),
            sale=np.concatenate([sale[m] for m, _, _ in kinds]),
            address=np.concatenate([address[m] for m, _, _ in kinds]),
        )
        # A click opens a web visit on the sale, about the sale's products.
        start = click_at + rng.integers(5, 120, n)
        go = clicked & (start < end - SESSION_GUARD)
        k = int(go.sum())
        clicks = Visits(
            person=person[go],
            start=start[go],
            channel=np.full(k, WEB, dtype=np.int8),
            intent=np.full(k, Intent.EMAIL, dtype=np.int8),
            sale=sale[go],
            product=sales.product_of_sale(sale[go], rng.random(k)),
            carted=np.zeros(k, dtype=bool),
            bought=np.zeros(k, dtype=bool),
            product2=np.full(k, -1, dtype=np.int64),
            quantity=np.zeros(k, dtype=np.int64),
            quantity2=np.zeros(k, dtype=np.int64),
        )
        return events, clicks

    def _knows_brand(self, person: np.ndarray, brand: np.ndarray) -> np.ndarray:
        bits = self.state.brands[person] >> np.maximum(brand, 0).astype(np.uint64)
        return (brand >= 0) & ((bits & np.uint64(1)) == 1)

    # ----------------------------------------------------------------------- visits

    def _gather(
        self, planned: PlannedVisits, rows: np.ndarray, clicks: Visits, week_end: int
    ) -> Visits:
        """This week's planned visits, email clicks and replenishment visits that fall due."""
        k = len(rows)
        habitual = Visits(
            person=planned.person[rows],
            start=planned.start[rows],
            channel=planned.channel[rows],
            intent=planned.intent[rows],
            sale=np.full(k, -1, dtype=np.int64),
            product=np.full(k, -1, dtype=np.int64),
            carted=np.zeros(k, dtype=bool),
            bought=np.zeros(k, dtype=bool),
            product2=np.full(k, -1, dtype=np.int64),
            quantity=np.zeros(k, dtype=np.int64),
            quantity2=np.zeros(k, dtype=np.int64),
        )
        pending = Visits.concat(self.pending)
        due = pending.start < week_end
        self.pending = [pending.take(np.flatnonzero(~due))] if (~due).any() else []
        return Visits.concat([habitual, clicks, pending.take(np.flatnonzero(due))])

    def _decide(self, v: Visits) -> Visits:
        """Pick each visit's item, then cart and purchase from the response model."""
        rng, st, world, catalog = self.buy_rng, self.state, self.world, self.catalog
        n = len(v.person)
        if n == 0:
            return v
        person, start = v.person, v.start
        day = (start - self.window.start) / DAY
        product = v.product.copy()
        intent = v.intent.copy()
        watched = st.watched[person]
        revisit = (
            (product < 0)
            & (watched >= 0)
            & (day - st.watched_day[person] <= REVISIT_DAYS)
            & (rng.random(n) < P_REVISIT)
        )
        product = np.where(revisit, watched, product)
        intent = np.where(revisit, Intent.REVISIT, intent).astype(np.int8)
        fresh = product < 0
        product[fresh] = self._pick(person[fresh], start[fresh], rng)
        category = catalog.category[product]
        brand = catalog.brand[product]
        paid = self._price(product, start)
        regular = catalog.price_at(product, start)
        drop = np.where(
            product == watched,
            np.clip(1.0 - paid / np.maximum(st.watched_cents[person], 1.0), 0.0, 1.0),
            0.0,
        )
        churn = world.churn_at[person]
        offer = response.Offer(
            person=person,
            category=category,
            brand=brand,
            discount=1.0 - paid / regular,
            relative_price=paid / self.median_cents[category],
        )
        history = response.History(
            emails_7d=0,
            days_since_category_purchase=day - st.last_buy_day[person, category],
            brand_bought=self._knows_brand(person, brand),
            viewed_price_drop=drop,
            lapsed=(churn >= 0) & (start >= churn),
        )
        p_buy = response.purchase_probability(self.traits, offer, history, intent)
        carted, bought = response.cart_and_buy(p_buy, rng)
        bought &= self.account_from[person] <= start
        # Many visits end on the landing page: nothing looked at, nothing remembered.
        bounced = ~carted & (rng.random(n) < BOUNCE_SHARE)
        product = np.where(bounced, -1, product)
        second = bought & (rng.random(n) < P_SECOND_LINE)
        product2 = np.full(n, -1, dtype=np.int64)
        if second.any():
            rows = np.flatnonzero(second)
            other = self._pick_in(category[rows], start[rows], rng)
            product2[rows] = np.where(other != product[rows], other, -1)
        quantity = 1 + rng.poisson(0.25, n)
        quantity2 = 1 + rng.poisson(0.25, n)

        # History: purchases by category and brand, the item left behind and its price.
        b = np.flatnonzero(bought)
        st.last_buy_day[person[b], category[b]] = day[b]
        np.bitwise_or.at(st.brands, person[b], np.uint64(1) << brand[b].astype(np.uint64))
        b2 = b[product2[b] >= 0]
        np.bitwise_or.at(
            st.brands, person[b2], np.uint64(1) << catalog.brand[product2[b2]].astype(np.uint64)
        )
        left = np.flatnonzero(~bought & ~bounced)
        st.watched[person[left]] = product[left]
        st.watched_cents[person[left]] = paid[left]
        st.watched_day[person[left]] = day[left]
        gone = b[st.watched[person[b]] == product[b]]
        st.watched[person[gone]] = -1
        self._schedule_replenishment(person[b], start[b], category[b], product[b], rng)
        return Visits(
            person=person,
            start=start,
            channel=v.channel,
            intent=intent,
            sale=v.sale,
            product=product,
            carted=carted,
            bought=bought,
            product2=np.where(bought, product2, -1),
            quantity=quantity,
            quantity2=quantity2,
        )

    def _price(self, product: np.ndarray, at: np.ndarray) -> np.ndarray:
        """What the item costs then: the regular price or a lower sale price (cents)."""
        regular = self.catalog.price_at(product, at)
        sale = self.sales.sale_cents(product, at)
        return np.where(sale > 0, np.minimum(sale, regular), regular).astype(np.float64)

    def _pick(self, person: np.ndarray, at: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """An item for a visit: a liked category, often one on sale, often a favourite brand."""
        world, cat = self.world, self.catalog
        n = len(person)
        category = world.sample_category(person, rng.random(n))
        on_sale = self.sales.product_on_sale(category, at, rng.random(n))
        favourite = world.favorite_brands[person, rng.integers(0, 3, n)]
        pair_exists = cat.has_category_brand[category * N_BRANDS + favourite]
        loyal = pair_exists & (rng.random(n) < world.brand_loyalty[person])
        u = rng.random(n)
        listed = np.where(
            loyal, cat.sample_in_brand(category, favourite, u), cat.sample_in_category(category, u)
        )
        use_sale = (on_sale >= 0) & (rng.random(n) < P_SALE_ITEM)
        return np.where(use_sale, on_sale, listed)

    def _pick_in(
        self, category: np.ndarray, at: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Another item of the category: on sale if one is, else by popularity."""
        n = len(category)
        on_sale = self.sales.product_on_sale(category, at, rng.random(n))
        listed = self.catalog.sample_in_category(category, rng.random(n))
        return np.where(on_sale >= 0, on_sale, listed)

    def _schedule_replenishment(
        self,
        person: np.ndarray,
        at: np.ndarray,
        category: np.ndarray,
        product: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        """A consumable bought now brings the person back about one cycle later."""
        n = len(person)
        consumable = response.CATEGORY_KIND[category] == response.CONSUMABLE
        rate = self.world.purchase_rate[person]
        p_return = np.clip(0.35 + 0.15 * np.log(rate), 0.05, 0.85)
        # The app makes reordering easy; without it fewer come back for it.
        p_return = np.where(self.world.app_rate[person] > 0, p_return, 0.3 * p_return)
        back = consumable & (rng.random(n) < p_return)
        cycle = response.CYCLE_DAYS[category] * np.exp(rng.normal(0.0, 0.25, n))
        due = at + (cycle * DAY).astype(np.int64)
        churn = self.world.churn_at[person]
        back &= (due < self.window.end - SESSION_GUARD) & ((churn < 0) | (due < churn))
        rows = np.flatnonzero(back)
        if len(rows) == 0:
            return
        k = len(rows)
        # Reorders happen in the app for those who have it.
        in_app = self.world.app_rate[person[rows]] > 0
        channel = np.where(in_app & (rng.random(k) < 0.85), APP, WEB).astype(np.int8)
        self.pending.append(
            Visits(
                person=person[rows],
                start=due[rows],
                channel=channel,
                intent=np.full(k, Intent.REPLENISH, dtype=np.int8),
                sale=np.full(k, -1, dtype=np.int64),
                product=product[rows],
                carted=np.zeros(k, dtype=bool),
                bought=np.zeros(k, dtype=bool),
                product2=np.full(k, -1, dtype=np.int64),
                quantity=np.zeros(k, dtype=np.int64),
                quantity2=np.zeros(k, dtype=np.int64),
            )
        )
