"""``generate_world``: the sample retail world, its sources, cdp.yml and ground truth."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dagster_project.lib.generate import behaviour, shopping, sources
from dagster_project.lib.generate.catalog import build_catalog
from dagster_project.lib.generate.common import Stream, Window, join, stream
from dagster_project.lib.generate.config_writer import realtime_seed_paths, write_config
from dagster_project.lib.generate.people import Accounts, Crm, build_accounts, build_crm
from dagster_project.lib.generate.sales import build_sales
from dagster_project.lib.generate.world import World, build_world, persons_table

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]

#: Folders and files below OUT that the generator owns and may replace.
OWNED = (
    "landing/crm",
    "landing/shop",
    "landing/web",
    "landing/orders",
    "landing/email",
    "landing/catalog",
    "landing/offers",
    "ground_truth",
    "cdp.yml",
)

MIN_DAYS = 7
MAX_PERSONS = 50_000_000


class GeneratorError(ValueError):
    """Bad arguments or an output folder that would be overwritten; the message says what to do."""


@dataclass
class GenerationReport:
    """What a generation run wrote and how long it took.

    ``rows`` counts records per source name; ``noise`` counts the data-quality problems that
    were planted (typos, nicknames, junk values, duplicate accounts, bounces, ...).
    """

    persons: int
    rows: dict[str, int]
    files: list[Path]
    seconds: float
    bytes_written: int = 0
    noise: dict[str, int] = field(default_factory=dict)


def _check_arguments(out: Path, persons: int, seed: int, days: int, overwrite: bool) -> None:
    if not isinstance(persons, int) or persons < 1 or persons > MAX_PERSONS:
        raise GeneratorError(
            f"persons must be a whole number from 1 to {MAX_PERSONS:,}, got {persons!r}"
        )
    if not isinstance(seed, int) or seed < 0:
        raise GeneratorError(f"seed must be a non-negative whole number, got {seed!r}")
    if not isinstance(days, int) or days < MIN_DAYS:
        raise GeneratorError(f"days must be at least {MIN_DAYS}, got {days!r}")
    if out.exists() and not out.is_dir():
        raise GeneratorError(f"{out} exists and is not a folder; choose another --out")
    existing = [
        p for p in OWNED if (out / p).exists() and ((out / p).is_file() or any((out / p).iterdir()))
    ]
    if existing and not overwrite:
        raise GeneratorError(
            f"{out} already holds generated data ({', '.join(existing)}); choose an empty --out "
            "or allow overwriting (cdp generate --force)"
        )


def _clear(out: Path) -> None:
    for rel in OWNED:
        target = out / rel
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def generate_world(
    out: Path,
    persons: int,
    seed: int,
    *,
    end: date,
    days: int = 730,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> GenerationReport:
    """Write the sample sources, ``cdp.yml`` and ground truth for ``persons`` persons under ``out``.

    The same (persons, seed, end, days) always gives byte-identical files. Everything is dated in
    the ``days`` days before midnight UTC starting ``end``.
    """
    out = Path(out)
    _check_arguments(out, persons, seed, days, overwrite)
    _clear(out)
    began = time.perf_counter()
    report = GenerationReport(persons=persons, rows={}, files=[], seconds=0.0)
    noise = report.noise
    window = Window.ending(end, days)
    months = window.months()

    def tick(name: str, done: int = 1, total: int = 1) -> None:
        logger.debug(
            "generate: %s %d/%d after %.1fs", name, done, total, time.perf_counter() - began
        )
        if progress is not None:
            progress(name, done, total)

    landing = out / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    w = sources.SourceWriter(landing=landing, con=con)
    try:

        def wrote(source: str, rows: int, path: Path) -> None:
            report.rows[source] = report.rows.get(source, 0) + rows
            report.files.append(path)

        tick("catalog", 0)
        catalog = build_catalog(seed, window)
        wrote("products", sources.write_products(w, catalog), w.path("products"))
        wrote("price_changes", sources.write_price_changes(w, catalog), w.path("price_changes"))
        tick("catalog")

        tick("sales calendar", 0)
        sales = build_sales(catalog, window, seed)
        for path, rows in sources.write_offers(w, sales, catalog, window):
            wrote("offers", rows, path)
        tick("sales calendar")

        tick("persons", 0)
        world = build_world(persons, seed, window)
        tick("persons")

        tick("crm and shop accounts", 0)
        crm = build_crm(world, seed, noise)
        wrote("crm", sources.write_crm(w, crm.table), w.path("crm"))
        accounts = build_accounts(world, window, seed, noise)
        wrote("shop_accounts", sources.write_accounts(w, accounts.table), w.path("shop_accounts"))
        tick("crm and shop accounts")

        tick("emails, visits and purchases", 0)
        subs = shopping.subscribers(world, crm, accounts, window, seed)
        mailer = shopping.Mailer(world, subs, sales, window, seed)
        span = behaviour.activity_span(world, window, stream(seed, Stream.SESSIONS))
        cookies = behaviour.build_cookies(world, *span, stream(seed, Stream.WEB))
        planned = shopping.plan_visits(world, accounts, span, behaviour.HOURLY, window, seed)
        simulation = shopping.Simulation(world, catalog, sales, accounts, subs, window, seed)
        done = simulation.run(mailer, planned)
        noise.update(done.noise)
        email = behaviour.email_result(done.email, subs, sales, world.n, noise)
        wrote("email_events", sources.write_email(w, email), w.path("email_events"))
        web_number, app_number = behaviour.order_numbers(done.web, done.app)
        sessions = behaviour.web_sessions(
            world, accounts, cookies, done.web, web_number, catalog, span, seed, noise
        )
        tick("emails, visits and purchases")

        sim = behaviour.WebSimulator(world, catalog, sessions, window, seed)
        web = sources.WebWriter(w, cookies, catalog, accounts.account_id, email)
        tick("web events", 0, len(months))
        for i, batch in enumerate(sim.months()):
            path, rows = web.write(batch)
            wrote("web_events", rows, path)
            tick("web events", i + 1, len(months))

        tick("orders", 0)
        orders = behaviour.build_orders(
            sim, done.app, app_number, accounts, sales, window, seed, noise
        )
        wrote("orders", sources.write_orders(w, orders, accounts.account_id), w.path("orders"))
        wrote("order_lines", sources.write_order_lines(w, orders, catalog), w.path("order_lines"))
        tick("orders")

        tick("ground truth", 0)
        truth = out / "ground_truth"
        truth.mkdir(parents=True, exist_ok=True)
        records = _records(world, crm, accounts, cookies, web.used_cookies, email)
        pq.write_table(records, truth / "records.parquet", compression="zstd")
        pq.write_table(persons_table(world), truth / "persons.parquet", compression="zstd")
        report.files += [truth / "records.parquet", truth / "persons.parquet"]
        tick("ground truth")

        tick("cdp.yml", 0)
        report.files.append(write_config(out))
        report.files += realtime_seed_paths(out)  # the real-time sources' empty landing files
        w.flush()
        tick("cdp.yml")
    finally:
        w.close()
        con.close()
    report.seconds = time.perf_counter() - began
    report.bytes_written = sum(p.stat().st_size for p in report.files)
    logger.info(
        "generated %d persons, %d rows in %.1fs under %s",
        persons,
        sum(report.rows.values()),
        report.seconds,
        out,
    )
    return report


def _records(
    world: World,
    crm: Crm,
    accounts: Accounts,
    cookies: behaviour.Cookies,
    used_cookies: np.ndarray,
    email: behaviour.EmailResult,
) -> pa.Table:
    """(source, record_id, person_id) for every person-describing record."""
    used = np.flatnonzero(used_cookies)
    parts = [
        ("crm", crm.table.column("customer_number").combine_chunks(), crm.person),
        ("shop_accounts", accounts.account_id, accounts.person),
        (
            "web_events",
            join("cookie:", pc.take(cookies.cookie_id, pa.array(used))),
            cookies.owner[used],
        ),
        ("email_events", join("email:", email.addresses), email.address_person),
    ]
    tables = []
    for name, record_id, person in parts:
        if pc.count_distinct(record_id).as_py() != len(record_id):
            raise RuntimeError(f"ground truth for {name} has a record id shared by two persons")
        tables.append(
            pa.table(
                {
                    "source": pa.array([name] * len(record_id), type=pa.string()),
                    "record_id": record_id,
                    "person_id": pc.take(world.person_id, pa.array(person)),
                }
            )
        )
    return pa.concat_tables(tables)
