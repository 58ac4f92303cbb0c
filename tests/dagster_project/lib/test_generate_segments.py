"""A generated world has real signal: every shipped segment has members after `cdp run`.

Issue 12 found the 10,000-person demo world too sparse (no frequent buyers, three browsers, three
quarters of customers at risk). After calibration a 2,000-person world fills every segment
defined in ``dbt/models/segments/*.sql``, and none swallows most of the buyers.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date

import duckdb
import pytest

from dagster_project.lib.dbt_project import DBT_PROJECT_DIR
from dagster_project.lib.generate import generate_world
from dagster_project.lib.settings import PlatformSettings
from dagster_project.runner import run_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

END = date(2026, 10, 31)
SHIPPED = sorted(p.stem for p in (DBT_PROJECT_DIR / "models" / "segments").glob("*.sql"))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    root = tmp_path_factory.mktemp("signal")
    generate_world(root / "world", 2000, 42, end=END)
    home = root / "home"
    home.mkdir()
    shutil.copytree(root / "world" / "landing", home / "landing")
    shutil.copy(root / "world" / "cdp.yml", home / "cdp.yml")
    outcome = run_pipeline(PlatformSettings(home=home, as_of=END))
    assert outcome.success, outcome.failures
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    yield con
    con.close()


def test_every_shipped_segment_has_members(warehouse: duckdb.DuckDBPyConnection) -> None:
    assert {"frequent_buyers", "browsers", "at_risk", "cart_abandoners"} <= set(SHIPPED)
    sizes = dict(
        warehouse.execute(
            "select segment, count(distinct customer_id) from customer_segments group by 1"
        ).fetchall()
    )
    empty = [s for s in SHIPPED if sizes.get(s, 0) == 0]
    assert not empty, sizes


def test_buyers_are_not_mostly_at_risk_and_orders_are_plentiful(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    buyers, at_risk, orders = warehouse.execute(
        """
        select count(*), count(*) filter (where s.customer_id is not null), sum(t.order_count)
        from customer_traits t
        left join (select customer_id from customer_segments where segment = 'at_risk') s
          using (customer_id)
        where t.order_count > 0
        """
    ).fetchone()
    assert at_risk < 0.5 * buyers
    # ~4,000 orders for 2,000 persons over two years (the old world had 0.42 per person).
    assert orders > 1.2 * 2000
