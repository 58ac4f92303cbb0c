"""Simulated days of daily email under three policies, answered by the generator's response model.

The platform decides from what it can know (the published snapshot); the simulator answers with
what only the generator knows (hidden traits in ``ground_truth/persons.parquet``), through the
response model ``dagster_project/lib/generate/response.py`` (``VERSION`` "1", committed in
fa87da5 before any policy was tuned). Nothing here feeds hidden traits to a policy.

World: ``cdp generate`` + ``cdp run --as-of END`` into a cached folder. Customers map to persons
by their identity records (snapshot ``identity_records``, ground truth ``records.parquet``: a
customer is the person most of its records belong to). Days since a category purchase and brands
bought start from the person's ground-truth orders (``landing/orders``, completed) and grow with
simulated purchases; ``lapsed`` is a person who churned before the as-of date. The future
calendar is the generator's own (``sales.build_sales``) for a window starting at the as-of date
(seed ``seed + 1``, so it is not a replay of the history's first weeks); day ``d`` runs from
14:00 UTC, and every policy decides at 14:05.

Policies, compared on the same customers, calendar and random numbers:

* **platform**: ``decisions.service.DecisionService`` with the world's ``decisions:`` policy,
  facts from ``decisions.facts`` over the published snapshot, a fresh ``DecisionStore`` per run;
  it sees opens, clicks, purchases and unsubscribes through ``record_outcome`` (an unsubscribe
  withdraws consent at once), and a purchase updates the customer's facts
  (``category_last_purchased_at``, ``brands_bought``) from the next day on, as the real-time
  path will. It is asked for the customers with email consent (the others can only be refused,
  ``consent:missing``), unsubscribers included (the service refuses them before ranking, from
  the log's withdrawals, and logs nothing for them; ``refused`` counts them). Its assignment key is
  derived from the seed, so the holdout and the experiment arms (and every figure) reproduce.
* **batch-and-blast**: every customer with email consent gets the same email every day: one
  item from each of the day's most popular running sales (popularity: purchases of the sale's
  category in the 90 days before the as-of date, observable by the platform; ties by discount),
  as many items as the platform's placement shows.
* **random**: every customer with email consent gets one running sale drawn uniformly each day,
  with up to that many of its items drawn uniformly.

Both baselines stop mailing a customer who unsubscribed in the simulation.

Message -> response (the same mapping for every policy): each item is an ``Offer`` (its
product's category and brand, the sale's discount, its regular price over the category median,
the appeal of its sale's theme); the ``History`` is the person's emails in the 7 days up to this
one (the policy's own sends, this one included), days since their last purchase in the item's
category, whether they bought its brand, ``viewed_price_drop`` 0 and ``lapsed``. The message is
opened with the lead item's chance to open (a subject line names the lead), and unsubscribed from
with its chance to unsubscribe (independent of the open, as in the generator). Given an open, the
reader clicks at most one item: with probability ``1 - prod(1 - p_click_i) ** (1 / n)`` (a
message of n equal items clicks like a one-item email, the generator's historical format), on
item i in proportion to ``p_click_i``; a click visits, and buys that item with the model's
``purchase_probability`` for an email visit: at most one purchase per message, its revenue the
sale price. Random numbers are common: a (day, customer) always gets the same uniforms whatever
the policy, so differences come from the policies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dagster_project.lib.generate import response, vocab
from dagster_project.lib.generate.catalog import build_catalog
from dagster_project.lib.generate.common import DAY, HOUR, Window
from dagster_project.lib.generate.config_writer import sample_config, write_config
from dagster_project.lib.generate.sales import SALE_START_HOUR, THEME_APPEAL, Sales, build_sales
from decisions.facts import load_facts
from decisions.policy import DecisionsPolicy, load_policy, policy_version
from decisions.service import DecisionService
from decisions.store import DecisionStore
from decisions.types import CustomerFacts, Decision, Sale, SaleItem
from snapshots.layout import DATABASE_FILE, read_current, snapshot_folder

# `cdp run`, `cdp serve` and `cdp stream` refuse to start without a privacy key; the
# benchmark's own homes get one for this process and the commands it starts.
os.environ.setdefault("CDP_PRIVACY_KEY", secrets.token_hex(32))

logger = logging.getLogger(__name__)

#: The response model's version and the commit that fixed it (before any policy tuning).
RESPONSE_VERSION = response.VERSION
RESPONSE_COMMIT = "fa87da5"
#: Default end of the world's history (the as-of date of the simulation).
DEFAULT_END = date(2026, 10, 31)
DEFAULT_END_DATETIME = datetime(2026, 10, 31, tzinfo=UTC)
HISTORY_DAYS = 730
DECIDE_MINUTE = 5  # policies decide at 14:05 UTC, five minutes after the day's sales start
PLACEMENT = "daily_email"
CHANNEL = "email"
_WORLD_MARKER = "simulation_world.json"
ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the world


def _pipeline_config_digest() -> str:
    """Digest of the sample cdp.yml without ``decisions:`` (what the built world depends on)."""
    config = sample_config()
    config.pop("decisions", None)
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def build_world(home: Path, persons: int, seed: int, end: date = DEFAULT_END) -> Path:
    """Generate and run the pipeline into ``home`` unless a matching world is already there.

    A cached world gets the current sample cdp.yml (so the current ``decisions:`` policy): the
    policy is read at decision time, and nothing the pipeline built depends on it.
    """
    home = Path(home)
    wanted = {
        "persons": persons,
        "seed": seed,
        "end": end.isoformat(),
        "days": HISTORY_DAYS,
        "config": _pipeline_config_digest(),
    }
    marker = home / _WORLD_MARKER
    fresh = marker.is_file() and json.loads(marker.read_text()) == wanted
    if fresh and read_current(home / "serving"):
        write_config(home)
        return home
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    cdp = str(Path(sys.executable).with_name("cdp"))
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "CDP_HOME": str(home), "PYTHONPATH": path}
    subprocess.run(
        [cdp, "generate", "--persons", str(persons), "--seed", str(seed),
         "--end", end.isoformat(), "--days", str(HISTORY_DAYS), "--out", str(home)],
        check=True, env=env, stdout=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    subprocess.run(
        [cdp, "run", "--as-of", end.isoformat()],
        check=True, env=env, stdout=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    marker.write_text(json.dumps(wanted))
    return home


def snapshot_path(home: Path) -> Path:
    """The published snapshot's SQLite file."""
    current = read_current(Path(home) / "serving")
    if current is None:
        raise RuntimeError(f"{home}: no published snapshot (run `cdp run` first)")
    return snapshot_folder(Path(home) / "serving", current) / DATABASE_FILE


@dataclass
class Catalogue:
    """Products as the simulator needs them, indexed like the generator's catalog."""

    product_id: list[str]
    index: dict[str, int]
    category: np.ndarray  # index into vocab.CATEGORIES
    brand: np.ndarray  # index into vocab.BRANDS
    category_name: list[str]  # per category index: the name the snapshot uses
    brand_name: list[str]


@dataclass
class World:
    """Everything the simulator knows: hidden traits, who is who, purchases before as-of."""

    home: Path
    as_of: datetime
    seed: int
    traits: response.Traits
    lapsed: np.ndarray  # per person
    customers: list[str]  # simulated customers (each maps to a person)
    customer_person: np.ndarray  # per customer
    last_buy: np.ndarray  # (persons, categories) epoch seconds of the last purchase, -inf
    brands: np.ndarray  # (persons,) uint64 bit mask of brands bought
    catalogue: Catalogue
    category_purchases_90d: np.ndarray  # per category, observable popularity for the blast
    product_purchases: np.ndarray  # per product, all history (the blast's item order)
    facts: dict[str, CustomerFacts] = field(default_factory=dict)

    @property
    def n_persons(self) -> int:
        return len(self.lapsed)


def _read_csv(path: Path, columns: dict[str, pa.DataType]) -> pa.Table:
    options = pacsv.ConvertOptions(column_types=columns, include_columns=list(columns))
    return pacsv.read_csv(path, convert_options=options)


def load_world(
    home: Path,
    seed: int,
    as_of: date = DEFAULT_END,
    load_facts: Callable[[sqlite3.Connection, Sequence[str]], dict[str, CustomerFacts]]
    | None = None,
    limit_customers: int | None = None,
) -> World:
    """Read ground truth, landing orders and the snapshot's identity records of a built world."""
    home = Path(home)
    as_of_dt = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    persons = pq.read_table(home / "ground_truth" / "persons.parquet")
    traits = response.Traits.from_persons(persons)
    person_ids = persons.column("person_id").to_pylist()
    person_index = {p: i for i, p in enumerate(person_ids)}
    churned = persons.column("churned_at")
    lapsed = pc.fill_null(pc.less_equal(churned, pa.scalar(as_of_dt, churned.type)), False)
    lapsed_np = lapsed.to_numpy(zero_copy_only=False).astype(bool)

    # Products: generator indices from the names the landing files carry.
    products = _read_csv(
        home / "landing" / "catalog" / "products.csv",
        {"product_id": pa.string(), "category": pa.string(), "brand": pa.string()},
    )
    cat_of = {c[0]: i for i, c in enumerate(vocab.CATEGORIES)}
    brand_of = {b: i for i, b in enumerate(vocab.BRANDS)}
    pid = products.column("product_id").to_pylist()
    catalogue = Catalogue(
        product_id=pid,
        index={p: i for i, p in enumerate(pid)},
        category=np.array([cat_of[c] for c in products.column("category").to_pylist()]),
        brand=np.array([brand_of[b] for b in products.column("brand").to_pylist()]),
        category_name=[c[0] for c in vocab.CATEGORIES],
        brand_name=list(vocab.BRANDS),
    )

    # Records -> persons (ground truth).
    records = pq.read_table(home / "ground_truth" / "records.parquet")
    record_person = {
        (s, r): person_index[p]
        for s, r, p in zip(
            records.column("source").to_pylist(),
            records.column("record_id").to_pylist(),
            records.column("person_id").to_pylist(),
            strict=True,
        )
    }

    # Ground-truth purchases: completed orders of shop accounts.
    orders = _read_csv(
        home / "landing" / "orders" / "orders.csv",
        {
            "order_id": pa.string(),
            "account_id": pa.string(),
            "ordered_at": pa.timestamp("us", tz="UTC"),
            "status": pa.string(),
        },
    )
    orders = orders.filter(pc.equal(orders.column("status"), "completed"))
    lines = _read_csv(
        home / "landing" / "orders" / "order_lines.csv",
        {"order_id": pa.string(), "product_id": pa.string()},
    )
    joined = lines.join(orders, "order_id", join_type="inner")
    product = np.array([catalogue.index[p] for p in joined.column("product_id").to_pylist()])
    person = np.array(
        [
            record_person.get(("shop_accounts", a), -1)
            for a in joined.column("account_id").to_pylist()
        ]
    )
    at = pc.divide(joined.column("ordered_at").cast(pa.int64()), 1_000_000).to_numpy()
    known = (person >= 0) & (at < as_of_dt.timestamp())
    person, product, at = person[known], product[known], at[known].astype(np.float64)
    n_cat = len(vocab.CATEGORIES)
    last_buy = np.full((len(person_ids), n_cat), -np.inf)
    np.maximum.at(last_buy, (person, catalogue.category[product]), at)
    brands = np.zeros(len(person_ids), dtype=np.uint64)
    np.bitwise_or.at(
        brands, person, np.left_shift(np.uint64(1), catalogue.brand[product].astype(np.uint64))
    )
    recent = at >= as_of_dt.timestamp() - 90 * DAY
    category_90d = np.bincount(catalogue.category[product[recent]], minlength=n_cat)
    product_counts = np.bincount(product, minlength=len(pid))

    # Customers -> persons (the snapshot's identity records; majority person).
    with sqlite3.connect(f"file:{snapshot_path(home)}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "select customer_id, source, record_id from identity_records order by customer_id"
        ).fetchall()
        votes: dict[str, dict[int, int]] = {}
        for customer_id, source, record_id in rows:
            p = record_person.get((source, record_id))
            if p is not None:
                tally = votes.setdefault(customer_id, {})
                tally[p] = tally.get(p, 0) + 1
        customers = sorted(votes)
        if limit_customers is not None:
            customers = customers[:limit_customers]
        facts = load_facts(conn, customers) if load_facts is not None else {}
    if load_facts is not None:
        customers = [c for c in customers if c in facts]
    customer_person = np.array(
        [max(votes[c].items(), key=lambda kv: (kv[1], -kv[0]))[0] for c in customers],
        dtype=np.int64,
    )
    return World(
        home=home,
        as_of=as_of_dt,
        seed=seed,
        traits=traits,
        lapsed=lapsed_np,
        customers=customers,
        customer_person=customer_person,
        last_buy=last_buy,
        brands=brands,
        catalogue=catalogue,
        category_purchases_90d=category_90d,
        product_purchases=product_counts,
        facts=facts,
    )


# --------------------------------------------------------------------------- the calendar


@dataclass
class Calendar:
    """The generator's sales for the simulated days, and the same as ``decisions`` Sales."""

    sales: Sales
    first_start: int  # epoch seconds of sale day 0's start
    by_day: list[np.ndarray]  # running sale indices per day
    as_sales: list[Sale]  # per generator sale index
    item_sale_index: dict[tuple[str, str], int]  # (sale_id, product_id) -> offer row

    def running(self, day: int) -> list[Sale]:
        return [self.as_sales[s] for s in self.by_day[day]]


def build_calendar(
    world: World, days: int, end: date = DEFAULT_END, product_names: dict[str, str] | None = None
) -> Calendar:
    """The generator's sales calendar for ``days`` sale days starting on the as-of date."""
    history = Window.ending(end, HISTORY_DAYS)
    catalog = build_catalog(world.seed, history)
    start = int(world.as_of.timestamp())
    window = Window(start, start + days * DAY + SALE_START_HOUR * HOUR)
    sales = build_sales(catalog, window, world.seed + 1)
    first_start = start + SALE_START_HOUR * HOUR
    ends = sales.start_day + sales.days
    by_day = [np.flatnonzero((sales.start_day <= d) & (d < ends)) for d in range(days)]
    names = product_names or {}
    ids = sales.sale_id.to_pylist()
    titles = sales.title.to_pylist()
    as_sales: list[Sale] = []
    item_index: dict[tuple[str, str], int] = {}
    cat_names = world.catalogue.category_name
    for s in range(len(sales)):
        lo, hi = int(sales.offsets[s]), int(sales.offsets[s + 1])
        items = []
        for row in range(lo, hi):
            p = int(sales.offer_product[row])
            product_id = world.catalogue.product_id[p]
            item_index[(ids[s], product_id)] = row
            items.append(
                SaleItem(
                    product_id=product_id,
                    product_name=names.get(product_id, product_id),
                    category=cat_names[int(world.catalogue.category[p])],
                    brand=world.catalogue.brand_name[int(world.catalogue.brand[p])],
                    regular_price=float(sales.offer_regular_cents[row]) / 100.0,
                    sale_price=float(sales.offer_sale_cents[row]) / 100.0,
                )
            )
        begins = first_start + int(sales.start_day[s]) * DAY
        brand = int(sales.brand[s])
        as_sales.append(
            Sale(
                sale_id=ids[s],
                title=titles[s],
                theme=vocab.SALE_THEMES[int(sales.theme[s])][0],
                category=cat_names[int(sales.category[s])],
                brand=vocab.BRANDS[brand] if brand >= 0 else None,
                discount_percent=round(float(sales.discount[s]) * 100.0, 2),
                starts_at=datetime.fromtimestamp(begins, tz=UTC),
                ends_at=datetime.fromtimestamp(begins + int(sales.days[s]) * DAY, tz=UTC),
                items=tuple(items),
            )
        )
    return Calendar(sales, first_start, by_day, as_sales, item_index)


# --------------------------------------------------------------------------- messages


@dataclass
class Messages:
    """One day's sends of a policy: per message its customer and items (offer rows)."""

    customer: np.ndarray  # index into world.customers
    items: np.ndarray  # (messages, k) offer rows of the calendar, -1 padding
    sale: np.ndarray  # (messages, k) sale index, -1 padding
    decision_id: list[str] | None = None


@dataclass
class Outcomes:
    """What happened to a day's messages (one row per message)."""

    opened: np.ndarray
    clicked: np.ndarray
    bought: np.ndarray
    unsubscribed: np.ndarray
    revenue: np.ndarray
    bought_row: np.ndarray  # offer row bought, -1 when none


@dataclass
class Totals:
    sends: int = 0
    opens: int = 0
    clicks: int = 0
    purchases: int = 0
    revenue: float = 0.0
    unsubscribes: int = 0
    seconds: float = 0.0
    deciding_seconds: float = 0.0

    def add(self, outcomes: Outcomes) -> None:
        self.sends += len(outcomes.opened)
        self.opens += int(outcomes.opened.sum())
        self.clicks += int(outcomes.clicked.sum())
        self.purchases += int(outcomes.bought.sum())
        self.revenue += float(outcomes.revenue.sum())
        self.unsubscribes += int(outcomes.unsubscribed.sum())


class Responder:
    """Answers messages with the response model; keeps each person's sends and purchases."""

    def __init__(self, world: World, calendar: Calendar, days: int) -> None:
        self.world = world
        self.calendar = calendar
        self.sends = np.zeros((world.n_persons, days), dtype=np.int32)
        self.last_buy = world.last_buy.copy()
        self.brands = world.brands.copy()

    def uniforms(self, day: int) -> np.ndarray:
        """Common random numbers: (customers, 5) for this day, the same for every policy."""
        rng = np.random.default_rng([self.world.seed, 20_260_000 + day])
        return rng.random((len(self.world.customers), 5))

    def answer(self, day: int, messages: Messages, at: float) -> Outcomes:
        world, sales = self.world, self.calendar.sales
        n, k = messages.items.shape
        if n == 0:
            z = np.zeros(0, dtype=bool)
            return Outcomes(z, z, z, z, np.zeros(0), np.zeros(0, dtype=np.int64))
        person = world.customer_person[messages.customer]
        np.add.at(self.sends[:, day], person, 1)
        emails_7d = self.sends[:, max(0, day - 6) : day + 1].sum(axis=1)[person]
        valid = messages.items >= 0
        msg, slot = np.nonzero(valid)
        row = messages.items[msg, slot]
        sale = messages.sale[msg, slot]
        product = sales.offer_product[row]
        category = world.catalogue.category[product]
        brand = world.catalogue.brand[product].astype(np.int64)
        regular = sales.offer_regular_cents[row].astype(np.float64)
        discount = np.clip(1.0 - sales.offer_sale_cents[row] / regular, 0.0, 1.0)
        p = person[msg]
        offer = response.Offer(
            person=p,
            category=category,
            brand=brand,
            discount=discount,
            relative_price=regular / 100.0 / response.CATEGORY_MEDIAN_PRICE[category],
            theme_appeal=THEME_APPEAL[sales.theme[sale]],
        )
        bits = self.brands[p] >> brand.astype(np.uint64)
        history = response.History(
            emails_7d=emails_7d[msg],
            days_since_category_purchase=(at - self.last_buy[p, category]) / DAY,
            brand_bought=(bits & np.uint64(1)) == 1,
            viewed_price_drop=0.0,
            lapsed=world.lapsed[p],
        )
        r = response.respond(world.traits, offer, history)
        count = np.bincount(msg, minlength=n)
        if (count == 0).any():
            raise ValueError("a message without items cannot be answered")
        lead = np.zeros(len(msg), dtype=bool)
        lead[np.searchsorted(msg, np.arange(n))] = True
        p_click = np.clip(r.click, 0.0, 1.0 - 1e-9)
        log_miss = np.bincount(msg, weights=np.log1p(-p_click), minlength=n) / count
        p_any = 1.0 - np.exp(log_miss)
        u = self.uniforms(day)[messages.customer]
        opened = u[:, 0] < r.open[lead]
        clicked = opened & (u[:, 1] < p_any)
        # the clicked item: in proportion to each item's chance to be clicked
        weight = np.zeros((n, k))
        weight[msg, slot] = p_click
        cum = np.cumsum(weight, axis=1)
        pick = np.minimum((cum < (u[:, 2] * cum[:, -1])[:, None]).sum(axis=1), count - 1)
        flat = np.full((n, k), -1, dtype=np.int64)
        flat[msg, slot] = np.arange(len(msg))
        chosen = flat[np.arange(n), pick]
        bought = clicked & (u[:, 3] < r.buy[chosen])
        unsubscribed = u[:, 4] < r.unsubscribe[lead]
        bought_row = np.where(bought, row[chosen], -1)
        revenue = np.where(bought, sales.offer_sale_cents[row[chosen]] / 100.0, 0.0)
        # purchases are known from the next day on (for the response and the platform's facts)
        bp = person[bought]
        bprod = sales.offer_product[bought_row[bought]]
        buy_at = at + HOUR
        self.last_buy[bp, world.catalogue.category[bprod]] = buy_at
        self.brands[bp] |= np.left_shift(
            np.uint64(1), world.catalogue.brand[bprod].astype(np.uint64)
        )
        return Outcomes(opened, clicked, bought, unsubscribed, revenue, bought_row)


# --------------------------------------------------------------------------- policies


class Policy:
    """A daily email policy: who gets which items today, and what it learns from outcomes."""

    name = "policy"

    def decide(self, day: int, now: datetime) -> Messages:
        raise NotImplementedError

    def feedback(self, day: int, now: datetime, messages: Messages, outcomes: Outcomes) -> None:
        """Learn from the day's outcomes (baselines only stop mailing unsubscribers)."""

    def close(self) -> None:
        """Release what the policy holds."""


def consenting(world: World) -> np.ndarray:
    """Customers with email consent in the platform's data (the baselines' mailing list)."""
    return np.array(
        [
            bool(world.facts[c].consents.get("email")) if world.facts else True
            for c in world.customers
        ],
        dtype=bool,
    )


class BatchAndBlast(Policy):
    """Everyone with consent gets the same email: the day's most popular sales."""

    name = "batch-and-blast"

    def __init__(self, world: World, calendar: Calendar, items: int) -> None:
        self.world, self.calendar, self.items = world, calendar, items
        self.mailing = consenting(world)

    def decide(self, day: int, now: datetime) -> Messages:
        sales, world = self.calendar.sales, self.world
        running = self.calendar.by_day[day]
        popularity = world.category_purchases_90d[sales.category[running]]
        order = running[np.lexsort((-sales.discount[running], -popularity))]
        chosen_rows: list[int] = []
        chosen_sales: list[int] = []
        for s in order[: self.items]:  # one item per top sale: its best-selling product
            lo, hi = int(sales.offsets[s]), int(sales.offsets[s + 1])
            rows = np.arange(lo, hi)
            best = rows[np.argmax(world.product_purchases[sales.offer_product[rows]])]
            chosen_rows.append(int(best))
            chosen_sales.append(int(s))
        who = np.flatnonzero(self.mailing)
        items = np.tile(np.array(chosen_rows, dtype=np.int64), (len(who), 1))
        sale = np.tile(np.array(chosen_sales, dtype=np.int64), (len(who), 1))
        return Messages(who, items, sale)

    def feedback(self, day: int, now: datetime, messages: Messages, outcomes: Outcomes) -> None:
        self.mailing[messages.customer[outcomes.unsubscribed]] = False


class RandomSale(Policy):
    """Everyone with consent gets one running sale drawn at random, up to ``items`` of its items."""

    name = "random"

    def __init__(self, world: World, calendar: Calendar, items: int, seed: int) -> None:
        self.world, self.calendar, self.items, self.seed = world, calendar, items, seed
        self.mailing = consenting(world)

    def decide(self, day: int, now: datetime) -> Messages:
        sales = self.calendar.sales
        rng = np.random.default_rng([self.seed, 31_000 + day])
        who = np.flatnonzero(self.mailing)
        running = self.calendar.by_day[day]
        sale = running[rng.integers(0, len(running), len(who))]
        lo, size = sales.offsets[sale], sales.offsets[sale + 1] - sales.offsets[sale]
        keys = rng.random((len(who), int(size.max(initial=1))))
        keys[np.arange(keys.shape[1])[None, :] >= size[:, None]] = 2.0
        order = np.argsort(keys, axis=1)[:, : self.items]
        items = np.where(order < size[:, None], lo[:, None] + order, -1)
        return Messages(who, items, np.where(items >= 0, sale[:, None], -1))

    def feedback(self, day: int, now: datetime, messages: Messages, outcomes: Outcomes) -> None:
        self.mailing[messages.customer[outcomes.unsubscribed]] = False


# --------------------------------------------------------------------------- the run


@dataclass
class SimulationResult:
    days: int
    customers: int
    consenting: int
    platform_reasons: dict[str, int]
    totals: dict[str, Totals]
    policy_notes: dict[str, str] = field(default_factory=dict)


def day_start(world: World | datetime, day: int) -> datetime:
    """When the policies decide on simulated day ``day`` (14:05 UTC)."""
    as_of = world if isinstance(world, datetime) else world.as_of
    return as_of + timedelta(days=day, hours=SALE_START_HOUR, minutes=DECIDE_MINUTE)


DayHook = Callable[[str, int, Messages, Outcomes], None]


def run_policy(
    world: World, calendar: Calendar, policy: Policy, days: int, on_day: DayHook | None = None
) -> Totals:
    """Simulate ``days`` days of ``policy``; the totals of its sends and their outcomes.

    ``on_day(policy name, day, messages, outcomes)`` sees each day (tests check mechanics).
    """
    responder = Responder(world, calendar, days)
    totals = Totals()
    began = time.perf_counter()
    try:
        for day in range(days):
            now = day_start(world, day)
            t0 = time.perf_counter()
            messages = policy.decide(day, now)
            totals.deciding_seconds += time.perf_counter() - t0
            outcomes = responder.answer(day, messages, now.timestamp())
            totals.add(outcomes)
            if on_day is not None:
                on_day(policy.name, day, messages, outcomes)
            t0 = time.perf_counter()
            policy.feedback(day, now, messages, outcomes)
            totals.deciding_seconds += time.perf_counter() - t0
            logger.info(
                "%s day %d: %d sends, %d purchases", policy.name, day, len(outcomes.opened),
                int(outcomes.bought.sum()),
            )  # fmt: skip
    finally:
        policy.close()
    totals.seconds = time.perf_counter() - began
    return totals


def tempdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


class PlatformPolicy(Policy):
    """The decision service over the world's policy, with its own fresh decision log."""

    name = "platform"

    def __init__(
        self, world: World, calendar: Calendar, policy: DecisionsPolicy, store_dir: Path
    ) -> None:
        self.world, self.calendar = world, calendar
        self.store = DecisionStore.open(Path(store_dir) / "decisions.sqlite")
        # A fixed assignment key (a fresh store would draw a random one), so the holdout and
        # the experiment arms, and with them every figure, are reproducible for a seed.
        key = hashlib.sha256(f"decision-simulation:{world.seed}".encode()).digest()
        self.service = DecisionService(policy, self.store, assignment_key=key)
        # Customers without email consent can never be mailed (the service would log
        # ``consent:missing``); deciding only for the others is the same outcome, 4x faster.
        self.index = np.flatnonzero(consenting(world))
        self.facts = [world.facts[world.customers[i]] for i in self.index]
        self.position = {int(c): p for p, c in enumerate(self.index)}
        self.sale_index = {s.sale_id: i for i, s in enumerate(calendar.as_sales)}
        self.pending: list[tuple[int, str, str, datetime]] = []
        self.decided = 0
        self.reasons: dict[str, int] = {}
        #: refusals before ranking (no address, a withdrawal): returned by decide_many, not logged
        self.refused: Counter[str] = Counter()

    def decide(self, day: int, now: datetime) -> Messages:
        for index, category, brand, at in self.pending:  # yesterday's purchases, as real time will
            facts = self.facts[index]
            self.facts[index] = replace(
                facts,
                category_last_purchased_at={**facts.category_last_purchased_at, category: at},
                brands_bought=facts.brands_bought | {brand},
            )
        self.pending = []
        decisions = self.service.decide_many(
            self.facts, CHANNEL, PLACEMENT, now, sales=self.calendar.running(day)
        )
        self.decided += len(decisions)
        self.refused.update(
            d.reasons[0]
            for d in decisions
            if not d.send
            and not d.items
            and d.reasons[:1]
            and d.reasons[0].startswith(("no_address:", "consent:"))
        )
        return self.messages(decisions)

    def messages(self, decisions: Sequence[Decision]) -> Messages:
        """The sent decisions as offer rows of the calendar."""
        sent = [(int(self.index[i]), d) for i, d in enumerate(decisions) if d.send]
        width = max((len(d.items) for _, d in sent), default=1)
        items = np.full((len(sent), width), -1, dtype=np.int64)
        sale = np.full((len(sent), width), -1, dtype=np.int64)
        for m, (_, decision) in enumerate(sent):
            for slot, item in enumerate(decision.items):
                row = self.calendar.item_sale_index.get((item.sale_id or "", item.product_id))
                if row is None:  # an item on no sale of the calendar: not answerable
                    raise RuntimeError(f"item {item} of {decision.decision_id} is on no sale")
                items[m, slot] = row
                sale[m, slot] = self.sale_index[item.sale_id or ""]
        return Messages(
            customer=np.array([i for i, _ in sent], dtype=np.int64),
            items=items,
            sale=sale,
            decision_id=[d.decision_id for _, d in sent],
        )

    def feedback(self, day: int, now: datetime, messages: Messages, outcomes: Outcomes) -> None:
        """Opens, clicks, purchases and unsubscribes into the log; purchases into the facts."""
        assert messages.decision_id is not None
        record = self.store.record_outcome
        sales = self.calendar.sales
        catalogue = self.world.catalogue
        for m in np.flatnonzero(outcomes.opened | outcomes.unsubscribed):
            did = messages.decision_id[m]
            if outcomes.opened[m]:
                record(did, CHANNEL, "open", now + timedelta(hours=1))
            if outcomes.clicked[m]:
                record(did, CHANNEL, "click", now + timedelta(hours=1, minutes=2))
                record(did, CHANNEL, "visit", now + timedelta(hours=1, minutes=2))
            if outcomes.bought[m]:
                at = now + timedelta(hours=1, minutes=10)
                record(did, CHANNEL, "purchase", at, revenue=float(outcomes.revenue[m]))
                product = int(sales.offer_product[outcomes.bought_row[m]])
                self.pending.append(
                    (
                        self.position[int(messages.customer[m])],
                        catalogue.category_name[int(catalogue.category[product])],
                        catalogue.brand_name[int(catalogue.brand[product])],
                        at,
                    )
                )
            if outcomes.unsubscribed[m]:
                record(did, CHANNEL, "unsubscribe", now + timedelta(hours=2))

    def store_sends(self) -> int:
        """Deliveries the log holds as sent on email (the test compares them with the count)."""
        with sqlite3.connect(self.store.path) as conn:
            return int(
                conn.execute(
                    "select count(*) from deliveries where channel = ? and is_sent = 1", (CHANNEL,)
                ).fetchone()[0]
            )

    def close(self) -> None:
        self.reasons = {
            reason: count
            for reason, count in self.store.reason_counts().items()
            if not reason.startswith(("experiment:", "rank:", "theme:", "eligible:"))
        }
        for reason, count in self.refused.items():
            self.reasons[f"{reason} (before ranking, not logged)"] = count
        self.store.close()


def daily_items(policy: DecisionsPolicy) -> int:
    """Items of the daily email placement (the baselines send as many)."""
    return policy.placement(PLACEMENT).items


def simulate(
    home: Path,
    *,
    seed: int,
    days: int,
    end: date = DEFAULT_END,
    limit_customers: int | None = None,
    policies: Sequence[str] = ("platform", "batch-and-blast", "random"),
    keep_platform: list[PlatformPolicy] | None = None,
    on_day: DayHook | None = None,
) -> SimulationResult:
    """Run each policy over the same world, calendar and random numbers; their totals."""
    world = load_world(home, seed, end, load_facts=load_facts, limit_customers=limit_customers)
    with sqlite3.connect(f"file:{snapshot_path(home)}?mode=ro", uri=True) as conn:
        names = dict(conn.execute("select product_id, product_name from products").fetchall())
    calendar = build_calendar(world, days, end, names)
    policy = load_policy(Path(home) / "cdp.yml")
    items = daily_items(policy)
    totals: dict[str, Totals] = {}
    platforms: list[PlatformPolicy] = [] if keep_platform is None else keep_platform
    for name in policies:
        if name == "platform":
            platform = PlatformPolicy(world, calendar, policy, tempdir("sim_platform_"))
            platforms.append(platform)
            runner: Policy = platform
        elif name == "batch-and-blast":
            runner = BatchAndBlast(world, calendar, items)
        elif name == "random":
            runner = RandomSale(world, calendar, items, seed)
        else:
            raise ValueError(f"unknown policy {name!r}")
        totals[name] = run_policy(world, calendar, runner, days, on_day)
        if isinstance(runner, PlatformPolicy) and keep_platform is None:
            shutil.rmtree(runner.store.path.parent, ignore_errors=True)
    return SimulationResult(
        days=days,
        customers=len(world.customers),
        consenting=int(consenting(world).sum()),
        platform_reasons=platforms[0].reasons if platforms else {},
        totals=totals,
        policy_notes={"policy_version": policy_version(policy), "items": str(items)},
    )


@dataclass(frozen=True)
class Target:
    name: str
    ok: bool
    detail: str


def targets(result: SimulationResult) -> list[Target]:
    """The issue's bar: sends <= blast, purchases >= 1.25x blast, unsubscribes <= 0.6x blast."""
    platform, blast = result.totals["platform"], result.totals["batch-and-blast"]
    return [
        Target(
            "sends <= batch-and-blast",
            platform.sends <= blast.sends,
            f"{platform.sends:,} vs {blast.sends:,}",
        ),
        Target(
            "purchases >= 1.25 x batch-and-blast",
            platform.purchases >= 1.25 * blast.purchases,
            f"{platform.purchases:,} vs {1.25 * blast.purchases:,.1f}",
        ),
        Target(
            "unsubscribes <= 0.6 x batch-and-blast",
            platform.unsubscribes <= 0.6 * blast.unsubscribes,
            f"{platform.unsubscribes:,} vs {0.6 * blast.unsubscribes:,.1f}",
        ),
    ]
