"""The generator's behaviour: the response model, the sales calendar and calibrated signal.

The response model is tested as a function (monotone where the docstring says it is); the
world is tested on its files, the way an analyst would measure it, against the published
figures of ``calibration.FIGURES`` and the durable/consumable, price and fatigue effects.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from dagster_project.lib.generate import generate_world, response, vocab
from dagster_project.lib.generate.calibration import FIGURES, measure

END = date(2025, 3, 31)
PERSONS = 6000
SEED = 42
SLUGS = [c[1] for c in vocab.CATEGORIES]


def _traits(n: int, **overrides: np.ndarray) -> response.Traits:
    values = {
        "open_rate": np.full(n, 0.3),
        "click_rate": np.full(n, 0.1),
        "email_tolerance": np.full(n, 2.0),
        "purchase_rate": np.ones(n),
        "price_sensitivity": np.full(n, 0.5),
        "novelty": np.full(n, 0.5),
        "brand_loyalty": np.full(n, 0.5),
        "category_affinity": np.full((n, response.N_CATEGORIES), 1.0 / response.N_CATEGORIES),
        "favorite_brands": np.zeros((n, 3), dtype=np.int16),
    }
    values.update(overrides)
    return response.Traits(**values)


def _offer(n: int, category: int = 0, brand: int = 5, discount: float = 0.0) -> response.Offer:
    return response.Offer(
        person=np.arange(n),
        category=np.full(n, category),
        brand=np.full(n, brand),
        discount=np.full(n, discount),
        relative_price=np.ones(n),
    )


def _history(n: int, **overrides: object) -> response.History:
    values: dict[str, object] = {
        "emails_7d": np.ones(n),
        "days_since_category_purchase": np.full(n, np.inf),
        "brand_bought": np.zeros(n, dtype=bool),
        "viewed_price_drop": np.zeros(n),
    }
    values.update(overrides)
    return response.History(**values)


# --------------------------------------------------------------------------- response model


def test_fatigue_lowers_opens_monotonically_and_raises_unsubscribes() -> None:
    emails = np.arange(1, 15, dtype=np.float64)
    n = len(emails)
    got = response.respond(_traits(n), _offer(n), _history(n, emails_7d=emails))
    assert np.all(np.diff(got.open) <= 0)
    assert np.all(np.diff(got.unsubscribe) >= 0)
    tolerance = 2
    # Within the person's tolerance nothing changes; beyond it every email costs opens.
    assert got.open[0] == got.open[tolerance - 1]
    assert np.all(np.diff(got.open[tolerance - 1 :]) < 0)
    assert got.open[-1] < 0.05 * got.open[0]
    assert got.unsubscribe[-1] > 5 * got.unsubscribe[0]


def test_people_who_never_open_never_open() -> None:
    n = 4
    traits = _traits(n, open_rate=np.array([0.0, 0.0, 0.3, 0.6]))
    got = response.respond(traits, _offer(n, discount=0.5), _history(n))
    assert list(got.open[:2]) == [0.0, 0.0]
    assert got.open[3] > got.open[2] > 0
    outcomes = response.Response(
        open=np.repeat(got.open, 5000),
        click=np.repeat(got.click, 5000),
        visit=np.repeat(got.visit, 5000),
        buy=np.repeat(got.buy, 5000),
        unsubscribe=np.repeat(got.unsubscribe, 5000),
    ).sample(np.random.default_rng(0))
    assert not outcomes.opened[:10000].any()
    # Outcomes nest: a click implies an open, a buy implies a visit.
    assert not (outcomes.clicked & ~outcomes.opened).any()
    assert not (outcomes.bought & ~outcomes.visited).any()


def test_durables_are_suppressed_after_a_purchase_and_consumables_come_due() -> None:
    tv = SLUGS.index("electronics")
    coffee = SLUGS.index("grocery")
    assert response.CATEGORY_KIND[tv] == response.DURABLE
    assert response.CATEGORY_KIND[coffee] == response.CONSUMABLE
    days = np.array([1.0, 10.0, 30.0, 90.0, 270.0, 540.0, np.inf])
    durable = response.category_cycle_multiplier(np.full(len(days), tv), days)
    assert np.all(np.diff(durable) >= 0)
    assert durable[0] < 0.05 and durable[-1] == 1.0
    due = response.CYCLE_DAYS[coffee]
    consumable = response.category_cycle_multiplier(
        np.full(3, coffee), np.array([1.0, due, np.inf])
    )
    assert consumable[0] < 1.0 < consumable[1]
    # Same person, same visit: a TV bought 10 days ago makes another one ~30x less likely.
    n = 2
    offer = response.Offer(
        person=np.arange(n),
        category=np.array([tv, tv]),
        brand=np.array([5, 5]),
        discount=np.zeros(n),
        relative_price=np.ones(n),
    )
    p = response.purchase_probability(
        _traits(n),
        offer,
        _history(n, days_since_category_purchase=np.array([10.0, np.inf])),
        response.Intent.BROWSE,
    )
    assert p[0] < 0.1 * p[1]


def test_price_drops_and_discounts_raise_buying_for_the_price_sensitive() -> None:
    n = 4
    traits = _traits(n, price_sensitivity=np.array([0.9, 0.9, 0.05, 0.05]))
    drop = np.array([0.3, 0.0, 0.3, 0.0])
    p = response.purchase_probability(
        traits, _offer(n), _history(n, viewed_price_drop=drop), response.Intent.REVISIT
    )
    assert p[0] > 2.0 * p[1]  # a sensitive person: the drop more than doubles the chance
    assert p[0] / p[1] > 2.0 * (p[2] / p[3])  # ... and matters far less to the insensitive
    discounted = response.purchase_probability(
        traits, _offer(n, discount=0.4), _history(n), response.Intent.BROWSE
    )
    full = response.purchase_probability(traits, _offer(n), _history(n), response.Intent.BROWSE)
    assert np.all(discounted > full)


def test_novelty_seekers_respond_to_brands_they_never_bought() -> None:
    n = 2
    traits = _traits(n, novelty=np.array([0.95, 0.05]))
    never = _history(n, brand_bought=np.zeros(n, dtype=bool))
    known = _history(n, brand_bought=np.ones(n, dtype=bool))
    p_new = response.purchase_probability(traits, _offer(n), never, response.Intent.BROWSE)
    p_known = response.purchase_probability(traits, _offer(n), known, response.Intent.BROWSE)
    assert p_new[0] > 2.0 * p_new[1]
    assert p_new[0] > p_known[0] and p_new[1] < p_known[1]
    clicks = response.respond(traits, _offer(n), never).click
    assert clicks[0] > clicks[1]


def test_hidden_traits_round_trip_through_ground_truth(tmp_path: Path) -> None:
    generate_world(tmp_path / "w", 300, 3, end=END, days=60)
    persons = pq.read_table(tmp_path / "w" / "ground_truth" / "persons.parquet")
    traits = response.Traits.from_persons(persons)
    assert len(traits.open_rate) == 300
    assert np.allclose(traits.category_affinity.sum(axis=1), 1.0, atol=1e-4)
    assert (traits.open_rate == 0).sum() == persons.column("never_opens").to_numpy().sum()
    got = response.respond(traits, _offer(300), _history(300))
    assert got.open.shape == (300,)


# --------------------------------------------------------------------------- generated world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("calibrated")
    generate_world(out, PERSONS, SEED, end=END)
    return out


@pytest.fixture(scope="module")
def con(world: Path) -> duckdb.DuckDBPyConnection:
    land, truth = world / "landing", world / "ground_truth"
    kinds = ", ".join(
        f"('{slug}', '{kind}', {days})" for slug, (kind, days) in vocab.CATEGORY_CYCLES.items()
    )
    names = ", ".join(f"('{c[0]}', '{c[1]}')" for c in vocab.CATEGORIES)
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    c.execute(
        f"""
        create table offers as select * from read_csv('{land}/offers/*.csv', all_varchar=true);
        create table products as
            select * from read_csv('{land}/catalog/products*.csv', all_varchar=true);
        create table kinds as select * from (values {kinds}) k(slug, kind, cycle_days);
        create table names as select * from (values {names}) n(category, slug);
        create table lines as
            select t.person_id, o.order_id, o.ordered_at::timestamptz ordered_at, k.kind, n.slug
            from read_csv('{land}/orders/orders*.csv', all_varchar=true) o
            join read_csv('{land}/orders/order_lines*.csv', all_varchar=true) l using (order_id)
            join products p using (product_id)
            join names n on n.category = p.category
            join kinds k using (slug)
            join '{truth}/records.parquet' t
              on t.source = 'shop_accounts' and t.record_id = o.account_id
            where o.status <> 'cancelled';
        """
    )
    return c


def test_world_reproduces_the_published_figures(world: Path) -> None:
    measured = measure(world)
    outside = {
        f.name: round(measured[f.name], 4)
        for f in FIGURES
        if not f.low <= measured[f.name] <= f.high
    }
    assert not outside, outside


def test_about_forty_sales_a_day_each_complete(con: duckdb.DuckDBPyConnection) -> None:
    per_day = con.execute(
        """
        select count(distinct sale_id) from offers
        group by starts_at::timestamptz::date
        """
    ).fetchall()
    daily = np.array([r[0] for r in per_day])
    assert len(daily) >= 700
    assert 36 < daily.mean() < 44
    incomplete = con.execute(
        """
        select count(*) from offers
        where title is null or theme is null or category is null or product_id is null
           or starts_at::timestamptz >= ends_at::timestamptz
           or discount_percent::int not between 5 and 70
           or sale_price::double >= regular_price::double
        """
    ).fetchone()[0]
    assert incomplete == 0
    sales = con.execute(
        """
        select count(distinct sale_id), count(distinct theme),
               count(distinct sale_id) filter (where brand is not null),
               min(n), max(n)
        from offers join (select sale_id, count(*) n from offers group by 1) using (sale_id)
        """
    ).fetchone()
    n_sales, themes, single_brand, smallest, largest = sales
    assert themes >= 12
    assert 0.4 < single_brand / n_sales < 0.8
    assert smallest >= 1 and largest <= 8
    # Every offered product is in the catalogue.
    assert (
        con.execute("select count(*) from offers anti join products using (product_id)").fetchone()[
            0
        ]
        == 0
    )


def test_durables_are_rarely_rebought_soon_and_consumables_are(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Share of purchases followed by another in the same category within 30 days."""
    again = dict(
        con.execute(
            """
            with buys as (select distinct person_id, order_id, ordered_at, kind, slug
                          from lines),
            nxt as (
                select kind, (lead(ordered_at) over (partition by person_id, slug
                                                     order by ordered_at)) next_at, ordered_at
                from buys)
            select kind, avg((next_at is not null
                              and next_at - ordered_at <= interval 30 day)::int)
            from nxt group by 1
            """
        ).fetchall()
    )
    assert again["consumable"] > 0.15
    assert again["durable"] < 0.08
    assert again["consumable"] > 5 * again["durable"]


def test_purchases_follow_hidden_traits(world: Path, con: duckdb.DuckDBPyConnection) -> None:
    truth = world / "ground_truth"
    by_quintile = con.execute(
        f"""
        with per_person as (
            select p.person_id, p.purchase_rate, count(distinct l.order_id) n
            from '{truth}/persons.parquet' p left join lines l using (person_id)
            where p.shop_accounts > 0 group by 1, 2)
        select q, avg(n) from (select *, ntile(5) over (order by purchase_rate) q
                               from per_person) group by 1 order by 1
        """
    ).fetchall()
    means = [m for _, m in by_quintile]
    assert means == sorted(means)
    assert means[-1] > 8 * means[0]


def test_more_emails_mean_fewer_opens_per_email_and_more_unsubscribes(world: Path) -> None:
    """Subscribers were given cadences at random: the effect of frequency shows in the data."""
    c = duckdb.connect()
    by_cadence = c.execute(
        f"""
        with e as (
            select lower(email) email, campaign_id, event_type, occurred_at::timestamptz ts
            from read_json('{world}/landing/email/*.jsonl', format='newline_delimited',
                           columns={{email: 'varchar', campaign_id: 'varchar',
                                     event_type: 'varchar', occurred_at: 'varchar'}})),
        per_send as (
            select email, campaign_id, bool_or(event_type = 'send') sent,
                   bool_or(event_type = 'bounce') bounced,
                   bool_or(event_type in ('open', 'click')) opened,
                   bool_or(event_type = 'unsubscribe') unsubscribed
            from e group by 1, 2),
        per_person as (
            select email, count(*) filter (where event_type = 'send') sends,
                   min(ts) filter (where event_type = 'send') first_at,
                   max(ts) filter (where event_type = 'send') last_at
            from e group by 1),
        weekly as (
            select email, sends / greatest(1, date_diff('day', first_at, last_at) / 7.0) per_week
            from per_person where sends >= 4)
        select per_week >= 3 heavy, avg(opened::int), avg(unsubscribed::int),
               count(distinct email) filter (where sends_opened = 0) * 1.0 / count(distinct email)
        from per_send join weekly using (email)
        join (select email, count(*) filter (where opened) sends_opened from per_send group by 1)
            using (email)
        where per_week < 0.75 or per_week >= 3
        group by 1 order by 1
        """
    ).fetchall()
    (_, light_open, light_unsub, _), (_, heavy_open, heavy_unsub, _) = by_cadence
    assert heavy_open < 0.75 * light_open
    assert heavy_unsub > 2.5 * light_unsub
    never = c.execute(
        f"""
        with e as (
            select lower(email) email, event_type
            from read_json('{world}/landing/email/*.jsonl', format='newline_delimited',
                           columns={{email: 'varchar', event_type: 'varchar'}}))
        select avg((opens = 0)::int) from (
            select email, count(*) filter (where event_type in ('open', 'click')) opens,
                   count(*) filter (where event_type = 'send') sends
            from e group by 1) where sends >= 20
        """
    ).fetchone()[0]
    assert 0.12 < never < 0.5  # some people never open, however often they are mailed
