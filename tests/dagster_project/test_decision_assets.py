"""The decision assets under real Dagster and real dbt.

- Attribution (tiny world, fast): a synthetic decision log exported by ``decision_log`` and
  outcomes planted in the lake reach ``decision_delivery_outcomes`` / ``decision_outcomes``
  through the first dbt stage: by decision id, by window (a holdout decision too), and straight
  from the store; an order outside the window is not attributed.
- The batch (sample world, ``cdp run`` once per module): the export holds only consented sends
  and no holdout or capped customer, the counts add up to the customers (those e-mail cannot
  reach are counted but not logged), a second run in the period re-uses the decision ids, and
  the metadata holds no e-mail address.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from dagster_project.defs.dbt.assets import MODELS_OP, build_dbt_assets, dbt_cli_resource
from dagster_project.defs.dbt.translator import dbt_asset_key
from dagster_project.defs.decisions.assets import (
    batch_asset_key,
    build_batch_asset,
    decision_log,
    decision_measurement,
)
from dagster_project.defs.decisions.checks import (
    DECISION_LOG_KEYS,
    DECISION_MEASUREMENT_KEY,
    NOT_WORSE_CHECK_NAME,
)
from dagster_project.defs.publish.assets import SNAPSHOT_KEY
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.dbt_project import decision_log_dir
from dagster_project.lib.decision_batch import export_folder
from dagster_project.lib.settings import PlatformSettings
from decisions import DecisionStore
from decisions.store import default_store_path, read_export
from decisions.types import Decision, DecisionItem, ExperimentArm
from tests.support import dbt_tiny_world as tiny

# -- attribution on the tiny world -----------------------------------------------------------

DECIDED = datetime(2025, 6, 25, 15, 0, tzinfo=UTC)


def _decision(
    customer: str, *, send: bool, holdout: bool = False, products: tuple[str, ...] = ("P1",)
) -> Decision:
    decision_id = f"d_test_{customer}"
    return Decision(
        decision_id=decision_id,
        customer_id=customer,
        channel="email",
        placement="daily_email",
        policy_version="test",
        decided_at=DECIDED,
        expires_at=DECIDED + timedelta(days=1),
        send=send,
        reasons=("holdout",) if holdout else ("theme:coffee",),
        theme=None if holdout else "coffee",
        items=tuple(
            DecisionItem(p, "S1", 1.0, 0.9 if i == 0 else 0.05, i > 0, ("theme:coffee",))
            for i, p in enumerate(products)
        ),
        subject="Hi",
        blocks={},
        subject_masked="Hi",
        blocks_masked={},
        experiment=ExperimentArm("holdout", "holdout", True) if holdout else None,
        is_holdout=holdout,
    )


def _plant(world: tiny.TinyWorld, source: str, rows: list[dict[str, object]]) -> None:
    folder = world.workspace.source_lake(source)
    pq.write_table(
        tiny.lake_table(world.config, source, rows), folder / "part-0000000000000099.parquet"
    )


@pytest.mark.slow
def test_decision_log_to_decision_outcomes_attributes_outcomes(tmp_path: Path) -> None:
    world = tiny.build_tiny_world(tmp_path / "home", extra_customers=20)
    home = world.workspace.home
    (home / "cdp.yml").write_text(yaml.safe_dump(tiny.CONFIG))
    # customers X002, X006, X010 (cus_x002, ...) never ordered in the tiny world
    sent = _decision("cus_x002", send=True, products=("P1", "P2"))
    held = _decision("cus_x006", send=False, holdout=True)
    reported = _decision("cus_x010", send=True)
    with DecisionStore.open(default_store_path(home)) as store:
        for decision in (sent, held, reported):
            store.deliver(
                decision,
                caps=[],
                customer_ids=[decision.customer_id],
                now=DECIDED,
                consent_required=False,
            )
        store.deliver(
            replace(sent, channel="web"),
            caps=[],
            customer_ids=[sent.customer_id],
            now=DECIDED,
            consent_required=False,
        )
        assert store.record_outcome(
            reported.decision_id, "email", "purchase", DECIDED + timedelta(hours=5), 30.0
        )
    at = DECIDED + timedelta(days=2)
    _plant(
        world,
        "orders",
        [
            # cus_x002 buys 2 days after the email: a window conversion
            {
                "record_id": "PL1",
                "order_id": "PL1",
                "account_id": "X002",
                "ordered_at": at,
                "status": "completed",
                "total_amount": 42.0,
                "currency": "USD",
            },
            # and again 9 days after: outside the 7-day window
            {
                "record_id": "PL2",
                "order_id": "PL2",
                "account_id": "X002",
                "ordered_at": DECIDED + timedelta(days=9),
                "status": "completed",
                "total_amount": 99.0,
                "currency": "USD",
            },
            # the holdout customer buys too: counted for the holdout (intention to treat)
            {
                "record_id": "PL3",
                "order_id": "PL3",
                "account_id": "X006",
                "ordered_at": at,
                "status": "completed",
                "total_amount": 17.5,
                "currency": "USD",
            },
        ],
    )
    _plant(
        world,
        "order_lines",
        [
            {
                "record_id": "PL1-1",
                "order_id": "PL1",
                "line_number": 1,
                "product_id": "P2",
                "quantity": 1,
                "unit_price": 42.0,
            }
        ],
    )
    # the sending platform reports an open by decision id (campaign_id), with no address match
    _plant(
        world,
        "email_events",
        [
            {
                "record_id": "PLE1",
                "event_type": "open",
                "occurred_at": DECIDED + timedelta(hours=1),
                "email": "nobody@nowhere.example",
                "campaign_id": sent.decision_id,
            }
        ],
    )

    dbt_defs = build_dbt_assets(world.config)
    [first_stage] = [d for d in dbt_defs if d.op.name == MODELS_OP]
    cdp = CdpResource(home=str(home), config_path=str(home / "cdp.yml"), as_of="2025-06-30")
    result = dg.materialize(
        [decision_log, first_stage],
        resources={"cdp": cdp, "dbt": dbt_cli_resource()},
        raise_on_error=False,
    )
    assert result.success, [e.step_key for e in result.get_step_failure_events()]
    log_rows = {
        e.asset_key: e.materialization.metadata["dagster/row_count"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key in DECISION_LOG_KEYS
    }
    assert log_rows[DECISION_LOG_KEYS[0]] == 4  # deliveries: 3 e-mails and one web

    with duckdb.connect(str(world.workspace.warehouse), read_only=True) as con:
        rows = {
            (r[0], r[1]): r[2:]
            for r in con.execute(
                "select decision_id, channel, arm, is_sent, has_opened, has_converted, revenue, "
                "order_count from decision_delivery_outcomes"
            ).fetchall()
        }
        outcomes = {
            r[0]: r[1:]
            for r in con.execute(
                "select arm, decisions, sends, opens, conversions, revenue from decision_outcomes "
                "where channel = 'email'"
            ).fetchall()
        }
        items = con.execute(
            "select product_id, has_purchased_item, item_revenue from decision_item_outcomes "
            "where decision_id = ? order by position",
            [sent.decision_id],
        ).fetchall()
    assert rows[(sent.decision_id, "email")] == ("personalized", True, True, True, 42.0, 1)
    # the web delivery of the same decision sees the same order by window, once per channel
    assert rows[(sent.decision_id, "web")][3:] == (True, 42.0, 1)
    assert rows[(held.decision_id, "email")] == ("holdout", False, False, True, 17.5, 1)
    assert rows[(reported.decision_id, "email")] == ("personalized", True, False, True, 30.0, 0)
    assert outcomes["personalized"] == (2, 2, 1, 2, 72.0)
    assert outcomes["holdout"] == (1, 0, 0, 1, 17.5)
    assert items == [("P1", False, 0.0), ("P2", True, 42.0)]

    measured = dg.materialize([decision_measurement], resources={"cdp": cdp})
    [event] = [
        e
        for e in measured.get_asset_materialization_events()
        if e.asset_key == DECISION_MEASUREMENT_KEY
    ]
    metadata = event.materialization.metadata
    assert metadata["deliveries"].value == 4
    assert "| daily_email | email | personalized | holdout | converted |" in str(
        metadata["lift_vs_holdout"].value
    )
    assert "no_exploration" in str(metadata["off_policy"].value)
    [check] = measured.get_asset_check_evaluations()
    assert check.check_name == NOT_WORSE_CHECK_NAME and check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN


def _log_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    return {
        e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
        if e.asset_key in DECISION_LOG_KEYS
    }


def test_decision_log_rewrites_only_new_days_and_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cdp = CdpResource(home=str(home), config_path=str(home / "cdp.yml"))
    lake = decision_log_dir(cdp.workspace())

    empty = _log_metadata(dg.materialize([decision_log], resources={"cdp": cdp}))
    assert empty["deliveries"]["dagster/row_count"] == 0  # nothing decided yet: still fine
    assert (empty["deliveries"]["export"], empty["deliveries"]["full_reason"]) == (
        "full",
        "no manifest",
    )
    assert empty["deliveries"]["days"] == "none"

    def deliver(decision: Decision) -> None:
        with DecisionStore.open(default_store_path(home)) as store:
            store.deliver(
                decision,
                caps=[],
                customer_ids=[decision.customer_id],
                now=decision.decided_at,
                consent_required=False,
            )

    deliver(_decision("cus_a", send=True, products=("P1", "P2")))
    deliver(_decision("cus_b", send=True))
    first = _log_metadata(dg.materialize([decision_log], resources={"cdp": cdp}))
    assert first["deliveries"]["export"] == "incremental"
    assert first["deliveries"]["rows_written"] == first["deliveries"]["dagster/row_count"] == 2
    assert first["decision_items"]["dagster/row_count"] == 3
    assert first["deliveries"]["days"] == "2025-06-25"
    assert Path(str(first["deliveries"]["path"])) == lake / "deliveries"

    next_day = DECIDED + timedelta(days=1)
    later = replace(
        _decision("cus_a", send=True),
        decision_id="d_test_cus_a_2",
        decided_at=next_day,
        expires_at=next_day + timedelta(days=1),
    )
    deliver(later)
    second = _log_metadata(dg.materialize([decision_log], resources={"cdp": cdp}))
    deliveries = second["deliveries"]
    assert (deliveries["rows_written"], deliveries["dagster/row_count"]) == (1, 3)
    assert (deliveries["days_rewritten"], deliveries["days"]) == (1, "2025-06-26")
    assert second["outcomes"]["days_rewritten"] == 0
    assert "| deliveries | 1 | 1 | 3 |" in str(deliveries["files"])
    assert sorted(p.name for p in (lake / "deliveries").iterdir()) == [
        "2025-06-25.parquet",
        "2025-06-26.parquet",
    ]


def test_the_decision_assets_sit_where_the_graph_needs_them(tmp_path: Path) -> None:
    config = tiny.CdpConfig.model_validate(tiny.CONFIG)
    dbt_defs = build_dbt_assets(config)
    cdp = CdpResource(home=str(tmp_path), config_path=str(tmp_path / "cdp.yml"))
    batch = build_batch_asset("daily_email")
    defs = dg.Definitions(
        assets=[*dbt_defs, decision_log, decision_measurement, batch],
        resources={"cdp": cdp, "dbt": dbt_cli_resource()},
    )
    graph = defs.resolve_asset_graph()
    stage_of = {key: a.op.name for a in dbt_defs for key in a.keys}
    for key in DECISION_LOG_KEYS:
        table = key.path[-1]
        assert graph.get(dbt_asset_key(f"stg_decisions__{table}")).parent_keys == {key}
    for mart in ("decision_outcomes", "decision_delivery_outcomes", "decision_item_outcomes"):
        assert stage_of[dbt_asset_key(mart)] == MODELS_OP
        assert dbt_asset_key(mart) in graph.get(DECISION_MEASUREMENT_KEY).parent_keys
    assert graph.get(batch_asset_key("daily_email")).parent_keys == {SNAPSHOT_KEY}


# -- the daily batch on the sample world -------------------------------------------------------


@pytest.fixture(scope="module")
def built_home(
    sample_world: Path, world_end: date, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A CDP_HOME on which ``cdp run`` (every asset, the batch included) ran once."""
    from dagster_project.runner import run_pipeline

    home = tmp_path_factory.mktemp("decisions_home")
    shutil.copytree(sample_world / "landing", home / "landing")
    shutil.copy(sample_world / "cdp.yml", home / "cdp.yml")
    outcome = run_pipeline(PlatformSettings(home=home, as_of=world_end))
    assert outcome.success, outcome.failures
    yield home


def _batch_metadata(instance_home: Path) -> dict[str, object]:
    with dg.DagsterInstance.from_config(str(instance_home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(batch_asset_key("daily_email"))
        assert event is not None and event.asset_materialization is not None
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@pytest.mark.slow
def test_the_batch_exports_only_consented_sends_and_is_idempotent(
    built_home: Path, world_end: date
) -> None:
    import sqlite3

    from dagster_project.lib.snapshot_probe import open_current

    metadata = _batch_metadata(built_home)
    export = Path(str(metadata["path"]))
    assert export.parent == export_folder(built_home, "daily_email")
    assert export.name == f"{world_end.isoformat()}.parquet"  # the period starts on that day
    assert export.with_suffix(".csv").exists()
    assert oct(export.stat().st_mode & 0o777) == "0o600"
    rows = pq.read_table(export).to_pylist()
    assert rows and len(rows) == metadata["dagster/row_count"]

    with open_current(built_home / "serving") as snapshot:
        customers = dict(
            snapshot.con.execute("select customer_id, has_email_consent from customers")
        )
        addresses = dict(snapshot.con.execute("select customer_id, email from customers"))
    counts = metadata["outcome_counts"]
    assert isinstance(counts, dict)
    assert sum(counts.values()) == metadata["customers"] == len(customers)
    assert counts["sent"] == len(rows)  # every send has an address: none left out
    assert metadata["sent_without_address"] == 0

    store = sqlite3.connect(default_store_path(built_home))
    # Customers e-mail cannot reach (no address, consent missing or denied) are refused before
    # ranking and NOT logged: an item-less choice stored for them would be what the site shows
    # later in the period. So the counts still add up to every customer, but the log holds an
    # e-mail delivery only for the others.
    refused = {
        reason: n for reason, n in counts.items() if reason.startswith(("no_address:", "consent:"))
    }
    assert refused and metadata["refused_unlogged"] == sum(refused.values())
    assert counts.get("no_address:email", 0) == sum(1 for a in addresses.values() if not a)
    logged = dict(
        store.execute(
            "select customer_id, count(*) from deliveries where channel = 'email' "
            "group by customer_id"
        )
    )
    assert len(logged) == len(customers) - metadata["refused_unlogged"]
    assert not any(customers[c] != 1 or not addresses[c] for c in logged)
    deliveries = {
        decision_id: (bool(is_sent), reasons)
        for decision_id, is_sent, reasons in store.execute(
            "select decision_id, is_sent, reasons from deliveries where channel = 'email'"
        )
    }
    holdout = {
        cid for (cid,) in store.execute("select customer_id from choices where is_holdout = 1")
    }
    for row in rows:
        assert customers[row["customer_id"]] == 1, row["customer_id"]  # consent recorded
        is_sent, reasons = deliveries[row["decision_id"]]
        assert is_sent and "cap:" not in reasons and "holdout" not in reasons
        assert row["customer_id"] not in holdout
        assert row["email"] and "@" in row["email"]
        assert row["product_ids"]
    # not one address (nor an unmasked subject) in the metadata
    sample = str(metadata["sample"])
    assert "customer_id" not in sample and "decision_id" not in sample  # no such columns
    assert not any(row["email"] in sample for row in rows)
    assert not any(row["customer_id"] in sample or row["decision_id"] in sample for row in rows)

    # a second run in the same period: the same decisions, nothing counted twice
    before = store.execute("select count(*), sum(is_sent) from deliveries").fetchone()
    cdp = CdpResource(
        home=str(built_home),
        config_path=str(built_home / "cdp.yml"),
        as_of=world_end.isoformat(),
    )
    again = dg.materialize([build_batch_asset("daily_email")], resources={"cdp": cdp})
    assert again.success
    assert store.execute("select count(*), sum(is_sent) from deliveries").fetchone() == before
    rerun = pq.read_table(export).to_pylist()
    assert [r["decision_id"] for r in rerun] == [r["decision_id"] for r in rows]
    store.close()


def test_the_whole_graph_holds_the_decision_assets(settings: PlatformSettings) -> None:
    from dagster_project.definitions import build_definitions

    defs = build_definitions(settings)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert {*DECISION_LOG_KEYS, DECISION_MEASUREMENT_KEY, batch_asset_key("daily_email")} <= keys


@pytest.mark.slow
def test_cdp_decide_answers_what_the_batch_decided_on_every_channel(
    built_home: Path, world_end: date, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from dagster_project.cli.main import app

    monkeypatch.setenv("CDP_HOME", str(built_home))
    [row, *_] = pq.read_table(
        export_folder(built_home, "daily_email") / f"{world_end.isoformat()}.parquet"
    ).to_pylist()
    runner = CliRunner()
    args = ["decide", "--customer-id", row["customer_id"], "--as-of", world_end.isoformat()]
    web = runner.invoke(app, [*args, "--channel", "web", "--json"])
    assert web.exit_code == 0, web.output
    decision = json.loads(web.stdout)
    assert decision["decision_id"] == row["decision_id"]  # the site shows what the email said
    assert [item["product_id"] for item in decision["items"]] == row["product_ids"]
    assert decision["channel"] == "web" and decision["send"] is True
    shown = runner.invoke(app, args)  # the e-mail's own delivery, as a table
    assert shown.exit_code == 0, shown.output
    assert row["decision_id"] in shown.stdout and "send" in shown.stdout
    unknown = runner.invoke(app, ["decide", "--customer-id", "cus_nobody"])
    assert unknown.exit_code == 1
    both = runner.invoke(app, ["decide"])
    assert both.exit_code == 2

    export = ["decisions", "export", "--out", str(built_home / "x")]
    exported = runner.invoke(app, export)
    assert exported.exit_code == 0, exported.output
    assert "full export (no manifest)" in exported.output
    assert read_export(built_home / "x", "deliveries").num_rows >= 2
    again = runner.invoke(app, export)
    assert again.exit_code == 0 and "incremental export" in again.output, again.output
    forced = runner.invoke(app, [*export, "--full"])
    assert forced.exit_code == 0 and "full export (asked)" in forced.output, forced.output
