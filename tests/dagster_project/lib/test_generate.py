"""The sample-world generator: real files, read back with DuckDB and checked against the truth."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import phonenumbers
import pyarrow.parquet as pq
import pytest

from dagster_project.lib.config import load_config
from dagster_project.lib.generate import GenerationReport, GeneratorError, generate_world
from dagster_project.lib.generate.vocab import (
    JUNK_EMAILS,
    JUNK_PHONES,
    NICKNAME_PAIRS,
)

END = date(2025, 3, 31)
DAYS = 730
PERSONS = 1500
SEED = 11
END_TS = datetime(END.year, END.month, END.day, tzinfo=UTC)
START_TS = END_TS - timedelta(days=DAYS)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationReport]:
    out = tmp_path_factory.mktemp("generated")
    steps: list[tuple[str, int, int]] = []
    report = generate_world(
        out, PERSONS, SEED, end=END, days=DAYS, progress=lambda *a: steps.append(a)
    )
    (out / "progress.json").write_text(json.dumps(steps))
    return out, report


@pytest.fixture(scope="module")
def con(world: tuple[Path, GenerationReport]) -> duckdb.DuckDBPyConnection:
    """Views over the generated files, read the way a user would read them."""
    out, _ = world
    land = out / "landing"
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")

    def csv(name: str, path: str) -> None:
        c.execute(
            f"create table {name} as select * from read_csv('{land / path}', all_varchar=true)"
        )

    def jsonl(name: str, path: str) -> None:
        c.execute(
            f"create table {name} as select * from read_json('{land / path}', "
            "format='newline_delimited', sample_size=-1, union_by_name=true)"
        )

    csv("crm", "crm/crm_customers.csv")
    csv("orders", "orders/orders.csv")
    csv("order_lines", "orders/order_lines.csv")
    csv("products", "catalog/products.csv")
    jsonl("shop", "shop/accounts.jsonl")
    jsonl("web", "web/events-*.jsonl")
    jsonl("email", "email/email_events.jsonl")
    jsonl("price_changes", "catalog/price_changes.jsonl")
    csv("offers", "offers/sales-*.csv")
    c.execute(f"create view truth as select * from '{out / 'ground_truth/records.parquet'}'")
    c.execute(f"create view persons as select * from '{out / 'ground_truth/persons.parquet'}'")
    return c


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def one(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return con.execute(sql).fetchone()[0]


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    first = generate_world(tmp_path / "a", 300, 5, end=END, days=120)
    generate_world(tmp_path / "b", 300, 5, end=END, days=120)
    generate_world(tmp_path / "c", 300, 6, end=END, days=120)
    a, b, c = (file_digests(tmp_path / x) for x in "abc")
    assert len(a) == len(first.files) >= 10
    assert a == b
    assert a.keys() == c.keys()
    differing = {k for k in a if a[k] != c[k]}
    assert "landing/crm/crm_customers.csv" in differing
    assert "landing/web/events-2025-03.jsonl" in differing


def test_progress_reports_each_step_and_finishes(world: tuple[Path, GenerationReport]) -> None:
    out, _ = world
    steps = json.loads((out / "progress.json").read_text())
    names = list(dict.fromkeys(s[0] for s in steps))
    assert names[0] == "catalog" and names[-1] == "cdp.yml"
    assert "web events" in names
    web = [s for s in steps if s[0] == "web events"]
    assert web[-1][1] == web[-1][2] == 24  # Apr 2023 .. Mar 2025
    for name in names:
        last = [s for s in steps if s[0] == name][-1]
        assert last[1] == last[2]


# --------------------------------------------------------------------------- files and config


def test_report_row_counts_match_the_files(
    world: tuple[Path, GenerationReport], con: duckdb.DuckDBPyConnection
) -> None:
    _, report = world
    views = {
        "crm": "crm",
        "shop_accounts": "shop",
        "web_events": "web",
        "orders": "orders",
        "order_lines": "order_lines",
        "email_events": "email",
        "products": "products",
        "price_changes": "price_changes",
        "offers": "offers",
    }
    assert set(report.rows) == set(views)
    for source, view in views.items():
        assert one(con, f"select count(*) from {view}") == report.rows[source], source
    assert report.persons == PERSONS
    assert all(p.is_file() for p in report.files)
    assert report.bytes_written == sum(p.stat().st_size for p in report.files)


def test_realistic_volumes(world: tuple[Path, GenerationReport]) -> None:
    _, report = world
    r = report.rows
    assert 0.62 * PERSONS < r["crm"] < 0.78 * PERSONS
    assert 0.67 * PERSONS < r["shop_accounts"] < 0.85 * PERSONS
    assert 15 * PERSONS < r["web_events"] < 40 * PERSONS
    assert r["products"] == 2000
    assert 3 * 40 * DAYS < r["offers"] < 9 * 40 * DAYS  # ~40 sales a day of 3-8 products
    assert r["order_lines"] >= r["orders"] > 0.1 * PERSONS


def test_cdp_yml_validates_and_every_mapped_column_exists(
    world: tuple[Path, GenerationReport], tmp_path: Path
) -> None:
    out, _ = world
    loaded = load_config(out / "cdp.yml")
    config = loaded.config
    assert config.landing == "landing"
    assert config.defaults.phone_region == "US"
    assert {s.name for s in config.sources} == {
        "crm",
        "shop_accounts",
        "web_events",
        "orders",
        "order_lines",
        "email_events",
        "products",
        "price_changes",
        "offers",
        # folded from the event log; seeded with an empty file until the first event
        "realtime_events",
        "realtime_price_changes",
    }
    c = duckdb.connect()
    for source in config.sources:
        files = loaded.source_files(source, tmp_path)
        assert files, f"{source.name}: glob {source.path} matches nothing"
        for f in files:
            assert f.is_relative_to(out / "landing")
            if f.stat().st_size == 0:  # a real-time source's seed: no rows, no columns yet
                assert source.name.startswith("realtime_"), f
                continue
            if source.format == "csv":
                columns = {
                    r[0]
                    for r in c.execute(
                        f"describe select * from read_csv('{f}', all_varchar=true)"
                    ).fetchall()
                }
            else:
                columns = {
                    k
                    for (keys,) in c.execute(
                        f"select distinct json_keys(json) from read_ndjson_objects('{f}')"
                    ).fetchall()
                    for k in keys
                }
            missing = source.mapped_columns() - columns
            assert not missing, f"{source.name} {f.name}: missing {missing}"
    # Each glob matches only its own source's files.
    seen: dict[Path, str] = {}
    for source in config.sources:
        for f in loaded.source_files(source, tmp_path):
            assert f not in seen, f"{f} matched by {seen.get(f)} and {source.name}"
            seen[f] = source.name


def test_person_id_never_reaches_the_landing_files(world: tuple[Path, GenerationReport]) -> None:
    out, _ = world
    person_ids = pq.read_table(out / "ground_truth/persons.parquet", columns=["person_id"])
    sample = person_ids.column(0).to_pylist()[:: max(1, PERSONS // 50)]
    for f in (out / "landing").rglob("*"):
        if f.is_file():
            text = f.read_text(encoding="utf-8")
            assert "person_" not in text, f
            assert not any(pid in text for pid in sample)


def test_csvs_are_readable_as_text_and_keep_leading_zeros(con: duckdb.DuckDBPyConnection) -> None:
    codes = [r[0] for r in rows(con, "select postal_code from crm where postal_code is not null")]
    assert codes and all(re.fullmatch(r"\d{5}", c) for c in codes)
    assert any(c.startswith("0") for c in codes)
    assert one(con, "select count(*) from crm where customer_number not similar to 'C\\d{7}'") == 0
    zips = [r[0] for r in rows(con, "select ship_zip from shop where ship_zip is not null")]
    assert all(re.fullmatch(r"\d{5}(-\d{4})?", z) for z in zips)
    assert any(z.startswith("0") for z in zips)
    assert one(con, "select count(*) from order_lines where try_cast(quantity as int) < 1") == 0
    assert rows(con, "select distinct country from crm") == [("US",)]


# --------------------------------------------------------------------------- ground truth


def test_ground_truth_covers_every_person_describing_record(
    con: duckdb.DuckDBPyConnection,
) -> None:
    checks = {
        "crm": "select customer_number from crm",
        "shop_accounts": "select account_id from shop",
        "web_events": "select distinct 'cookie:' || cookie_id from web",
        "email_events": "select distinct 'email:' || email from email",
    }
    for source, sql in checks.items():
        in_files = {r[0] for r in rows(con, sql)}
        in_truth = {
            r[0] for r in rows(con, f"select record_id from truth where source = '{source}'")
        }
        assert in_files == in_truth, source
    assert one(con, "select count(*) - count(distinct (source, record_id)) from truth") == 0
    assert one(con, "select count(*) from truth anti join persons using (person_id)") == 0
    assert one(con, "select count(*) from persons") == PERSONS


def test_crm_rows_describe_their_true_person(con: duckdb.DuckDBPyConnection) -> None:
    agree = one(
        con,
        """
        select avg((c.birth_date = cast(p.birth_date as varchar))::int)
        from crm c
        join truth t on t.source = 'crm' and t.record_id = c.customer_number
        join persons p using (person_id)
        where c.birth_date is not null
        """,
    )
    assert agree == 1.0
    same_zip = one(
        con,
        """
        select avg((c.postal_code = p.postal_code)::int) from crm c
        join truth t on t.source = 'crm' and t.record_id = c.customer_number
        join persons p using (person_id) where c.postal_code is not null
        """,
    )
    assert same_zip == 1.0


# --------------------------------------------------------------------------- messiness


def _shop_with_truth(con: duckdb.DuckDBPyConnection) -> str:
    return """
        select s.*, p.person_id, p.first_name as true_first, p.last_name as true_last,
               p.phone as true_phone, p.household_id, p.birth_date as true_birth
        from shop s
        join truth t on t.source = 'shop_accounts' and t.record_id = s.account_id
        join persons p using (person_id)
    """


def test_shop_phones_come_in_many_formats_that_normalise_to_e164(
    con: duckdb.DuckDBPyConnection,
) -> None:
    styles = {
        "parens": r"\(\d{3}\) \d{3}-\d{4}",
        "dots": r"\d{3}\.\d{3}\.\d{4}",
        "spaced": r"\+1 \d{3} \d{3} \d{4}",
        "digits": r"\d{10}",
        "dashes": r"\d{3}-\d{3}-\d{4}",
        "e164": r"\+1\d{10}",
    }
    seen: set[str] = set()
    checked = 0
    for phone, true_phone in rows(
        con, f"select phone, true_phone from ({_shop_with_truth(con)}) where phone is not null"
    ):
        if phone in JUNK_PHONES:
            continue
        style = next(name for name, pattern in styles.items() if re.fullmatch(pattern, phone))
        seen.add(style)
        parsed = phonenumbers.parse(phone, "US")
        assert phonenumbers.is_valid_number(parsed), phone
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == true_phone
        checked += 1
    assert seen == set(styles)
    assert checked > 500


def test_every_true_phone_is_a_valid_us_number(con: duckdb.DuckDBPyConnection) -> None:
    for (phone,) in rows(con, "select phone from persons"):
        assert phonenumbers.is_valid_number(phonenumbers.parse(phone, None)), phone


def test_junk_values_are_present(con: duckdb.DuckDBPyConnection) -> None:
    emails = {r[0] for r in rows(con, "select email from shop")}
    phones = {r[0] for r in rows(con, "select phone from shop")}
    assert emails & set(JUNK_EMAILS)
    assert phones & set(JUNK_PHONES)
    # Junk is shared by unrelated persons: exactly what a matcher must not merge on.
    shared_junk = one(
        con,
        f"""
        select max(n) from (
            select email, count(distinct person_id) n from ({_shop_with_truth(con)})
            where email in {tuple(JUNK_EMAILS)} group by email)
        """,
    )
    assert shared_junk >= 2


def test_households_share_phones_and_addresses(con: duckdb.DuckDBPyConnection) -> None:
    shared = rows(
        con,
        """
        select phone, count(distinct person_id) n, count(distinct household_id) households,
               count(*) filter (where household_id is null) loners
        from persons group by phone having count(distinct person_id) > 1
        """,
    )
    assert len(shared) >= 10
    assert all(households == 1 and loners == 0 for _, n, households, loners in shared)
    sizes = [n for _, n, _, _ in shared]
    assert max(sizes) <= 4
    same_last = one(
        con,
        """
        select avg((n_last = 1)::int) from (
            select household_id, count(distinct last_name) n_last from persons
            where household_id is not null group by household_id)
        """,
    )
    assert 0.5 < same_last < 1.0
    # Households share the street address too.
    assert (
        one(
            con,
            """select max(n) from (select household_id, count(distinct street_address) n
           from persons where household_id is not null group by household_id)""",
        )
        == 1
    )
    # The shared phone shows up on different persons' shop accounts.
    in_shop = one(
        con,
        f"""
        select count(*) from (
            select regexp_replace(phone, '[^0-9]', '', 'g') digits
            from ({_shop_with_truth(con)}) where phone is not null and phone not in
            {tuple(JUNK_PHONES)}
            group by digits having count(distinct person_id) > 1)
        """,
    )
    assert in_shop >= 3


def test_nicknames_typos_swaps_and_case_noise_occur(con: duckdb.DuckDBPyConnection) -> None:
    shop = rows(
        con, f"select first_name, last_name, true_first, true_last from ({_shop_with_truth(con)})"
    )
    pairs = set(NICKNAME_PAIRS)
    nicknamed = sum(1 for f, _, tf, _ in shop if (tf, f) in pairs)
    swapped = sum(1 for f, la, tf, tl in shop if f == tl and la == tf and tf != tl)
    shouting = sum(1 for f, _, tf, _ in shop if f and f == tf.upper() and f != tf)
    typos = sum(
        1
        for f, la, tf, tl in shop
        if la and la != tl and la.lower() != tl.lower() and la != tf and abs(len(la) - len(tl)) <= 2
    )
    n = len(shop)
    assert 0.05 * n < nicknamed < 0.3 * n
    assert 0.005 * n < swapped < 0.05 * n
    assert shouting > 0
    assert 0.01 * n < typos < 0.15 * n


def test_changed_emails_and_duplicate_accounts(con: duckdb.DuckDBPyConnection) -> None:
    changed = one(
        con,
        """
        select count(*) from crm c
        join truth tc on tc.source = 'crm' and tc.record_id = c.customer_number
        join truth ts on ts.source = 'shop_accounts' and ts.person_id = tc.person_id
        join shop s on s.account_id = ts.record_id
        join persons p on p.person_id = tc.person_id
        where c.email = p.previous_email and s.email = p.email
          and split_part(c.email, '@', 2) <> split_part(s.email, '@', 2)
        """,
    )
    assert changed > 10
    dupes = one(
        con,
        """select count(*) from (select person_id from truth where source = 'shop_accounts'
           group by person_id having count(*) = 2)""",
    )
    assert dupes > 5


def test_same_name_different_people(con: duckdb.DuckDBPyConnection) -> None:
    groups = rows(
        con,
        """
        select first_name, last_name, count(*) n, count(distinct birth_date) births,
               count(distinct street_address) streets
        from persons where (first_name, last_name) in (('John', 'Smith'), ('Maria', 'Garcia'))
        group by 1, 2
        """,
    )
    assert len(groups) == 2
    for _, _, n, births, streets in groups:
        assert n >= 2 and births >= 2 and streets >= 2


def test_email_esp_addresses_vary_in_case_and_bounce(con: duckdb.DuckDBPyConnection) -> None:
    cased = one(con, "select count(distinct email) from email where email <> lower(email)")
    assert cased > 0
    bounced = rows(
        con,
        """
        select distinct b.email from email b where b.event_type = 'bounce'
        """,
    )
    assert len(bounced) > 0
    # After a bounce the ESP never sends to that address again.
    resent = one(
        con,
        """
        select count(*) from email s join (
            select email, min(occurred_at) first_bounce from email where event_type = 'bounce'
            group by email) b using (email)
        where s.event_type = 'send' and s.occurred_at > b.first_bounce + interval 1 hour
        """,
    )
    assert resent == 0
    # Unsubscribed addresses receive nothing later either.
    after_unsub = one(
        con,
        """
        select count(*) from email s join (
            select email, min(occurred_at) unsubscribed_at from email
            where event_type = 'unsubscribe' group by email) u using (email)
        where s.event_type = 'send' and s.occurred_at > u.unsubscribed_at
        """,
    )
    assert after_unsub == 0


# --------------------------------------------------------------------------- web and orders


def test_web_event_fields_follow_event_type(con: duckdb.DuckDBPyConnection) -> None:
    by_type = {
        r[0]: r[1:]
        for r in rows(
            con,
            """
            select event_type, count(*), count(account_id), count(product_id),
                   count(search_query), count(order_id)
            from web group by 1
            """,
        )
    }
    assert set(by_type) == {
        "page_view",
        "product_view",
        "search",
        "add_to_cart",
        "login",
        "purchase",
    }
    for event, (n, account, product, query, order) in by_type.items():
        assert account == (n if event in ("login", "purchase") else 0), event
        assert product == (n if event in ("product_view", "add_to_cart") else 0), event
        assert query == (n if event == "search" else 0), event
        assert order == (n if event == "purchase" else 0), event
    assert (
        one(
            con,
            "select count(*) from web w anti join orders o on o.order_id = w.order_id "
            "where w.event_type = 'purchase'",
        )
        == 0
    )
    # Web orders have their purchase event; app orders leave no web events (no app analytics).
    unmatched = rows(
        con,
        "select channel, count(*) from orders o anti join web w using (order_id) group by 1",
    )
    assert [c for c, _ in unmatched] in ([], ["app"])
    assert one(con, "select count(*) from orders where channel = 'app'") > 0
    utm = one(con, "select count(*) filter (where utm_source = 'email') from web")
    assert utm > 0
    assert one(con, "select count(*) from web where url not like 'https://shop.example.com/%'") == 0


def test_some_people_only_browse_anonymously_and_some_cookies_are_shared(
    con: duckdb.DuckDBPyConnection,
) -> None:
    anonymous = one(
        con,
        """
        select count(distinct person_id) from truth t where source = 'web_events'
        and person_id not in (
            select t2.person_id from web w
            join truth t2 on t2.source = 'web_events' and t2.record_id = 'cookie:' || w.cookie_id
            where w.event_type = 'login')
        """,
    )
    assert anonymous > 0.1 * PERSONS
    shared = rows(
        con,
        """
        select cookie_id, count(distinct t.person_id) from web w
        join truth t on t.source = 'shop_accounts' and t.record_id = w.account_id
        where w.event_type = 'login' group by 1 having count(distinct t.person_id) > 1
        """,
    )
    assert len(shared) >= 1
    cookies_per_person = one(
        con,
        "select max(n) from (select person_id, count(*) n from truth "
        "where source = 'web_events' group by 1)",
    )
    assert 2 <= cookies_per_person <= 4


def test_nothing_is_dated_after_the_end(con: duckdb.DuckDBPyConnection) -> None:
    end = END_TS.replace(tzinfo=None)
    start = START_TS.replace(tzinfo=None)
    timed = {
        "web": "occurred_at",
        "email": "occurred_at",
        "price_changes": "changed_at",
        "shop": "created_at",
        "orders": "cast(ordered_at as timestamptz)",
    }
    for view, column in timed.items():
        lo, hi = con.execute(
            f"select min({column})::timestamp, max({column})::timestamp from {view}"
        ).fetchone()
        assert hi < end, view
        if view != "shop":  # accounts of existing customers predate the window
            assert lo >= start, view
    for column in ("signup_date", "birth_date"):
        assert one(con, f"select max({column}::date) from crm") < END


def test_timestamps_are_iso_utc_with_z(world: tuple[Path, GenerationReport]) -> None:
    out, _ = world
    pattern = re.compile(
        r'"(occurred_at|created_at|changed_at)":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"'
    )
    for f in sorted((out / "landing").rglob("*.jsonl")):
        with f.open(encoding="utf-8") as fh:
            for _, line in zip(range(200), fh, strict=False):
                record = json.loads(line)
                stamped = [k for k in ("occurred_at", "created_at", "changed_at") if k in record]
                assert stamped, f
                assert pattern.search(line), line


def test_order_lines_are_priced_from_the_price_history(con: duckdb.DuckDBPyConnection) -> None:
    mismatched = con.execute(
        """
        with history as (
            select product_id, price, changed_at from price_changes),
        lines as (
            select l.order_id, l.product_id, l.unit_price::decimal(18, 2) unit_price,
                   o.ordered_at::timestamptz ordered_at
            from order_lines l join orders o using (order_id)),
        offers_then as (
            select product_id, sale_price::decimal(18, 2) sale_price,
                   starts_at::timestamptz starts_at, ends_at::timestamptz ends_at
            from offers),
        expected as (
            select l.*, (select h.price from history h
                         where h.product_id = l.product_id and h.changed_at <= l.ordered_at
                         order by h.changed_at desc limit 1)::decimal(18, 2) as price_then,
                        (select min(f.sale_price) from offers_then f
                         where f.product_id = l.product_id and f.starts_at <= l.ordered_at
                           and l.ordered_at < f.ends_at) as sale_then
            from lines l)
        select count(*) filter (where unit_price <> least(price_then, coalesce(sale_then,
                                                                        price_then))),
               count(*) filter (where sale_then < price_then)
        from expected
        """,
    ).fetchone()
    # A line costs the regular price then, or the best sale price of a sale running then.
    mismatched, on_sale = mismatched
    assert mismatched == 0
    assert on_sale > 0
    totals = one(
        con,
        """
        select count(*) from orders o join (
            select order_id, sum(quantity::int * unit_price::decimal(18, 2)) s
            from order_lines group by 1) l using (order_id)
        where o.total::decimal(18, 2) <> l.s
        """,
    )
    assert totals == 0
    statuses = dict(rows(con, "select status, count(*) from orders group by 1"))
    n = sum(statuses.values())
    assert set(statuses) == {"completed", "returned", "cancelled"}
    assert 0.01 < statuses["returned"] / n < 0.12
    assert 0.005 < statuses["cancelled"] / n < 0.06
    assert one(con, "select count(*) from orders where currency <> 'USD'") == 0
    # Line numbers run 1..k within each order.
    assert (
        one(
            con,
            """select count(*) from (select order_id, max(line_number::int) m, count(*) n
           from order_lines group by 1) where m <> n""",
        )
        == 0
    )


# --------------------------------------------------------------------------- behaviour


def test_higher_purchase_rate_means_more_orders(con: duckdb.DuckDBPyConnection) -> None:
    by_quartile = rows(
        con,
        """
        with per_person as (
            select p.person_id, p.purchase_rate, count(o.order_id) n
            from persons p
            left join truth t on t.source = 'shop_accounts' and t.person_id = p.person_id
            left join orders o on o.account_id = t.record_id
            where p.shop_accounts > 0 group by 1, 2)
        select q, avg(n) from (
            select *, ntile(4) over (order by purchase_rate) q from per_person)
        group by q order by q
        """,
    )
    means = [m for _, m in by_quartile]
    assert means == sorted(means)
    assert means[3] > 2.5 * means[0]
    buyers = rows(
        con,
        """select avg(n) from (select t.person_id, count(*) n from orders o
           join truth t on t.source = 'shop_accounts' and t.record_id = o.account_id group by 1)""",
    )[0][0]
    assert 1.5 < buyers < 10.0


def test_product_views_follow_category_affinity(
    world: tuple[Path, GenerationReport], con: duckdb.DuckDBPyConnection
) -> None:
    views = rows(
        con,
        """
        select t.person_id, p.category, count(*) n from web w
        join truth t on t.source = 'web_events' and t.record_id = 'cookie:' || w.cookie_id
        join products p on p.product_id = w.product_id
        where w.event_type = 'product_view' group by 1, 2
        """,
    )
    persons = (
        pq.read_table(world[0] / "ground_truth/persons.parquet").to_pandas().set_index("person_id")
    )
    categories = sorted({c for _, c, _ in views})
    slug = {c: "affinity_" + re.sub(r"[^a-z]+", "_", c.lower()).strip("_") for c in categories}
    totals: dict[str, int] = {}
    for person, _, n in views:
        totals[person] = totals.get(person, 0) + n
    share, affinity = [], []
    for person, category, n in views:
        if totals[person] >= 15:
            share.append(n / totals[person])
            affinity.append(persons.loc[person, slug[category]])
    assert len(share) > 200
    assert np.corrcoef(share, affinity)[0, 1] > 0.6


def test_email_engagement_follows_receptivity(con: duckdb.DuckDBPyConnection) -> None:
    per_person = rows(
        con,
        """
        select p.email_open_rate,
               count(*) filter (where e.event_type = 'open') / count(*) filter (
                   where e.event_type = 'send') as opened
        from email e
        join truth t on t.source = 'email_events' and t.record_id = 'email:' || e.email
        join persons p using (person_id)
        where not p.is_churned
        group by p.person_id, p.email_open_rate
        having count(*) filter (where e.event_type = 'send') >= 5
        """,
    )
    assert len(per_person) > 100
    rate, opened = zip(*per_person, strict=True)
    assert np.corrcoef(rate, opened)[0, 1] > 0.5
    # Clicks bring people to the site with utm_source=email.
    assert one(con, "select count(*) from email where event_type = 'click'") > 0
    assert one(con, "select count(distinct utm_campaign) from web where utm_source = 'email'") > 5


def test_churned_people_stop_browsing(con: duckdb.DuckDBPyConnection) -> None:
    # A family computer's cookie belongs to its owner but may be used by the others.
    late = one(
        con,
        """
        with shared as (
            select w.cookie_id from web w
            join truth t on t.source = 'shop_accounts' and t.record_id = w.account_id
            group by 1 having count(distinct t.person_id) > 1)
        select count(*) from web w
        join truth t on t.source = 'web_events' and t.record_id = 'cookie:' || w.cookie_id
        join persons p using (person_id)
        where p.churned_at is not null and w.occurred_at > p.churned_at
          and coalesce(w.utm_source, '') <> 'email'
          and w.cookie_id not in (select cookie_id from shared)
        """,
    )
    assert late == 0
    assert one(con, "select count(*) from persons where is_churned") > 0.1 * PERSONS


# --------------------------------------------------------------------------- arguments


def test_bad_arguments_fail_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="persons"):
        generate_world(tmp_path / "x", 0, 1, end=END)
    with pytest.raises(GeneratorError, match="seed"):
        generate_world(tmp_path / "x", 10, -1, end=END)
    with pytest.raises(GeneratorError, match="days"):
        generate_world(tmp_path / "x", 10, 1, end=END, days=3)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(GeneratorError, match="not a folder"):
        generate_world(a_file, 10, 1, end=END)


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    out = tmp_path / "w"
    generate_world(out, 20, 1, end=END, days=30)
    (out / "landing" / "mine.txt").write_text("user file")
    with pytest.raises(GeneratorError, match="already holds generated data"):
        generate_world(out, 20, 1, end=END, days=30)
    before = file_digests(out)
    report = generate_world(out, 20, 2, end=END, days=30, overwrite=True)
    after = file_digests(out)
    assert (out / "landing" / "mine.txt").read_text() == "user file"
    assert before.keys() == after.keys()
    assert before != after
    assert (
        report.rows["crm"]
        == len((out / "landing/crm/crm_customers.csv").read_text().splitlines()) - 1
    )


@pytest.mark.parametrize("persons", [1, 2, 7])
def test_tiny_worlds_still_write_every_source(tmp_path: Path, persons: int) -> None:
    report = generate_world(tmp_path / "w", persons, 3, end=END, days=30)
    assert set(report.rows) >= {"crm", "shop_accounts", "web_events", "products"}
    loaded = load_config(tmp_path / "w" / "cdp.yml")
    assert len(loaded.config.sources) == 11
    truth = pq.read_table(tmp_path / "w/ground_truth/persons.parquet")
    assert truth.num_rows == persons
