"""Erasure end to end, as issue 15 states it: generate a world, run, erase a person found by
email, re-deliver the original landing files and replay their real-time events, run again:
no file under CDP_HOME holds any of their identifiers, lookups by each old identifier return
null over HTTP, aggregate marts no longer count them, and the erasure check is green."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest

from api.security import create_key
from dagster_project.lib.settings import PlatformSettings
from dagster_project.runner import RunOutcome, run_pipeline
from events.log import SqliteEventLog
from events.processor import StreamProcessor, log_path
from events.types import LoggedEvent
from events.write_keys import create_write_key
from privacy.access import PersonRef, export_person
from snapshots import DATABASE_FILE, read_current, snapshot_folder
from tests.support.api_harness import start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

LOOKUP = """query($t: String!, $v: String!) { customer(lookup: {type: $t, value: $v}) {
  customerId } }"""
PERSON_TYPES = ("email", "phone", "account_id", "loyalty_id", "cookie_id")
CHECK = "privacy/erasure_scan:no_erased_person_remains"
CLI = (sys.executable, "-c", "from dagster_project.cli.main import app; app()")


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env={**os.environ, "CDP_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _run(home: Path, as_of: date) -> RunOutcome:
    outcome = run_pipeline(PlatformSettings(home=home, as_of=as_of))
    assert outcome.success, outcome.failures
    failed = [s for s in outcome.steps if s.kind == "check" and not (s.ok or s.is_warning)]
    assert not failed, failed
    return outcome


def _snapshot(home: Path) -> sqlite3.Connection:
    serving = home / "serving"
    folder = snapshot_folder(serving, read_current(serving))
    return sqlite3.connect(f"file:{folder / DATABASE_FILE}?mode=ro", uri=True)


def _pick_person(home: Path) -> tuple[str, list[tuple[str, str]]]:
    """A customer known by email, account (with orders), cookie and loyalty number."""
    conn = _snapshot(home)
    try:
        wanted = " and ".join(
            f"customer_id in (select customer_id from customer_identifiers "
            f"where identifier_type = '{kind}')"
            for kind in ("email", "account_id", "cookie_id", "loyalty_id")
        )
        (customer_id,) = conn.execute(
            f"select customer_id from customers where {wanted} order by customer_id limit 1"
        ).fetchone()
        identifiers = conn.execute(
            "select identifier_type, identifier_value from customer_identifiers "
            f"where customer_id = ? and identifier_type in ({','.join('?' * len(PERSON_TYPES))})",
            (customer_id, *PERSON_TYPES),
        ).fetchall()
    finally:
        conn.close()
    return str(customer_id), [(str(t), str(v)) for t, v in identifiers]


def _raw_forms(home: Path, customer_id: str) -> set[str]:
    """The person's identifier values as the sources wrote them (lake rows), and record ids."""
    document = export_person(home, PersonRef(customer_id=customer_id))
    forms: set[str] = set()
    for record in document["records"]["identity_records"]:
        for row in record.get("lake_rows", []):
            for column in ("email", "phone", "account_id", "loyalty_id", "cookie_id"):
                value = row.get(column)
                if isinstance(value, str) and len(value.strip()) >= 5:
                    forms.add(value.strip())
    return forms


def _needles(values: set[str]) -> list[re.Pattern[bytes]]:
    return [
        re.compile(rb"(?<![\w.-])" + re.escape(v.encode()) + rb"(?![\w-])", re.IGNORECASE)
        for v in sorted(values)
    ]


def _files_holding(home: Path, needles: list[re.Pattern[bytes]]) -> dict[str, int]:
    """Every file under CDP_HOME holding one of the values (bytes, case-insensitive)."""
    found: dict[str, int] = {}
    for path in sorted(home.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        hits = sum(len(needle.findall(data)) for needle in needles)
        if hits:
            found[str(path.relative_to(home))] = hits
    return found


def _aggregates(home: Path, customer_id: str) -> dict[str, Any]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return {
            "customers": con.execute("select count(*) from customers").fetchone()[0],
            "segment_members": con.execute("select sum(member_count) from segments").fetchone()[0],
            "person_segments": con.execute(
                "select count(*) from customer_segments where customer_id = ?", [customer_id]
            ).fetchone()[0],
            "sends": con.execute("select sum(send_count) from campaign_metrics").fetchone()[0],
        }


def _person_sends(home: Path, emails: set[str]) -> int:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "select count(*) from int_email_events_resolved where campaign_id is not null "
            "and event_type = 'send' and lower(trim(email)) in (select unnest(?))",
            [sorted(emails)],
        ).fetchone()[0]


@pytest.fixture(scope="module")
def home(sample_world: Path, world_end: date, tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = tmp_path_factory.mktemp("erasure_home")
    shutil.copytree(sample_world / "landing", built / "landing")
    shutil.copy(sample_world / "cdp.yml", built / "cdp.yml")
    _run(built, world_end)
    return built


@pytest.fixture(scope="module")
def api(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`cdp serve` (2 workers) on the published snapshot: (url, admin key). Its audit log
    stays under CDP_HOME, where erasure must reach it."""
    admin = create_key(home / "api_keys.yml", "erasure-admin", ["admin"])
    server = start_server(
        home,
        tmp_path_factory.mktemp("server"),
        workers=2,
        env={"CDP_API_AUDIT_DIR": str(home / "audit")},
    )
    try:
        yield server.url, admin
    finally:
        stop_server(server)


def _lookup(url: str, key: str, kind: str, value: str) -> Any:
    response = httpx.post(
        url + "/graphql",
        json={"query": LOOKUP, "variables": {"t": kind, "v": value}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=15,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["customer"]


def _send(url: str, write_key: str, batch: list[dict[str, Any]]) -> None:
    response = httpx.post(
        url + "/v1/batch", json={"batch": batch}, auth=(write_key, ""), timeout=15
    )
    assert response.status_code == 200, response.text


def _their_events(home: Path) -> list[LoggedEvent]:
    with SqliteEventLog(log_path(home)) as log:
        return [e for e in log.read(0, 1_000_000) if e.message_id.startswith("erasure-e2e")]


def _is_emptied(event: LoggedEvent) -> bool:
    return not (event.anonymous_id or event.user_id or event.identifiers or event.body)


def _process(home: Path) -> None:
    with SqliteEventLog(log_path(home)) as log:
        processor = StreamProcessor.from_home(home, log=log)
        try:
            while processor.process_batch():
                pass
        finally:
            processor.close()


def test_an_erased_person_stays_erased_after_redelivery_and_replay(
    home: Path, sample_world: Path, world_end: date, api: tuple[str, str]
) -> None:
    url, admin = api
    customer_id, identifiers = _pick_person(home)
    emails = {v for t, v in identifiers if t == "email"}
    plain = {v for _, v in identifiers} | _raw_forms(home, customer_id) | {customer_id}
    for kind, value in identifiers:
        assert _lookup(url, admin, kind, value) is not None, (kind, value)

    # the person acts in real time: a new cookie, identified by email, views a product
    write_key = create_write_key(home / "write_keys.yml", "erasure-site", replace=True)
    time.sleep(1.5)  # the API reloads write keys on its next poll
    cookie = "ck-erasure-e2e-1"
    plain.add(cookie)
    now = datetime.now(UTC).isoformat()
    events = [
        {
            "type": "identify",
            "anonymousId": cookie,
            "traits": {"email": sorted(emails)[0].upper()},
            "messageId": "erasure-e2e-identify",
            "timestamp": now,
        },
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": cookie,
            "properties": {"product_id": "P-e2e", "price": 10.0},
            "messageId": "erasure-e2e-view",
            "timestamp": now,
        },
    ]
    _send(url, write_key, events)
    _process(home)
    needles = _needles(plain)
    held = _files_holding(home, needles)
    assert any(p.startswith("events/") for p in held), held  # the real-time path holds them
    before = _aggregates(home, customer_id)
    sends = _person_sends(home, emails)
    assert before["person_segments"] > 0

    # erase, named by an email address as a person writes it
    erased = _cli(home, "privacy", "erase", "--email", f"  {sorted(emails)[0].upper()} ")
    assert erased.returncode == 0, erased.stdout + erased.stderr
    assert "completed" in erased.stdout + erased.stderr
    assert _files_holding(home, needles) == {}
    # the running API serves the snapshot without them
    deadline = time.monotonic() + 15
    while _lookup(url, admin, "email", sorted(emails)[0]) is not None:
        assert time.monotonic() < deadline, "the API still serves the erased person"
        time.sleep(0.3)
    for kind, value in identifiers:
        assert _lookup(url, admin, kind, value) is None, (kind, value)

    # a second request is harmless, an unknown person holds nothing
    again = _cli(home, "privacy", "erase", "--email", sorted(emails)[0])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already erased" in again.stdout + again.stderr
    unknown = _cli(home, "privacy", "erase", "--email", "nobody.at.all@example.org")
    assert unknown.returncode == 0, unknown.stdout + unknown.stderr
    assert "nothing held" in unknown.stdout + unknown.stderr

    # the sources deliver the old files again and the site replays the events
    for path in (sample_world / "landing").rglob("*"):
        if path.is_file():
            target = home / "landing" / path.relative_to(sample_world / "landing")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    kept = _their_events(home)  # the log's newest row is emptied, not deleted (offsets)
    assert all(_is_emptied(e) for e in kept), kept
    _send(url, write_key, events)
    assert _their_events(home) == kept  # the replay was acknowledged and dropped
    _process(home)
    outcome = _run(home, world_end)
    check = [s for s in outcome.steps if s.name == CHECK]
    assert check and check[0].ok, check

    assert _files_holding(home, needles) == {}
    for kind, value in identifiers:
        assert _lookup(url, admin, kind, value) is None, (kind, value)
    after = _aggregates(home, customer_id)
    assert after["customers"] == before["customers"] - 1
    assert after["person_segments"] == 0
    assert after["segment_members"] == before["segment_members"] - before["person_segments"]
    assert after["sends"] == before["sends"] - sends
    metadata = orjson.dumps([s.detail for s in outcome.steps]).decode()
    assert not any(value.lower() in metadata.lower() for value in plain)
