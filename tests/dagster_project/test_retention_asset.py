"""``privacy/retention`` in real runs: after the fold, the ingest and the decision log export,
it removes what is older than the retention, reports it per store, and neither a second run nor
the next fold and ingest brings anything back.

Real event log, real ``dagster.materialize`` of the fold, the ingest, the decision log export and
the retention asset, real Parquet and SQLite files.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dagster_project.definitions import build_definitions
from dagster_project.defs.decisions.assets import decision_log
from dagster_project.defs.decisions.checks import DECISION_LOG_KEYS
from dagster_project.defs.events.assets import realtime_events_fold
from dagster_project.defs.events.checks import offsets_accounted_for
from dagster_project.defs.ingest.assets import build_ingest_assets, lake_asset_key
from dagster_project.defs.privacy.assets import RETENTION_ASSET_KEY, build_retention_asset
from dagster_project.defs.resources import CdpResource
from dagster_project.defs.schedules import RETENTION_JOB
from dagster_project.lib.config import ConfigError, load_config
from dagster_project.lib.generate.config_writer import sample_config
from dagster_project.lib.ingest import read_lake
from dagster_project.lib.settings import PlatformSettings
from dagster_project.lib.workspace import Workspace
from decisions.store import DecisionStore, default_store_path, read_export
from decisions.types import Decision, DecisionItem
from events.log import SqliteEventLog
from events.processor import CONSUMER
from events.state import StateStore, set_offset
from events.types import EventKind, NewEvent, ProductLine
from tests.support.stream_world import event

AS_OF = "2026-12-01"  # the run's now: the end of that day
NOW = datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC)
OLD = NOW - timedelta(days=45)  # events are kept 30 days
YOUNG = NOW - timedelta(days=2)
FOLDED = ("realtime_events", "realtime_price_changes")
RETENTION = {"retention": {"events_days": 30, "decisions_days": 90}}


def _event(n: int, at: datetime) -> NewEvent:
    return event(
        EventKind.PRODUCT_VIEW,
        anonymous_id=f"ck_{n}",
        identifiers={"email": f"person{n}@shopmail.com"},
        products=[ProductLine(f"P{n % 3}")],
        at=at,
        message_id=f"m-{n}",
        name="Product Viewed",
    )


def _decision(customer: str, at: datetime) -> Decision:
    start = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return Decision(
        decision_id=f"d-{customer}-{start:%Y%m%d}",
        customer_id=customer,
        channel="email",
        placement="daily_email",
        policy_version="abc123def456",
        decided_at=at,
        expires_at=start + timedelta(days=1),
        send=True,
        reasons=(),
        theme=None,
        items=(DecisionItem("P1", None, 1.0, 0.5, False),),
        subject="Hi Ada",
        blocks={},
        subject_masked="Hi there",
        blocks_masked={},
        experiment=None,
        is_holdout=False,
    )


class Home:
    """A CDP_HOME with the two folded sources, a retention, a log, a processor offset."""

    def __init__(self, home: Path, instance: dg.DagsterInstance) -> None:
        self.home = home
        self.instance = instance
        home.mkdir(parents=True)
        sources = [s for s in sample_config()["sources"] if s["name"] in FOLDED]
        (home / "cdp.yml").write_text(
            yaml.safe_dump(
                {"version": 1, "landing": "landing", "sources": sources, "privacy": RETENTION}
            )
        )
        config = load_config(home / "cdp.yml").config
        self.assets = [
            realtime_events_fold,
            offsets_accounted_for,
            *build_ingest_assets(config),
            decision_log,
            build_retention_asset(config),
        ]
        self.cdp = CdpResource(home=str(home), config_path=str(home / "cdp.yml"), as_of=AS_OF)

    def send(self, numbers: range, at: datetime) -> None:
        with SqliteEventLog(self.home / "events" / "log.sqlite") as log:
            log.append([_event(n, at + timedelta(seconds=n)) for n in numbers])
        state = StateStore(self.home / "events" / "state.sqlite")
        try:
            with state.transaction() as conn:  # the processor has read everything
                set_offset(conn, CONSUMER, numbers[-1], NOW)
        finally:
            state.close()

    def decide(self, at: datetime) -> None:
        with DecisionStore.open(default_store_path(self.home)) as store:
            store.deliver_many([(_decision(c, at), [], {c}, False) for c in ("c1", "c2")], at)

    def run(self) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            self.assets, instance=self.instance, resources={"cdp": self.cdp}, raise_on_error=False
        )
        assert result.success, [e.message for e in result.get_step_failure_events()]
        return result

    def lake_ids(self) -> list[str]:
        table = read_lake(Workspace(self.home), "realtime_events")
        return sorted(table["record_id"].to_pylist())


def _retention_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    [event] = [
        m for m in result.get_asset_materialization_events() if m.asset_key == RETENTION_ASSET_KEY
    ]
    return {key: value.value for key, value in event.materialization.metadata.items()}


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    with dg.instance_for_test() as instance:
        yield Home(tmp_path / "home", instance)


def test_retention_runs_after_the_ingest_and_nothing_removed_comes_back(home: Home) -> None:
    home.send(range(1, 6), OLD)
    home.send(range(6, 9), YOUNG)
    home.decide(NOW - timedelta(days=200))
    home.decide(YOUNG)
    first = home.run()
    order = [e.step_key for e in first.all_events if e.event_type_value == "STEP_SUCCESS"]
    assert order.index("lake__realtime_events") < order.index("privacy__retention"), order
    metadata = _retention_metadata(first)
    assert metadata["events_cutoff"] == str(NOW.replace(microsecond=999999) - timedelta(days=30))
    assert metadata["event_log/events"] == 5
    assert metadata["event_log/kept/newest_event"] == 0
    assert metadata["realtime_lake/lake_rows"] == 5
    assert metadata["decision_log/choices"] == 2
    assert metadata["event_log/bytes_freed"] >= 0
    assert "| event_log |" in str(metadata["stores"])
    assert home.lake_ids() == ["m-6", "m-7", "m-8"]
    exported = read_export(home.home / "lake" / "_decisions", "deliveries")
    assert exported.num_rows == 2

    second = home.run()  # same day: nothing to remove, nothing re-ingested, the check holds
    assert _retention_metadata(second)["rows_removed"] == 0
    assert home.lake_ids() == ["m-6", "m-7", "m-8"]
    [check] = [
        c for c in second.get_asset_check_evaluations() if c.check_name == "offsets_accounted_for"
    ]
    assert check.passed, check.description

    home.send(range(9, 11), NOW - timedelta(hours=1))  # new events fold and ingest as usual
    home.run()
    assert home.lake_ids() == ["m-10", "m-6", "m-7", "m-8", "m-9"]
    with SqliteEventLog(home.home / "events" / "log.sqlite") as log:
        assert [e.offset for e in log.read(0, 100)] == [6, 7, 8, 9, 10]


def test_the_graph_schedules_retention_daily_after_ingest_and_export(
    settings: PlatformSettings,
) -> None:
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    parents = graph.get(RETENTION_ASSET_KEY).parent_keys
    assert lake_asset_key("realtime_events") in parents
    assert set(DECISION_LOG_KEYS) <= parents
    schedule = defs.resolve_schedule_def("daily_privacy_retention")
    assert schedule.cron_schedule == "0 3 * * *" and schedule.job_name == RETENTION_JOB
    job = defs.resolve_job_def(RETENTION_JOB)
    assert job.asset_layer.executable_asset_keys == {RETENTION_ASSET_KEY}


def test_a_retention_too_short_for_the_caps_fails_at_start(settings: PlatformSettings) -> None:
    config = yaml.safe_load(settings.config_path.read_text())
    config["privacy"] = {"retention": {"decisions_days": 30}}
    settings.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ConfigError, match=r"cdp\.yml: privacy\.retention\.decisions_days: 30 days"):
        build_definitions(settings)


def test_an_invalid_privacy_section_names_its_key(tmp_path: Path) -> None:
    config = sample_config()
    config["privacy"] = {"retention": {"events_days": 0, "decision_days": 90}}
    (tmp_path / "cdp.yml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "cdp.yml")
    assert "privacy.retention.events_days: Input should be greater than or equal to 1" in str(
        raised.value
    )
    assert "privacy.retention.decision_days: Extra inputs are not permitted" in str(raised.value)
