"""Published e-commerce figures the sample world is calibrated to, and how to measure them.

Each figure is computed from a generated world's landing files the way an analyst would (web
sessions cut at 30 minutes of inactivity, email rates per delivered email), with the ground
truth only to tell which records are one person.
``tests/dagster_project/lib/test_generate_behaviour.py`` checks a generated world against the
bands; ``benchmarks/bench_generate.py --measure`` prints the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb


@dataclass(frozen=True)
class Figure:
    """A published figure and the band a generated world must fall in."""

    name: str
    description: str
    published: float
    source: str
    low: float
    high: float


FIGURES: tuple[Figure, ...] = (
    Figure(
        "repeat_within_year",
        "new customers who buy again within 12 months of their first order",
        0.32,
        "RJMetrics, 176 retailers and 18 million customers: 32 % make a second purchase in "
        "their first year",
        0.24,
        0.40,
    ),
    Figure(
        "orders_per_active_customer",
        "orders in the last 12 months per customer with an order in them",
        4.6,
        "Zalando Q2 2019: 4.6 average orders per active (last-12-months) customer, up from 4.2",
        3.2,
        5.5,
    ),
    Figure(
        "email_open_rate",
        "unique opens per delivered email",
        0.1566,
        "Mailchimp benchmarks (2018), e-commerce: 15.66 % open rate",
        0.125,
        0.19,
    ),
    Figure(
        "email_click_rate",
        "unique clicks per delivered email",
        0.0207,
        "Mailchimp benchmarks (2018), e-commerce: 2.07 % click rate",
        0.015,
        0.027,
    ),
    Figure(
        "email_unsubscribe_rate",
        "unsubscribes per delivered email",
        0.0020,
        "Mailchimp benchmarks (2015), e-commerce: 0.20 % unsubscribe rate",
        0.0012,
        0.0035,
    ),
    Figure(
        "cart_abandonment_rate",
        "web sessions with an add-to-cart and no purchase, of sessions with an add-to-cart",
        0.7019,
        "Baymard Institute: 70.19 % average documented cart abandonment rate (49 studies)",
        0.62,
        0.78,
    ),
    Figure(
        "session_conversion_rate",
        "web sessions with a purchase, of all web sessions",
        0.0258,
        "Invesp: 2.58 % global e-commerce conversion rate (2023); Dynamic Yield 3.21 %",
        0.018,
        0.036,
    ),
    Figure(
        "add_to_cart_rate",
        "web sessions with an add-to-cart, of all web sessions",
        0.0716,
        "Dynamic Yield e-commerce benchmarks: 7.16 % add-to-cart rate (12-month global average)",
        0.05,
        0.11,
    ),
)


def measure(out: Path) -> dict[str, float]:
    """Every figure of ``FIGURES`` measured on the world generated under ``out``."""
    land, truth = out / "landing", out / "ground_truth"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"""
        create view web as select cookie_id, event_type, cast(occurred_at as timestamptz) ts
        from read_json('{land}/web/events-*.jsonl', format='newline_delimited',
                       columns={{cookie_id: 'varchar', event_type: 'varchar',
                                 occurred_at: 'varchar'}});
        create view email as select email, campaign_id, event_type
        from read_json('{land}/email/*.jsonl', format='newline_delimited',
                       columns={{email: 'varchar', campaign_id: 'varchar',
                                 event_type: 'varchar'}});
        create view orders as select o.order_id, cast(o.ordered_at as timestamptz) ts, t.person_id
        from read_csv('{land}/orders/orders*.csv', all_varchar=true) o
        join '{truth}/records.parquet' t
          on t.source = 'shop_accounts' and t.record_id = o.account_id
        where o.status <> 'cancelled';
        create view persons as select * from '{truth}/persons.parquet';
        """
    )
    end = con.execute("select max(ts) from web").fetchone()[0]
    start = con.execute("select min(ts) from web").fetchone()[0]
    year = timedelta(days=365)
    figures: dict[str, float] = {}

    figures["repeat_within_year"] = con.execute(
        """
        with per_person as (
            select o.person_id, min(o.ts) first_at from orders o
            join persons p using (person_id)
            where p.signed_up_at >= ? group by 1),
        cohort as (select * from per_person where first_at <= ?)
        select avg((exists (select 1 from orders o where o.person_id = c.person_id
                            and o.ts > c.first_at and o.ts <= c.first_at + interval 365 day))::int)
        from cohort c
        """,
        [start, end - year],
    ).fetchone()[0]
    figures["orders_per_active_customer"] = con.execute(
        "select count(*) / count(distinct person_id) from orders where ts > ?", [end - year]
    ).fetchone()[0]

    delivered, opened, clicked, unsubscribed = con.execute(
        """
        with per_send as (
            select email, campaign_id,
                   bool_or(event_type = 'send') sent, bool_or(event_type = 'bounce') bounced,
                   bool_or(event_type in ('open', 'click')) opened,
                   bool_or(event_type = 'click') clicked,
                   bool_or(event_type = 'unsubscribe') unsubscribed
            from email group by 1, 2)
        select count(*) filter (where sent and not bounced),
               count(*) filter (where sent and not bounced and opened),
               count(*) filter (where sent and not bounced and clicked),
               count(*) filter (where sent and not bounced and unsubscribed)
        from per_send
        """
    ).fetchone()
    figures["email_open_rate"] = opened / delivered
    figures["email_click_rate"] = clicked / delivered
    figures["email_unsubscribe_rate"] = unsubscribed / delivered

    sessions, carts, buys, abandoned = con.execute(
        """
        with ordered as (
            select *, ts - lag(ts) over (partition by cookie_id order by ts) gap from web),
        numbered as (
            select *, sum((gap is null or gap > interval 30 minute)::int)
                over (partition by cookie_id order by ts rows unbounded preceding) session
            from ordered),
        per_session as (
            select cookie_id, session, bool_or(event_type = 'add_to_cart') carted,
                   bool_or(event_type = 'purchase') bought
            from numbered group by 1, 2)
        select count(*), count(*) filter (where carted), count(*) filter (where bought),
               count(*) filter (where carted and not bought)
        from per_session
        """
    ).fetchone()
    figures["cart_abandonment_rate"] = abandoned / carts
    figures["session_conversion_rate"] = buys / sessions
    figures["add_to_cart_rate"] = carts / sessions
    con.close()
    return {k: float(v) for k, v in figures.items()}
