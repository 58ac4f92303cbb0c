"""A transactions-only shop as a new user describes it: people who are nothing but account ids,
plus orders and their lines (no names, products, web or email events, CRM). Identity cannot
train its model on such records; the whole graph must still run, say why there is no model, and
serve customers whose traits show their orders."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from fastapi.testclient import TestClient

from api.main import create_app
from dagster_project.defs import RUN_NOTE_KEY
from dagster_project.lib.settings import PlatformSettings
from dagster_project.runner import RunOutcome, run_pipeline
from identity import MODEL_FILE, MODEL_SKIPPED, read_stats
from snapshots import read_current
from tests.support.api_harness import Api, api_settings, make_keys

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

LOOKUP = """query($v: String!) { customer(lookup: {type: "account_id", value: $v}) {
  customerId traits { orderCount lifetimeRevenue lastOrderAt }
  identity { records { source recordId } } } }"""


def identifiers_only_config(sample: Path) -> dict:
    """The sample world's cdp.yml cut down to account ids (people) and the orders sources."""
    config = yaml.safe_load((sample / "cdp.yml").read_text(encoding="utf-8"))
    sources = {source["name"]: source for source in config["sources"]}
    accounts = sources["shop_accounts"]
    people = {key: accounts[key] for key in ("name", "kind", "format", "path", "record_key")} | {
        "identifiers": {"account_id": accounts["identifiers"]["account_id"]}
    }
    return {
        "version": 1,
        "landing": "landing",
        "defaults": config["defaults"],
        "sources": [people, sources["orders"], sources["order_lines"]],
    }


@pytest.fixture(scope="module")
def shop(
    sample_world: Path, world_end: date, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, RunOutcome]]:
    """A CDP_HOME with the identifiers-only cdp.yml, after one full `cdp run`."""
    home = tmp_path_factory.mktemp("identifiers_only")
    config = identifiers_only_config(sample_world)
    for source in config["sources"]:  # only the files the sources name
        folder = Path(source["path"]).parent
        if not (home / "landing" / folder).exists():
            shutil.copytree(sample_world / "landing" / folder, home / "landing" / folder)
    (home / "cdp.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    yield home, run_pipeline(PlatformSettings(home=home, as_of=world_end))


def test_the_whole_graph_runs_and_says_the_model_was_skipped(
    shop: tuple[Path, RunOutcome],
) -> None:
    home, outcome = shop
    assert outcome.success, outcome.failures
    blocking = [s for s in outcome.steps if s.kind == "check" and not (s.ok or s.is_warning)]
    assert not blocking, blocking
    assert read_current(home / "serving") is not None  # the snapshot is published

    stats = read_stats(home / "lake" / "identity")
    assert stats["model"]["status"] == MODEL_SKIPPED
    assert stats["model"]["model_ready_records"] == 0
    assert f"only 0 of {stats['records']:,} records" in stats["model"]["skipped"]
    assert not (home / "lake" / "identity" / MODEL_FILE).exists()

    [note] = outcome.notes  # the one line `cdp run` prints after its summary
    assert note.startswith("identity: model skipped: only 0 of")
    assert "deterministic links alone" in note

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["identity", "identity_map"]))
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    assert metadata["model_status"].value == MODEL_SKIPPED
    assert metadata["model"].value.startswith("**Model skipped.** only 0 of")
    assert "map names, emails, phones" in metadata["model"].value
    assert metadata[RUN_NOTE_KEY].value == note


def test_a_customer_found_by_account_id_shows_its_orders(
    shop: tuple[Path, RunOutcome], world_end: date, tmp_path: Path
) -> None:
    home, _ = shop
    orders = home / "landing" / "orders" / "orders.csv"
    with duckdb.connect() as con:
        account, placed, revenue = con.execute(
            """
            select account_id, count(*),
                   -- lifetime revenue: placed orders less those refunded in full
                   coalesce(sum(cast(total as decimal(18, 2)))
                            filter (where status not in ('returned', 'refunded')), 0)
            from read_csv(?, all_varchar = true)
            where status not in ('cancelled', 'canceled')
              and cast(ordered_at as timestamptz) < cast(? as date) + interval 1 day
            group by account_id
            order by count(*) desc, account_id
            limit 1
            """,
            [str(orders), world_end.isoformat()],
        ).fetchone()
    assert placed >= 2

    keys = make_keys(home)  # before the app starts: it reads the keys file once
    with TestClient(create_app(api_settings(home, tmp_path))) as client:
        body = Api(client, keys).gql(LOOKUP, {"v": account})
    assert "errors" not in body, body
    customer = body["data"]["customer"]
    assert customer is not None, account
    assert customer["traits"]["orderCount"] == placed
    assert customer["traits"]["lifetimeRevenue"] == pytest.approx(float(revenue))
    assert customer["identity"]["records"] == [{"source": "shop_accounts", "recordId": account}]
