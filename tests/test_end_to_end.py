"""The whole product on a generated world: cdp run (ingest, identity, dbt, publish), then the
GraphQL API over real HTTP against the snapshot that run published."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import httpx
import pytest

from api.security import create_key
from dagster_project.lib.settings import PlatformSettings
from dagster_project.runner import run_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ADMIN_SCOPES = ["profile:read", "pii:read", "segments:read"]
WEB_SCOPES = ["profile:read", "segments:read"]
LOOKUP = """query($t: String!, $v: String!) { customer(lookup: {type: $t, value: $v}) {
  customerId email segments { name enteredAt } } }"""


@pytest.fixture(scope="module")
def built_home(
    sample_world: Path, world_end: date, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A CDP_HOME on which the full graph has been materialized once, as `cdp run` does."""
    import shutil

    home = tmp_path_factory.mktemp("e2e_home")
    shutil.copytree(sample_world / "landing", home / "landing")
    shutil.copy(sample_world / "cdp.yml", home / "cdp.yml")
    outcome = run_pipeline(PlatformSettings(home=home, as_of=world_end))
    assert outcome.success, outcome.failures
    failed = [s for s in outcome.steps if s.kind == "check" and not (s.ok or s.is_warning)]
    assert not failed, failed
    return home


def test_every_layer_is_materialized_in_lineage_order(built_home: Path) -> None:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(built_home / "dagster")) as instance:

        def latest(*path: str) -> float:
            event = instance.get_latest_materialization_event(dg.AssetKey(list(path)))
            assert event is not None, path
            return event.timestamp

        assert latest("lake", "crm") < latest("identity", "identity_map")
        assert latest("identity", "identity_map") < latest("dbt", "customers")
        assert latest("dbt", "customers") < latest("dbt", "customer_segments")
        assert latest("dbt", "customer_segments") < latest("serving", "snapshot")


def test_identity_matches_ground_truth_on_the_sample_world(
    built_home: Path, sample_world: Path
) -> None:
    with duckdb.connect() as con:
        identity_map = built_home / "lake" / "identity" / "identity_map.parquet"
        truth = sample_world / "ground_truth" / "records.parquet"
        con.execute(f"create view m as select * from read_parquet('{identity_map}')")
        con.execute(f"create view t as select * from read_parquet('{truth}')")
        pairs = con.execute(
            """
            with j as (select m.customer_id, t.person_id, m.source, m.record_id
                       from m join t using (source, record_id)
                       -- people records: cookies that never logged in cannot be linked
                       where m.source in ('crm', 'shop_accounts')),
            p as (select a.customer_id = b.customer_id as same_c,
                         a.person_id = b.person_id as same_p
                  from j a join j b
                    on (a.source, a.record_id) < (b.source, b.record_id)
                   and (a.customer_id = b.customer_id or a.person_id = b.person_id))
            select count(*) filter (same_c and same_p), count(*) filter (same_c),
                   count(*) filter (same_p)
            from p
            """
        ).fetchone()
        unmatched = con.execute(
            "select count(*) from t anti join m using (source, record_id)"
        ).fetchone()[0]
    true_positive, predicted, actual = pairs
    assert unmatched == 0
    assert true_positive / predicted >= 0.99
    assert true_positive / actual >= 0.95


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(
    built_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, str]]:
    """`cdp serve` as a user starts it, on the published snapshot."""
    admin = create_key(built_home / "api_keys.yml", "e2e-admin", ADMIN_SCOPES)
    web = create_key(built_home / "api_keys.yml", "e2e-web", WEB_SCOPES)
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "CDP_HOME": str(built_home)}
    command = [sys.executable, "-m", "dagster_project.cli.main", "serve", "--port", str(port)]
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-c", "from dagster_project.cli.main import app; app()", *command[3:]],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url, admin, web
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_channels_find_customers_by_any_identifier_over_http(
    built_home: Path, sample_world: Path, server: tuple[str, str, str]
) -> None:
    url, admin, web = server
    with duckdb.connect() as con:
        email, expected = con.execute(
            """
            select c.email, m.customer_id
            from read_csv(?, all_varchar = true) c
            join read_parquet(?) m on m.source = 'crm' and m.record_id = c.customer_number
            where c.email like '%@%' and c.email not like 'test@%'
            order by c.customer_number limit 1
            """,
            [
                str(sample_world / "landing" / "crm" / "crm_customers.csv"),
                str(built_home / "lake" / "identity" / "identity_map.parquet"),
            ],
        ).fetchone()
    with httpx.Client(timeout=15) as client:

        def ask(key: str, variables: dict[str, str]) -> dict:
            response = client.post(
                url + "/graphql",
                json={"query": LOOKUP, "variables": variables},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 200, response.text
            return response.json()

        found = ask(admin, {"t": "email", "v": f"  {email.upper()} "})["data"]["customer"]
        assert found["customerId"] == expected
        assert found["email"] == email.strip().lower()
        masked = ask(web, {"t": "email", "v": email})["data"]["customer"]
        assert masked["customerId"] == expected
        assert masked["email"] != found["email"]
        missing = ask(admin, {"t": "email", "v": "nobody.here@example.org"})
        assert missing["data"]["customer"] is None
        unauthorised = client.post(url + "/graphql", json={"query": "{ segments { name } }"})
        assert unauthorised.status_code == 401
