"""The decision simulation's mechanics on a small world: what it counts is what the log holds.

A 1,500-person world is generated and run through the whole pipeline (the benchmark's own
``build_world``), then 7 days are simulated for the platform and batch-and-blast. The figures of
the 10k benchmark are only as honest as these mechanics: sends counted are the store's sent
deliveries, an unsubscribe stops every later email (through the store's consent withdrawal, not
the simulator), and the platform never sends more than batch-and-blast.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
PERSONS = 1_500
SEED = 42
DAYS = 7


def _load(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_simulation_mechanics(tmp_path_factory: pytest.TempPathFactory) -> None:
    sim = _load("decision_simulation")
    home = sim.build_world(tmp_path_factory.mktemp("decision_world"), PERSONS, SEED)
    platforms: list[Any] = []
    sent: dict[str, list[tuple[int, set[str], set[str]]]] = {}

    def on_day(name: str, day: int, messages: Any, outcomes: Any) -> None:
        customers = set(np.asarray(messages.customer).tolist())
        unsubscribed = set(np.asarray(messages.customer)[outcomes.unsubscribed].tolist())
        ids = set(messages.decision_id or [])
        sent.setdefault(name, []).append((day, customers, unsubscribed))
        if name == "platform":
            assert len(ids) == len(messages.customer), "one decision id per email"

    result = sim.simulate(
        home,
        seed=SEED,
        days=DAYS,
        policies=("platform", "batch-and-blast"),
        keep_platform=platforms,
        on_day=on_day,
    )
    platform, blast = result.totals["platform"], result.totals["batch-and-blast"]

    # What the simulation counted is what the decision log holds as sent.
    (runner,) = platforms
    assert platform.sends > 0
    assert platform.sends == runner.store_sends()
    assert runner.decided >= platform.sends

    # No email after an unsubscribe: by the simulation's days and by the log's timestamps.
    unsubscribed_total = 0
    for name, days in sent.items():
        gone: set[int] = set()
        for _day, customers, unsubscribed in days:
            assert not customers & gone, f"{name} mailed a customer who had unsubscribed"
            gone |= unsubscribed
        unsubscribed_total += len(gone)
    assert unsubscribed_total > 0, "no unsubscribe happened: the check above proved nothing"
    with sqlite3.connect(runner.store.path) as conn:
        late = conn.execute(
            "select count(*) from outcomes o join deliveries d "
            "on d.customer_id = o.customer_id and d.channel = o.channel "
            "where o.kind = 'unsubscribe' and d.is_sent = 1 and d.delivered_at > o.occurred_at"
        ).fetchone()[0]
    assert late == 0
    # Unsubscribers are still asked about every day: the service finds their withdrawal in the
    # log and refuses them before ranking, without logging (no item-less choice for the site
    # to adopt), so the refusals are counted on what decide_many returned, not in the log.
    if platform.unsubscribes:
        assert runner.refused["consent:withdrawn:email"] > 0, "unsubscribers were never refused"

    # The platform's cadence: never more email than batch-and-blast.
    assert platform.sends <= blast.sends
    assert platform.unsubscribes <= blast.unsubscribes
