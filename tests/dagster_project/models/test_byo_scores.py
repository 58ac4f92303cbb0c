"""Bring your own data: people that are bare account ids plus orders, nothing else.

No products, no order lines, no web or email events: the whole graph must still run and give
every customer who ordered a purchase probability, a churn risk and a predicted CLV, null for
customers without orders, served over HTTP by a real ``cdp serve``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml

from dagster_project.lib.models import MODEL_NAMES
from dagster_project.lib.settings import PlatformSettings
from dagster_project.runner import RunOutcome, run_pipeline
from tests.support.api_harness import make_keys, start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

QUERY = """query($v: String!) { customer(lookup: {type: "account_id", value: $v}) {
  customerId traits { orderCount purchaseProbability churnRisk predictedClv } } }"""


def accounts_and_orders_config(sample: Path) -> dict:
    """The sample world's cdp.yml cut down to account ids (people) and orders."""
    config = yaml.safe_load((sample / "cdp.yml").read_text(encoding="utf-8"))
    sources = {source["name"]: source for source in config["sources"]}
    accounts = sources["shop_accounts"]
    people = {key: accounts[key] for key in ("name", "kind", "format", "path", "record_key")} | {
        "identifiers": {"account_id": accounts["identifiers"]["account_id"]}
    }
    return {"version": 1, "landing": "landing", "sources": [people, sources["orders"]]}


@pytest.fixture(scope="module")
def shop(
    sample_world: Path, world_end: date, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, RunOutcome]]:
    """A CDP_HOME with the accounts-and-orders cdp.yml, after one full `cdp run`."""
    home = tmp_path_factory.mktemp("byo_models")
    config = accounts_and_orders_config(sample_world)
    for source in config["sources"]:
        folder = Path(source["path"]).parent
        if not (home / "landing" / folder).exists():
            shutil.copytree(sample_world / "landing" / folder, home / "landing" / folder)
    (home / "cdp.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    yield home, run_pipeline(PlatformSettings(home=home, as_of=world_end))


def test_every_customer_who_ordered_gets_all_three_scores(
    shop: tuple[Path, RunOutcome],
) -> None:
    home, outcome = shop
    assert outcome.success, outcome.failures
    steps = {s.name: s for s in outcome.steps}
    assert any("customer_scores" in name for name in steps), sorted(steps)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.sql(
            "select order_count, purchase_probability, churn_risk, predicted_clv "
            "from customer_traits"
        ).df()
    buyers = rows.loc[rows["order_count"] > 0]
    assert len(buyers) > 50
    assert buyers[list(MODEL_NAMES)].notna().all().all()
    assert buyers["purchase_probability"].between(0, 1).all()
    assert buyers["churn_risk"].between(0, 1).all()
    assert (buyers["predicted_clv"] >= 0).all()
    # not a constant: the scores rank customers
    assert buyers["purchase_probability"].nunique() > 10
    others = rows.loc[rows["order_count"] == 0]
    assert others[list(MODEL_NAMES)].isna().all().all()


def test_scores_are_served_over_http(shop: tuple[Path, RunOutcome], tmp_path: Path) -> None:
    home, _ = shop
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        account, purchase, churn, clv = connection.execute(
            """
            select i.identifier_value, t.purchase_probability, t.churn_risk, t.predicted_clv
            from customer_traits as t
            join customer_identifiers as i using (customer_id)
            where i.identifier_type = 'account_id' and t.order_count > 1
            order by t.purchase_probability desc, i.identifier_value
            limit 1
            """
        ).fetchone()
    keys = make_keys(home)
    server = start_server(home, tmp_path)
    try:
        response = httpx.post(
            server.url + "/graphql",
            json={"query": QUERY, "variables": {"v": account}},
            headers={"Authorization": f"Bearer {keys['profile']}"},
            timeout=30,
        )
    finally:
        stop_server(server)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    traits = body["data"]["customer"]["traits"]
    assert traits["purchaseProbability"] == pytest.approx(purchase)
    assert traits["churnRisk"] == pytest.approx(churn)
    assert traits["predictedClv"] == pytest.approx(clv)
