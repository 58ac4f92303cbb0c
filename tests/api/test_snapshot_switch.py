"""Following serving/CURRENT: readiness, live switches, draining, bad pointers, leases."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import duckdb

from api.snapshot import SnapshotManager
from dagster_project.lib.publish import publish_snapshot
from snapshots import LEASES_DIR, write_current
from tests.support.api_harness import Api, Published


def publish(world: Published) -> str:
    w = world.world
    return publish_snapshot(w.warehouse, w.serving_dir).snapshot_id


def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_health_is_503_until_a_snapshot_is_published(
    make_api: Callable[..., Api], fresh_world: Published
) -> None:
    api = make_api(fresh_world)
    health = api.client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert "no snapshot published" in health.json()["reason"]
    graphql = api.post('{ customer(id: "cus_0001") { customerId } }')
    assert graphql.status_code == 503
    snapshot_id = publish(fresh_world)
    wait_for(lambda: api.client.get("/health").status_code == 200)
    assert api.client.get("/health").json()["snapshot_id"] == snapshot_id
    assert api.gql('{ customer(id: "cus_0001") { customerId } }')["data"]["customer"]


def test_a_new_snapshot_is_served_without_restart(
    make_api: Callable[..., Api], fresh_world: Published
) -> None:
    first = publish(fresh_world)
    api = make_api(fresh_world)
    query = '{ snapshot { snapshotId } customer(id: "cus_0002") { city } }'
    assert api.gql(query)["data"] == {
        "snapshot": {"snapshotId": first},
        "customer": {"city": "San Francisco"},
    }
    con = duckdb.connect(str(fresh_world.world.warehouse))
    con.execute("update customers set city = 'Oakland' where customer_id = 'cus_0002'")
    con.close()
    second = publish(fresh_world)
    wait_for(lambda: api.gql(query)["data"]["snapshot"]["snapshotId"] == second)
    assert api.gql(query)["data"]["customer"] == {"city": "Oakland"}
    assert api.state.snapshots.open_snapshot_ids() == [second]


def test_requests_in_flight_finish_on_the_old_snapshot(fresh_world: Published) -> None:
    first = publish(fresh_world)
    manager = SnapshotManager(fresh_world.world.serving_dir, write_leases=False)
    assert manager.refresh()
    held = manager.acquire()
    assert held is not None and held.id == first
    second = publish(fresh_world)
    assert manager.refresh()
    assert manager.current is not None and manager.current.id == second
    # the old snapshot still answers for its holder
    assert held.db.rows("select count(*) from customers")[0][0] == 300
    assert manager.open_snapshot_ids() == [first, second]
    manager.release(held)
    assert manager.open_snapshot_ids() == [second]
    assert held.retired
    manager.close()


def test_a_broken_pointer_keeps_the_current_snapshot(
    make_api: Callable[..., Api], fresh_world: Published
) -> None:
    first = publish(fresh_world)
    api = make_api(fresh_world)
    serving = fresh_world.world.serving_dir
    (serving / "20990101T000000000000Z-empty").mkdir()
    (serving / "20990101T000000000000Z-empty" / "manifest.json").write_text("{}")
    write_current(serving, "20990101T000000000000Z-empty")
    wait_for(lambda: api.state.snapshots.last_error is not None)
    assert "20990101T000000000000Z-empty could not be opened" in api.state.snapshots.last_error
    health = api.client.get("/health")
    assert health.status_code == 200 and health.json()["snapshot_id"] == first
    second = publish(fresh_world)  # a good publish recovers
    wait_for(lambda: api.client.get("/health").json()["snapshot_id"] == second)


def test_the_server_leases_the_snapshots_it_holds(
    make_api: Callable[..., Api], fresh_world: Published
) -> None:
    first = publish(fresh_world)
    make_api(fresh_world)
    leases = list((fresh_world.world.serving_dir / LEASES_DIR).glob("*.json"))
    mine = [json.loads(p.read_text()) for p in leases]
    assert any(lease["pid"] == os.getpid() and lease["snapshots"] == [first] for lease in mine)
