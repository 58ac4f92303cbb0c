"""A constructed warehouse holding exactly the marts the recommenders read.

Tables and columns as dbt builds them (customers, customer_events, int_orders_resolved,
int_order_lines_priced, products), written into a real DuckDB file. Time is relative to AS_OF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

AS_OF = date(2026, 10, 31)
NOON = datetime(2026, 10, 31, 12, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    """A time ``days`` before noon of the as-of day."""
    return NOON - timedelta(days=days)


@dataclass
class World:
    """Rows of the constructed warehouse; ``write`` puts them into DuckDB."""

    products: list[tuple[str, str, str | None, str | None, float | None]] = field(
        default_factory=list
    )
    customers: list[str] = field(default_factory=list)
    events: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    orders: list[tuple[str, str, str, datetime]] = field(default_factory=list)  # order, cust, prod

    def product(self, product_id: str, category: str, brand: str, price: float | None) -> None:
        self.products.append((product_id, f"{category} {product_id}", category, brand, price))

    def view(self, customer_id: str, product_id: str, at: datetime, kind: str = "product_view"):
        self.events.append((customer_id, product_id, kind, at))

    def buy(self, customer_id: str, product_id: str, at: datetime) -> None:
        self.orders.append((f"o{len(self.orders)}", customer_id, product_id, at))

    def write(self, path: Path) -> Path:
        """Create the warehouse at ``path`` (replacing it)."""
        path.unlink(missing_ok=True)
        customers = sorted(
            set(self.customers) | {e[0] for e in self.events} | {o[1] for o in self.orders}
        )
        products = pd.DataFrame(
            self.products, columns=["product_id", "product_name", "category", "brand", "price"]
        )
        products["is_in_range"] = products["price"].fillna(0) > 0
        events = pd.DataFrame(
            [(f"e{i}", c, at, "web", kind, p) for i, (c, p, kind, at) in enumerate(self.events)],
            columns=[
                "event_id",
                "customer_id",
                "occurred_at",
                "channel",
                "event_type",
                "product_id",
            ],
        )
        orders = pd.DataFrame(
            [(o, c) for o, c, _, _ in self.orders], columns=["order_id", "customer_id"]
        )
        lines = pd.DataFrame(
            [(o, p, at, "completed") for o, _, p, at in self.orders],
            columns=["order_id", "product_id", "ordered_at", "status"],
        )
        with duckdb.connect(str(path)) as con:
            con.execute("set TimeZone = 'UTC'")
            con.execute("create table customers (customer_id varchar)")
            con.executemany("insert into customers values (?)", [[c] for c in customers])
            con.execute(
                "create table products (product_id varchar, product_name varchar, "
                "category varchar, brand varchar, price double, is_in_range boolean)"
            )
            if len(products):
                con.register("product_rows", products)
                con.execute("insert into products select * from product_rows")
            con.execute(
                "create table customer_events (event_id varchar, customer_id varchar, "
                "occurred_at timestamptz, channel varchar, event_type varchar, product_id varchar)"
            )
            if len(events):
                con.execute("insert into customer_events select * from events")
            con.execute("create table int_orders_resolved (order_id varchar, customer_id varchar)")
            if len(orders):
                con.execute("insert into int_orders_resolved select * from orders")
            con.execute(
                "create table int_order_lines_priced (order_id varchar, product_id varchar, "
                "ordered_at timestamptz, status varchar)"
            )
            if len(lines):
                con.execute("insert into int_order_lines_priced select * from lines")
        return path


def shop(customers: int = 60) -> World:
    """A shop with clear tastes: electronics fans (durable) and coffee drinkers (consumable).

    Products: TVs t0..t9 (Electronics), coffee c0..c9 (Grocery), shirts s0..s9 (Apparel), and
    x0, an Electronics product without a price (out of range) that everyone views.
    """
    world = World()
    for i in range(10):
        world.product(f"t{i}", "Electronics", "Vision", 500.0 + i)
        world.product(f"c{i}", "Grocery", "Bean Co", 9.0 + i)
        world.product(f"s{i}", "Apparel", "Thread", 20.0 + i)
    world.product("x0", "Electronics", "Vision", None)
    for n in range(customers):
        customer = f"cust{n:03d}"
        kind = n % 3
        for k in range(6):
            if kind == 0:
                world.view(customer, f"t{(n + k) % 10}", days_ago(5 + k))
            elif kind == 1:
                world.view(customer, f"c{(n + k) % 10}", days_ago(5 + k))
            else:
                world.view(customer, f"s{(n + k) % 10}", days_ago(5 + k))
        world.view(customer, "x0", days_ago(3))
        if kind == 1:
            world.buy(customer, f"c{n % 10}", days_ago(40))
            world.buy(customer, f"c{n % 10}", days_ago(8))
        if kind == 0 and n % 2 == 0:
            world.buy(customer, f"t{n % 10}", days_ago(60))
    return world
