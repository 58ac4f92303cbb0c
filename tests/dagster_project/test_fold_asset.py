"""``realtime_events_fold`` runs before the ingest of its two sources, in one real run.

Real event log, real ``dagster.materialize`` of the fold and the ingest assets, real Parquet.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dagster_project.definitions import build_definitions
from dagster_project.defs.events.assets import (
    FOLD_ASSET_KEY,
    REALTIME_GROUP,
    realtime_events_fold,
)
from dagster_project.defs.events.checks import offsets_accounted_for
from dagster_project.defs.ingest.assets import build_ingest_assets, lake_asset_key
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import load_config
from dagster_project.lib.generate.config_writer import sample_config
from dagster_project.lib.ingest import read_lake
from dagster_project.lib.settings import PlatformSettings
from dagster_project.lib.workspace import Workspace
from decisions.templates import render
from events.config import load_realtime
from events.fold import file_name
from events.log import SqliteEventLog
from events.types import EventKind, NewEvent, ProductLine

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FOLDED = ("realtime_events", "realtime_price_changes")


def _event(n: int, kind: EventKind, product: ProductLine) -> NewEvent:
    return NewEvent(
        message_id=f"m-{n}",
        source="web",
        type="track",
        kind=kind,
        event=None,
        occurred_at=AT + timedelta(seconds=n),
        received_at=AT + timedelta(seconds=n),
        anonymous_id=None if kind == EventKind.PRICE_CHANGE else f"anon-{n % 3}",
        user_id=None,
        products=(product,),
        payload_sha256=f"sha-{n}",
    )


class Home:
    """A CDP_HOME with the sample's two folded sources and a Dagster instance."""

    def __init__(self, home: Path, instance: dg.DagsterInstance) -> None:
        self.home = home
        self.instance = instance
        home.mkdir(parents=True)
        sources = [s for s in sample_config()["sources"] if s["name"] in FOLDED]
        (home / "cdp.yml").write_text(
            yaml.safe_dump({"version": 1, "landing": "landing", "sources": sources})
        )
        config = load_config(home / "cdp.yml").config
        self.assets = [realtime_events_fold, offsets_accounted_for, *build_ingest_assets(config)]
        self.cdp = CdpResource(home=str(home), config_path=str(home / "cdp.yml"))

    def send(self, start: int, count: int) -> None:
        events = [
            _event(n, EventKind.PRODUCT_VIEW, ProductLine(f"P{n % 5}"))
            if n % 4
            else _event(n, EventKind.PRICE_CHANGE, ProductLine(f"P{n % 5}", price=10.0 + n))
            for n in range(start, start + count)
        ]
        with SqliteEventLog(self.home / "events" / "log.sqlite") as log:
            log.append(events)

    def run(self, *, success: bool = True) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            self.assets, instance=self.instance, resources={"cdp": self.cdp}, raise_on_error=False
        )
        assert result.success is success, [e.message for e in result.get_step_failure_events()]
        return result

    def lake_rows(self, source: str) -> int:
        return read_lake(Workspace(self.home), source).num_rows


def _fold_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    [materialization] = [
        m for m in result.get_asset_materialization_events() if m.asset_key == FOLD_ASSET_KEY
    ]
    metadata = materialization.materialization.metadata
    return {key: value.value for key, value in metadata.items()}


def _step_order(result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    with dg.instance_for_test() as instance:
        yield Home(tmp_path / "home", instance)


def test_the_fold_runs_first_and_its_events_reach_the_lake_exactly_once(home: Home) -> None:
    home.send(1, 40)  # offsets 1..40: 30 views and 10 price changes
    first = home.run()
    order = _step_order(first)
    fold_step = order.index("realtime_events_fold")
    assert all(fold_step < order.index(f"lake__{name}") for name in FOLDED), order
    metadata = _fold_metadata(first)
    assert metadata["events_folded"] == 40
    assert metadata["offset_range"] == "1-40"
    assert metadata["lag_events_before_fold"] == 40
    assert home.lake_rows("realtime_events") == 30
    assert home.lake_rows("realtime_price_changes") == 10

    again = home.run()  # nothing new: nothing folded, nothing ingested twice
    assert _fold_metadata(again)["events_folded"] == 0
    assert _fold_metadata(again)["offset_range"] == "none (nothing new)"
    assert home.lake_rows("realtime_events") == 30

    home.send(41, 8)
    third = home.run()
    assert _fold_metadata(third)["offset_range"] == "41-48"
    assert home.lake_rows("realtime_events") == 36
    assert home.lake_rows("realtime_price_changes") == 12


def test_a_gap_in_the_folded_files_fails_the_check_and_stops_the_ingest(home: Home) -> None:
    home.send(1, 8)
    [first] = home.run().get_asset_check_evaluations()
    assert first.passed and first.description == "offsets 1-8 in 1 file(s), each once"
    (home.home / "landing" / "realtime" / file_name("events", 1, 8)).unlink()  # lost file
    home.send(9, 4)
    result = home.run(success=False)
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.severity is dg.AssetCheckSeverity.ERROR
    assert check.description == "offsets 1-8 are in no events file"
    ingested = {m.asset_key for m in result.get_asset_materialization_events()}
    assert lake_asset_key("realtime_events") not in ingested  # blocked behind the check


def test_no_event_ever_sent_is_a_normal_run(home: Home) -> None:
    result = home.run()
    assert _fold_metadata(result)["events_folded"] == 0
    assert home.lake_rows("realtime_events") == 0
    assert home.lake_rows("realtime_price_changes") == 0


def test_the_sample_world_graph_orders_the_fold_before_its_sources(
    settings: PlatformSettings,
) -> None:
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    assert graph.get(FOLD_ASSET_KEY).group_name == REALTIME_GROUP
    for name in FOLDED:
        assert FOLD_ASSET_KEY in graph.get(lake_asset_key(name)).parent_keys
    assert FOLD_ASSET_KEY not in graph.get(lake_asset_key("web_events")).parent_keys
    # the generated world ships both sources with an empty file each: valid before any event
    loaded = load_config(settings.config_path)
    for name in FOLDED:
        assert loaded.source_files(loaded.config.source(name), settings.home)


def test_the_sample_config_sends_price_drops_and_cart_reminders_by_email(
    settings: PlatformSettings,
) -> None:
    realtime, policy = load_realtime(settings.config_path)  # what the API and cdp stream read
    assert {t.name: t.kind for t in realtime.triggers} == {
        "price_drop": "price_drop_on_viewed",
        "cart_reminder": "cart_abandoned",
    }
    assert realtime.trigger("price_drop").min_drop_percent == 10
    assert realtime.trigger("cart_reminder").after_minutes == 60
    assert realtime.channels["email"].url == "http://127.0.0.1:8025/hooks/email"
    for placement, items in (("price_drop", 1), ("cart_reminder", 3)):
        assert policy.placements[placement].kind == "trigger"
        assert policy.placements[placement].items == items
        assert policy.placements[placement].channels == ("email",)
    subject = policy.templates[policy.placements["price_drop"].subject or ""]
    values = {"product_name": "Blue Lamp", "price": "27.00", "price_drop_percent": 10}
    assert render(subject.text, values, subject.fallbacks, html=False) == (
        "Price drop: Blue Lamp is now 27.00"
    )
    assert render(subject.text, {"price": "27.00"}, subject.fallbacks, html=False) == (
        "Price drop: an item you viewed is now 27.00"
    )
