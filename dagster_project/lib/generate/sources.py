"""Writing each source as delivered: CSV and JSON Lines through DuckDB's COPY.

Arrays become an Arrow table, DuckDB formats ids, timestamps and amounts in SQL and writes the
file in parallel while keeping row order, so the output is byte-identical run to run.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from dagster_project.lib.generate import vocab
from dagster_project.lib.generate.behaviour import (
    ORDER_CHANNELS,
    ORDER_STATUSES,
    PRODUCT_VIEW,
    SEARCH,
    WEB_EVENT_TYPES,
    Cookies,
    EmailResult,
    OrderTables,
    WebBatch,
    page_vocabulary,
    search_vocabulary,
)
from dagster_project.lib.generate.catalog import Catalog, category_names
from dagster_project.lib.generate.common import Window, dictionary, strings, take
from dagster_project.lib.generate.sales import Sales
from dagster_project.lib.generate.shopping import CLICK, EMAIL_EVENT_TYPES

#: Paths of each source below the landing folder.
PATHS: dict[str, str] = {
    "crm": "crm/crm_customers.csv",
    "shop_accounts": "shop/accounts.jsonl",
    "web_events": "web/events-{month}.jsonl",
    "orders": "orders/orders.csv",
    "order_lines": "orders/order_lines.csv",
    "email_events": "email/email_events.jsonl",
    "products": "catalog/products.csv",
    "price_changes": "catalog/price_changes.jsonl",
    "offers": "offers/sales-{month}.csv",
}

_ISO = "'%Y-%m-%dT%H:%M:%SZ'"


def iso(column: str) -> str:
    """SQL turning epoch seconds into ISO 8601 UTC text with a Z."""
    return f"strftime(make_timestamp({column} * 1000000), {_ISO})"


def money(column: str) -> str:
    """SQL turning integer cents into an exact two-decimal amount."""
    return f"({column}::DECIMAL(18, 0) / 100)::DECIMAL(18, 2)"


def fragments(key: str, values: Sequence[str] | pa.Array) -> pa.Array:
    """``,"key":"value"`` per vocabulary entry, escaped by ``json.dumps``.

    Event lines are concatenations of such fragments: DuckDB's JSON writer spells out every
    null, while trackers leave absent fields out, and at a million persons formatting
    each value per row costs more than the rest of the generator. A null entry of a
    dictionary column drops its key from the line (``concat`` skips nulls).
    """
    items = values.to_pylist() if isinstance(values, pa.Array) else list(values)
    return strings([f",{json.dumps(key)}:{json.dumps(value)}" for value in items])


def line_sql(*parts: str) -> str:
    """SQL concatenating parts into ``{...}``: the first part must start with ``"key":``."""
    return "concat('{', " + ", ".join(parts) + ", '}')"


class SourceWriter:
    """Writes tables below ``landing`` on a background thread, so numpy and DuckDB overlap.

    DuckDB releases the GIL while it formats and writes; the next month's events are drawn in
    the meantime. Jobs run one at a time in submission order on one connection; at most
    ``max_pending`` tables wait in memory.
    """

    def __init__(self, landing: Path, con: duckdb.DuckDBPyConnection, max_pending: int = 2) -> None:
        self.landing = landing
        self.con = con
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdp-generate-writer")
        self._pending: deque[Future[None]] = deque()

    def path(self, source: str, **fmt: str) -> Path:
        """Where a source's file goes; folders are created."""
        target = self.landing / PATHS[source].format(**fmt)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def copy(self, table: pa.Table, select: str, target: Path) -> int:
        """Write ``select`` over ``table`` (as ``src``) to ``target``; returns rows written."""
        fmt = "(FORMAT csv, HEADER true)" if target.suffix == ".csv" else "(FORMAT json)"
        self._submit(table, f"COPY (SELECT {select} FROM src) TO '{_quote(target)}' {fmt}")
        return table.num_rows

    def copy_lines(self, table: pa.Table, line: str, target: Path) -> int:
        """Write one ready-made text line per row (see :func:`line_sql`) to ``target``."""
        # Lines never contain a tab or a raw newline (JSON escapes them), so the CSV writer
        # with no quoting writes them verbatim.
        options = "(FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\t')"
        self._submit(
            table, f"COPY (SELECT {line} AS line FROM src) TO '{_quote(target)}' {options}"
        )
        return table.num_rows

    def _submit(self, table: pa.Table, sql: str) -> None:
        while len(self._pending) >= self.max_pending:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._run, _batched(table), sql))

    def _run(self, table: pa.Table, sql: str) -> None:
        self.con.register("src", table)
        try:
            self.con.execute(sql)
        finally:
            self.con.unregister("src")

    def flush(self) -> None:
        """Wait until every submitted file is written; re-raises a failed write."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """Wait for running writes (their errors were or will be raised by flush) and stop."""
        for future in self._pending:
            future.exception()
        self._pending.clear()
        self._pool.shutdown(wait=True)


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def write_products(w: SourceWriter, catalog: Catalog) -> int:
    """``catalog/products.csv`` with today's prices."""
    table = pa.table(
        {
            "product_id": catalog.product_id,
            "name": catalog.name,
            "category": take(category_names(), catalog.category),
            "brand": take(strings(vocab.BRANDS), catalog.brand),
            "cents": catalog.current_price_cents,
        }
    )
    select = f"product_id, name, category, brand, {money('cents')} AS price"
    return w.copy(table, select, w.path("products"))


def write_price_changes(w: SourceWriter, catalog: Catalog) -> int:
    """``catalog/price_changes.jsonl`` in time order, the listing price first."""
    order = np.lexsort((catalog.change_product, catalog.change_at))
    table = pa.table(
        {
            "seq": np.arange(1, len(order) + 1),
            "product_id": take(catalog.product_id, catalog.change_product[order]),
            "cents": catalog.change_cents[order],
            "ts": catalog.change_at[order],
        }
    )
    select = (
        f"printf('pch-%07d', seq) AS event_id, product_id, {money('cents')} AS price, "
        f"{iso('ts')} AS changed_at"
    )
    return w.copy(table, select, w.path("price_changes"))


def write_crm(w: SourceWriter, table: pa.Table) -> int:
    """``crm/crm_customers.csv`` as built (all text)."""
    return w.copy(table, "*", w.path("crm"))


def write_accounts(w: SourceWriter, table: pa.Table) -> int:
    """``shop/accounts.jsonl``; ``created_at`` as ISO text."""
    cols = [c for c in table.column_names if c != "created_at"]
    epoch = table.column("created_at").cast(pa.int64())
    plain = table.drop_columns(["created_at"]).append_column("created_epoch", epoch)
    select = ", ".join(cols) + f", {iso('created_epoch')} AS created_at"
    return w.copy(plain, select, w.path("shop_accounts"))


def write_email(w: SourceWriter, email: EmailResult) -> int:
    """``email/email_events.jsonl`` in time order."""
    table = pa.table(
        {
            "seq": np.arange(1, len(email.occurred_at) + 1),
            "event_type": dictionary(fragments("event_type", EMAIL_EVENT_TYPES), email.event_type),
            "campaign": dictionary(fragments("campaign_id", email.campaign_ids), email.campaign),
            "email": take(email.addresses, email.address),
            "ts": email.occurred_at,
            "link": dictionary(
                fragments("link_url", email.link_urls()),
                np.where(email.event_type == CLICK, email.campaign, -1),
            ),
        }
    )
    line = line_sql(
        """'"event_id":"eev-', lpad(seq::VARCHAR, 10, '0'), '"'""",
        "event_type",
        "campaign",
        """',"email":', to_json(email)""",
        f"""',"occurred_at":"', {iso("ts")}, '"'""",
        "link",
    )
    return w.copy_lines(table, line, w.path("email_events"))


class WebWriter:
    """Writes ``web/events-YYYY-MM.jsonl`` one month at a time, numbering events globally."""

    def __init__(
        self,
        w: SourceWriter,
        cookies: Cookies,
        catalog: Catalog,
        accounts: pa.Array,
        email: EmailResult,
    ) -> None:
        self.w = w
        self.cookies = cookies
        self.accounts = accounts
        self.event_types = fragments("event_type", WEB_EVENT_TYPES)
        self.products = fragments("product_id", catalog.product_id)
        queries = search_vocabulary()[0]
        self.queries = fragments("search_query", queries)
        # URL of each event: a product page, a search, or a plain page.
        paths = (
            [f"/p/{p}" for p in catalog.product_id.to_pylist()]
            + [f"/search?q={q.replace(' ', '+')}" for q in queries.to_pylist()]
            + page_vocabulary(email.campaign_ids).to_pylist()
        )
        self.urls = fragments("url", [vocab.SHOP_URL + path for path in paths])
        self.query_base = catalog.size
        self.page_base = catalog.size + len(queries)
        self.agents = fragments("user_agent", [ua for _, ua, _ in vocab.USER_AGENTS])
        k = len(email.campaign_ids)
        utm = zip(
            [c[0] for c in vocab.UTM_CHANNELS] + ["email"] * k,
            [c[1] for c in vocab.UTM_CHANNELS] + ["email"] * k,
            [c[2] for c in vocab.UTM_CHANNELS] + email.campaign_ids.to_pylist(),
            strict=True,
        )
        self.utm = strings(
            [
                f',"utm_source":{json.dumps(a)},"utm_medium":{json.dumps(b)},'
                f'"utm_campaign":{json.dumps(c)}'
                for a, b, c in utm
            ]
        )
        self.next_event = 1
        self.used_cookies = np.zeros(len(cookies.owner), dtype=bool)

    def write(self, batch: WebBatch) -> tuple[Path, int]:
        """Write one month; returns the file and its row count."""
        n = len(batch.occurred_at)
        self.used_cookies[batch.cookie] = True
        etype = batch.event_type
        url = np.where(
            etype == PRODUCT_VIEW,
            batch.product,
            np.where(etype == SEARCH, self.query_base + batch.query, self.page_base + batch.page),
        )
        # The device's user agent comes with the first event of each session.
        agent = np.where(batch.session_start == 1, self.cookies.user_agent[batch.cookie], -1)
        table = pa.table(
            {
                "seq": self.next_event + np.arange(n),
                "cookie_id": take(self.cookies.cookie_id, batch.cookie),
                "event_type": dictionary(self.event_types, etype),
                "ts": batch.occurred_at,
                "account_id": take(self.accounts, batch.account),
                "product": dictionary(self.products, batch.product),
                "query": dictionary(self.queries, batch.query),
                "order_no": pa.array(batch.order, mask=batch.order < 0),
                "url": dictionary(self.urls, url),
                "agent": dictionary(self.agents, agent),
                "utm": dictionary(self.utm, batch.utm),
            }
        )
        self.next_event += n
        line = line_sql(
            """'"event_id":"wev-', lpad(seq::VARCHAR, 10, '0'), '"'""",
            """',"cookie_id":"', cookie_id, '"'""",
            "event_type",
            f"""',"occurred_at":"', {iso("ts")}, '"'""",
            """',"account_id":"' || account_id || '"'""",
            "product",
            "query",
            """',"order_id":"O' || lpad(order_no::VARCHAR, 9, '0') || '"'""",
            "url",
            "agent",
            "utm",
        )
        target = self.w.path("web_events", month=batch.label)
        return target, self.w.copy_lines(table, line, target)


def _batched(table: pa.Table, rows: int = 100_000) -> pa.Table:
    """Split into record batches so DuckDB scans the table with all its threads."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=rows), schema=table.schema)


def write_orders(w: SourceWriter, orders: OrderTables, accounts: pa.Array) -> int:
    """``orders/orders.csv``."""
    table = pa.table(
        {
            "order_no": orders.order_number,
            "account_id": take(accounts, orders.account),
            "ts": orders.ordered_at,
            "status": dictionary(strings(ORDER_STATUSES), orders.status),
            "channel": dictionary(strings(ORDER_CHANNELS), orders.channel),
            "cents": orders.total_cents,
        }
    )
    select = (
        f"printf('O%09d', order_no) AS order_id, account_id, {iso('ts')} AS ordered_at, "
        f"status, channel, 'USD' AS currency, {money('cents')} AS total"
    )
    return w.copy(table, select, w.path("orders"))


def write_order_lines(w: SourceWriter, orders: OrderTables, catalog: Catalog) -> int:
    """``orders/order_lines.csv``."""
    table = pa.table(
        {
            "order_no": orders.line_order_number,
            "line_number": orders.line_number,
            "product_id": take(catalog.product_id, orders.line_product),
            "quantity": orders.line_quantity,
            "cents": orders.line_cents,
        }
    )
    select = (
        f"printf('O%09d', order_no) AS order_id, line_number, product_id, quantity, "
        f"{money('cents')} AS unit_price"
    )
    return w.copy(table, select, w.path("order_lines"))


def write_offers(
    w: SourceWriter, sales: Sales, catalog: Catalog, window: Window
) -> list[tuple[Path, int]]:
    """``offers/sales-YYYY-MM.csv``: one row per product a sale covers, by the month it starts."""
    n = len(sales)
    counts = np.diff(sales.offsets)
    sale = np.repeat(np.arange(n), counts)
    start = sales.start[sale]
    table = pa.table(
        {
            "sale_id": take(sales.sale_id, sale),
            "product_id": take(catalog.product_id, sales.offer_product),
            "title": take(sales.title, sale),
            "theme": take(strings([t[0] for t in vocab.SALE_THEMES]), sales.theme[sale]),
            "brand": take(strings(vocab.BRANDS), sales.brand[sale]),
            "category": take(category_names(), sales.category[sale]),
            "start_ts": start,
            "end_ts": sales.end[sale],
            "percent": np.round(sales.discount[sale] * 100).astype(np.int64),
            "regular_cents": sales.offer_regular_cents,
            "sale_cents": sales.offer_sale_cents,
        }
    )
    select = (
        "sale_id || '-' || product_id AS offer_id, sale_id, title, theme, brand, category, "
        f"product_id, {iso('start_ts')} AS starts_at, {iso('end_ts')} AS ends_at, "
        f"percent AS discount_percent, {money('regular_cents')} AS regular_price, "
        f"{money('sale_cents')} AS sale_price"
    )
    written = []
    cuts = np.searchsorted(sales.start, [m[0] for m in window.months()] + [window.end])
    for i, (_, _, label) in enumerate(window.months()):
        rows = slice(int(sales.offsets[cuts[i]]), int(sales.offsets[cuts[i + 1]]))
        part = table.slice(rows.start, rows.stop - rows.start)
        target = w.path("offers", month=label)
        written.append((target, w.copy(part, select, target)))
    return written
