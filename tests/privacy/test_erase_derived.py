"""Erasure in the derived stores (``privacy.erase_derived``) over real files: a published
world (SQLite snapshots, the DuckDB warehouse), a decision log with its Parquet export, the PII
audit log, channel exports and run artefacts, and a Dagster-like storage. The person is known
only by keyed hashes; each test checks they are gone (down to the files' bytes), that everyone
else is intact, that a second erasure removes nothing and that the scan goes from >0 to 0."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.snapshot import SnapshotManager
from decisions.engine import decision_id
from decisions.store import DecisionStore, default_store_path, read_export
from decisions.types import Decision, DecisionItem
from privacy.access import PersonRef, export_person
from privacy.erase_derived import (
    AuditEraser,
    DagsterStorageScan,
    DecisionsEraser,
    ErasureStoreError,
    ExportsEraser,
    ServingEraser,
    WarehouseEraser,
    _rewrite_lines,
    derived_erasers,
    text_names,
)
from privacy.keys import Keyring, PrivacyKey
from privacy.stores import Eraser
from privacy.suppression import PSEUDONYM_PREFIX, Suppression, store_normalizer
from snapshots import list_snapshots, read_current, read_manifest, snapshot_folder
from tests.conftest import TEST_PRIVACY_KEY
from tests.support.api_harness import Server, make_keys, start_server, stop_server
from tests.support.api_world import customer_id, email, phone
from tests.support.stream_world import PERSONS, StreamWorld, make_world

PERSON = 3  # api_world: person3@shopmail.com, +14155550003, ACC-3, L000003, ck_3, cus_0003
OTHER = 7
KEYRING = Keyring((PrivacyKey.from_hex(TEST_PRIVACY_KEY, where="test"),))


def _identifiers(i: int) -> list[tuple[str, str]]:
    """Every identifier of customer ``i`` and their customer id, as (type, normalized)."""
    return [
        ("email", email(i)),
        ("phone", phone(i)),
        ("account_id", f"ACC-{i}"),
        ("loyalty_id", f"L{i:06d}"),
        ("cookie_id", f"ck_{i}"),
        ("customer_id", customer_id(i)),
    ]


def _person(i: int = PERSON) -> Suppression:
    """The erasure list of customer ``i``: every identifier and the customer id, hashed."""
    return Suppression.of_identifiers(KEYRING, _identifiers(i))


def _bytes_hold(path: Path, text: str) -> bool:
    """Whether a file (or its -wal/-journal/.wal siblings) holds ``text`` anywhere."""
    needle = text.encode()
    siblings = [path, *path.parent.glob(path.name + "-*"), *path.parent.glob(path.name + ".wal")]
    return any(p.is_file() and needle in p.read_bytes() for p in siblings)


@pytest.fixture
def world(tmp_path: Path) -> StreamWorld:
    return make_world(tmp_path / "home")


def test_every_eraser_is_an_eraser(world: StreamWorld) -> None:
    erasers: list[Eraser] = [
        ServingEraser(world.home),
        WarehouseEraser(world.home),
        DecisionsEraser(world.home),
        AuditEraser(world.home),
        ExportsEraser(world.home),
        DagsterStorageScan(world.home),
    ]
    assert [e.name for e in erasers] == [
        "serving",
        "warehouse",
        "decisions",
        "audit",
        "exports",
        "dagster",
    ]
    assert all(e.related(_person()) == {} for e in erasers)
    listed = derived_erasers(world.home, audit_dir=world.home / "api-audit")
    assert sorted(e.name for e in listed) == sorted(e.name for e in erasers)
    audit = next(e for e in listed if isinstance(e, AuditEraser))
    assert audit.folder == world.home / "api-audit"


# --- serving ----------------------------------------------------------------------------------


def _customers(folder: Path) -> int:
    conn = sqlite3.connect(folder / "snapshot.sqlite")
    try:
        return int(conn.execute("select count(*) from customers").fetchone()[0])
    finally:
        conn.close()


def test_serving_publishes_a_copy_without_the_person_and_deletes_older_snapshots(
    world: StreamWorld,
) -> None:
    first = read_current(world.serving_dir)
    assert first is not None
    second = world.republish(range(0, PERSONS, 10))  # two snapshots hold the person now
    assert list_snapshots(world.serving_dir) == sorted([first, second])
    eraser = ServingEraser(world.home)
    before = eraser.scan(_person())
    assert before.remaining > 0
    assert any(first in w for w in before.where) and any(second in w for w in before.where)
    old_manifest = read_manifest(snapshot_folder(world.serving_dir, second))

    outcome = eraser.erase(_person())

    current = read_current(world.serving_dir)
    assert current not in (first, second)
    assert list_snapshots(world.serving_dir) == [current]  # older ones deleted, not kept
    folder = snapshot_folder(world.serving_dir, current)
    manifest = read_manifest(folder)
    assert manifest.derived_from == second and manifest.derivation == "erasure"
    assert outcome.removed["customers"] == 1
    # email (two sources), phone, account, loyalty and cookie
    assert outcome.removed["customer_identifiers"] == 6
    assert outcome.removed["snapshots deleted"] == 2
    assert not any(str(PERSON) in note and "@" in note for note in outcome.notes)
    # the manifest counts the copy, exactly as the publisher would
    assert manifest.tables["customers"] == old_manifest.tables["customers"] - 1 == PERSONS - 1
    conn = sqlite3.connect(folder / "snapshot.sqlite")
    try:
        for table, rows in manifest.tables.items():
            assert conn.execute(f'select count(*) from "{table}"').fetchone()[0] == rows
        assert conn.execute("pragma quick_check").fetchone()[0] == "ok"
        others = conn.execute(
            "select count(*) from customer_identifiers where customer_id = ?",
            [customer_id(OTHER)],
        ).fetchone()[0]
    finally:
        conn.close()
    assert others == 6
    assert manifest.size_bytes == (folder / "snapshot.sqlite").stat().st_size
    # gone down to the bytes (the copy was vacuumed)
    for text in (email(PERSON), customer_id(PERSON), f"ACC-{PERSON}", phone(PERSON)):
        assert not _bytes_hold(folder / "snapshot.sqlite", text)
    assert _bytes_hold(folder / "snapshot.sqlite", email(OTHER))
    # a reader of the snapshot finds nothing about the person, and the other as before
    gone = export_person(world.home, PersonRef(identifier_type="email", value=email(PERSON)))
    assert gone["found"] is False
    by_id = export_person(world.home, PersonRef(customer_id=customer_id(PERSON)))
    assert by_id["found"] is False
    kept = export_person(world.home, PersonRef(identifier_type="email", value=email(OTHER)))
    assert kept["found"] is True and kept["customer_ids"] == [customer_id(OTHER)]
    assert eraser.scan(_person()).remaining == 0

    again = eraser.erase(_person())
    assert again.total == 0 and read_current(world.serving_dir) == current


def test_serving_erase_of_someone_not_held_publishes_nothing(world: StreamWorld) -> None:
    before = read_current(world.serving_dir)
    stranger = Suppression.of_identifiers(KEYRING, [("email", "nobody@nowhere.org")])
    outcome = ServingEraser(world.home).erase(stranger)
    assert outcome.total == 0 and read_current(world.serving_dir) == before


def test_serving_waits_for_a_request_in_flight_then_deletes_the_old_snapshot(
    world: StreamWorld,
) -> None:
    old = read_current(world.serving_dir)
    manager = SnapshotManager(world.serving_dir)  # the API's own manager, writing its lease
    manager.refresh()
    held = manager.acquire()  # a request in flight on the old snapshot
    assert held is not None and held.id == old
    eraser = ServingEraser(world.home, lease_wait_seconds=20)
    result: dict[str, object] = {}
    worker = threading.Thread(target=lambda: result.update(outcome=eraser.erase(_person())))
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while read_current(world.serving_dir) == old and time.monotonic() < deadline:
            time.sleep(0.05)
        assert manager.refresh()  # the API follows CURRENT
        new = manager.current
        assert new is not None and new.id != old
        time.sleep(0.5)
        assert worker.is_alive()  # still waiting: the old snapshot is held
        assert snapshot_folder(world.serving_dir, old).is_dir()
        # the request still reads the old snapshot
        assert held.db.has_table("customers")
        released = time.monotonic()
        manager.release(held)  # last request done: the API closes it and renews its lease
        worker.join(timeout=10)
        assert not worker.is_alive() and time.monotonic() - released < 5
    finally:
        worker.join(timeout=25)
        manager.close()
    assert not snapshot_folder(world.serving_dir, old).exists()
    outcome = result["outcome"]
    assert any("waiting" in note for note in outcome.notes)  # type: ignore[attr-defined]


def test_serving_deletes_anyway_when_a_reader_never_lets_go(world: StreamWorld) -> None:
    old = read_current(world.serving_dir)
    manager = SnapshotManager(world.serving_dir)
    manager.refresh()
    held = manager.acquire()
    assert held is not None
    try:
        started = time.monotonic()
        outcome = ServingEraser(world.home, lease_wait_seconds=0.5).erase(_person())
        assert 0.5 <= time.monotonic() - started < 10
        assert not snapshot_folder(world.serving_dir, old).exists()
        assert outcome.removed["snapshots deleted"] == 1
    finally:
        manager.release(held)
        manager.close()


LOOKUP = """query Lookup($t: String!, $v: String!) {
    customer(lookup: {type: $t, value: $v}) { customerId } }"""


def _lookup(server: Server, key: str, kind: str, value: str) -> object:
    response = httpx.post(
        server.url + "/graphql",
        json={"query": LOOKUP, "variables": {"t": kind, "v": value}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["customer"]


def test_a_running_api_moves_to_the_erased_snapshot(world: StreamWorld, tmp_path: Path) -> None:
    keys = make_keys(world.home)
    server = start_server(world.home, tmp_path)
    try:
        old = httpx.get(server.url + "/health", timeout=10).json()["snapshot_id"]
        assert old == read_current(world.serving_dir)
        assert _lookup(server, keys["pii"], "email", email(PERSON)) == {
            "customerId": customer_id(PERSON)
        }
        outcome = ServingEraser(world.home, lease_wait_seconds=20).erase(_person())
        new = read_current(world.serving_dir)
        assert new != old and outcome.removed["customers"] == 1
        # the server follows CURRENT and let go of the old snapshot (its lease) before the
        # eraser's wait ran out: the old folder is gone, and lookups by every old identifier
        # of the person find no one
        assert httpx.get(server.url + "/health", timeout=10).json()["snapshot_id"] == new
        assert not snapshot_folder(world.serving_dir, old).exists()
        assert any("waiting" in note for note in outcome.notes)
        for kind, value in _identifiers(PERSON):
            if kind != "customer_id":
                assert _lookup(server, keys["pii"], kind, value) is None, kind
        assert _lookup(server, keys["pii"], "email", email(OTHER)) == {
            "customerId": customer_id(OTHER)
        }
    finally:
        stop_server(server)


# --- warehouse --------------------------------------------------------------------------------


def _add_warehouse_extras(path: Path) -> None:
    """A table of raw (un-normalized) values and ids in other columns, and a view."""
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "create table raw_contacts (contact_email varchar, related_customer_id varchar, "
            "note varchar)"
        )
        con.execute(
            "insert into raw_contacts values (?, ?, 'a'), (?, ?, 'b'), (?, ?, 'c')",
            [
                f"  Person{PERSON}@ShopMail.COM ",
                customer_id(OTHER),
                email(OTHER),
                customer_id(PERSON),  # a row of the other person that points at the person
                email(OTHER),
                customer_id(OTHER),
            ],
        )
        con.execute("create view customer_emails as select customer_id, email from customers")
    finally:
        con.close()


def _table_counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_type = 'BASE TABLE'"
            ).fetchall()
        ]
        return {n: int(con.execute(f'select count(*) from "{n}"').fetchone()[0]) for n in names}
    finally:
        con.close()


def test_warehouse_deletes_the_person_from_every_table_and_the_file(world: StreamWorld) -> None:
    _add_warehouse_extras(world.warehouse)
    before = _table_counts(world.warehouse)
    assert _bytes_hold(world.warehouse, email(PERSON))
    eraser = WarehouseEraser(world.home)
    assert eraser.scan(_person()).remaining > 0

    outcome = eraser.erase(_person())

    after = _table_counts(world.warehouse)
    assert outcome.removed["main.customers"] == 1
    assert outcome.removed["main.raw_contacts"] == 2  # the raw spelling and the pointer
    assert after["customers"] == before["customers"] - 1
    assert after["raw_contacts"] == 1
    assert after["products"] == before["products"]  # no identifier column: untouched
    assert sum(before.values()) - sum(after.values()) == outcome.total
    for text in (email(PERSON), customer_id(PERSON), f"ACC-{PERSON}", "Person3@ShopMail"):
        assert not _bytes_hold(world.warehouse, text)
    con = duckdb.connect(str(world.warehouse), read_only=True)
    try:  # the view survived the rewrite, and reads the erased table
        rows = con.execute("select count(*) from customer_emails").fetchone()[0]
        assert rows == after["customers"]
        other = con.execute(
            "select count(*) from customer_identifiers where customer_id = ?",
            [customer_id(OTHER)],
        ).fetchone()[0]
        assert other == 6
    finally:
        con.close()
    assert eraser.scan(_person()).remaining == 0
    assert eraser.erase(_person()).total == 0


def test_warehouse_locked_by_a_run_gives_a_clear_error(world: StreamWorld) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', "
            "flush=True); time.sleep(60)",
            str(world.warehouse),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(ErasureStoreError, match="locked after 1s"):
            WarehouseEraser(world.home, wait_seconds=1).erase(_person())
    finally:
        holder.kill()
        holder.wait()
    assert WarehouseEraser(world.home).erase(_person()).removed["main.customers"] == 1


# --- decision log -----------------------------------------------------------------------------

DAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _decision(customer: str, at: datetime, placement: str) -> Decision:
    start = at.replace(hour=0, minute=0, second=0, microsecond=0)
    name = f"Name{customer}"
    return Decision(
        decision_id=decision_id(customer, placement, start),
        customer_id=customer,
        channel="email",
        placement=placement,
        policy_version="abc123def456",
        decided_at=at,
        expires_at=start + timedelta(days=1),
        send=True,
        reasons=(),
        theme=None,
        items=(
            DecisionItem(
                product_id="P1", sale_id=None, score=1.0, propensity=0.5, is_wildcard=False
            ),
        ),
        subject=f"Hi {name}",
        blocks={"intro": f"Dear {name}, write to {customer}@mail.test"},
        subject_masked="Hi there",
        blocks_masked={"intro": "Dear customer"},
        experiment=None,
        is_holdout=False,
    )


def _decision_log(home: Path) -> Path:
    """Two days of decisions on two placements for persons 0..5, outcomes and consents."""
    path = default_store_path(home)
    with DecisionStore.open(path) as store:
        for day in range(2):
            at = DAY + timedelta(days=day)
            for i in range(6):
                for placement in ("daily_email", "weekly_email"):
                    decision = store.deliver(
                        _decision(customer_id(i), at, placement),
                        caps=(),
                        customer_ids=[customer_id(i)],
                        now=at,
                        consent_required=False,
                    )
                    if i in (PERSON, OTHER % 6):
                        store.record_outcome(
                            decision.decision_id, "email", "open", at + timedelta(hours=1)
                        )
            store.record_consent(customer_id(PERSON), "sms", False, at, "preference_center")
            store.record_consent(customer_id(1), "sms", True, at, "preference_center")
        store.export(home / "lake" / "_decisions")
    return path


def _placements(path: Path) -> dict[str, int]:
    with DecisionStore.open(path) as store:
        return dict(
            store.conn.execute(
                "select placement, count(*) from deliveries group by placement"
            ).fetchall()
        )


def test_decisions_are_pseudonymized_and_still_counted(world: StreamWorld) -> None:
    path = _decision_log(world.home)
    out = world.home / "lake" / "_decisions"
    counts = _placements(path)
    exported = {t: read_export(out, t).num_rows for t in ("decisions", "deliveries", "outcomes")}
    eraser = DecisionsEraser(world.home)
    scanned = eraser.scan(_person())
    assert scanned.remaining > 0
    assert any("_decisions/deliveries" in w for w in scanned.where)

    outcome = eraser.erase(_person())

    alias = _person().pseudonym(customer_id(PERSON))
    assert alias is not None and alias.startswith(PSEUDONYM_PREFIX) and len(alias) == 7 + 16
    assert outcome.removed["choices pseudonymized"] == 4
    assert outcome.removed["deliveries pseudonymized"] == 4
    assert outcome.removed["outcomes pseudonymized"] == 4
    assert outcome.removed["consent_events pseudonymized"] == 2
    assert outcome.removed["export files rewritten"] > 0
    assert _placements(path) == counts  # counts by placement survive
    with DecisionStore.open(path) as store:
        conn = store.conn
        assert not conn.execute(
            "select count(*) from choices where customer_id = ?", [customer_id(PERSON)]
        ).fetchone()[0]
        subject, blocks = conn.execute(
            "select subject, blocks from choices where customer_id = ? limit 1", [alias]
        ).fetchone()
        assert subject == "Hi there" and "Dear customer" in blocks
        # others untouched, rendered text and all
        assert (
            conn.execute(
                "select subject from choices where customer_id = ? limit 1",
                [customer_id(OTHER % 6)],
            ).fetchone()[0]
            == f"Hi Name{customer_id(OTHER % 6)}"
        )
        # the log stays append-only for everyone else
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("update choices set theme = 'x'")
        # the same pseudonym's sends still count together (the cap ledger)
        assert (
            conn.execute(
                "select count(*) from deliveries where customer_id = ?", [alias]
            ).fetchone()[0]
            == 4
        )
    for text in (customer_id(PERSON), f"Name{customer_id(PERSON)}"):
        assert not _bytes_hold(path, text)
    # the export: rewritten, same row counts, the person only under the pseudonym
    for table, rows in exported.items():
        frame = read_export(out, table)
        assert frame.num_rows == rows
        ids = set(frame.column("customer_id").to_pylist())
        assert customer_id(PERSON) not in ids and alias in ids
    for file in out.rglob("*.parquet"):
        assert customer_id(PERSON).encode() not in file.read_bytes()
    with DecisionStore.open(path) as store:
        again = store.export(out)
    assert again.reason == "incremental"  # the rewritten manifest is trusted
    assert eraser.scan(_person()).remaining == 0
    second = eraser.erase(_person())
    assert second.total == 0
    assert _person().pseudonym(customer_id(PERSON)) == alias  # stable
    assert _person().pseudonym(customer_id(OTHER)) is None


def test_decisions_absent_when_there_is_no_log(tmp_path: Path) -> None:
    outcome = DecisionsEraser(tmp_path).erase(_person())
    assert outcome.absent and not default_store_path(tmp_path).exists()


# --- audit ------------------------------------------------------------------------------------


def _audit_line(customer: str, request: str) -> bytes:
    entry = {
        "time": "2026-03-02T09:00:00.000+00:00",
        "key": "support",
        "customer_id": customer,
        "fields": ["email", "phone"],
        "operation": "query Customer",
        "request_id": request,
        "snapshot_id": "s1",
    }
    return orjson.dumps(entry) + b"\n"


def test_audit_lines_keep_only_the_keyed_hash(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    folder.mkdir()
    path = folder / "pii-2026-03-02.jsonl"
    lines = [
        _audit_line(customer_id(PERSON), "r1"),
        _audit_line(customer_id(OTHER), "r2"),
        b'{"time": "2026-03-02", "customer_id": "cus_00',  # a torn line of someone else
        b"\n",
        _audit_line(customer_id(PERSON), "r3"),
    ]
    path.write_bytes(b"".join(lines))
    os.chmod(path, 0o600)
    eraser = AuditEraser(tmp_path)
    assert eraser.scan(_person()).remaining == 2

    outcome = eraser.erase(_person())

    assert outcome.removed == {"lines hashed": 2, "files rewritten": 1}
    rewritten = path.read_bytes().splitlines()
    assert len(rewritten) == 4
    entries = [orjson.loads(line) for line in rewritten if line.endswith(b"}")]
    hashed = [e for e in entries if e["customer_id"].startswith("kh1:")]
    assert [e["request_id"] for e in hashed] == ["r1", "r3"]
    assert all(e["customer_id"] in _person().hashes for e in hashed)
    assert hashed[0]["fields"] == ["email", "phone"]  # what was revealed stays on record
    assert customer_id(PERSON).encode() not in path.read_bytes()
    assert customer_id(OTHER).encode() in path.read_bytes()
    assert path.stat().st_mode & 0o777 == 0o600
    assert eraser.scan(_person()).remaining == 0
    assert eraser.erase(_person()).total == 0


def test_audit_rewrite_keeps_lines_appended_while_it_runs(tmp_path: Path) -> None:
    path = tmp_path / "pii-2026-03-02.jsonl"
    path.write_bytes(_audit_line(customer_id(PERSON), "r1") + _audit_line(customer_id(2), "r2"))
    writer = os.open(path, os.O_WRONLY | os.O_APPEND)  # an API process, appending
    eraser = AuditEraser(tmp_path, folder=tmp_path)
    inner = eraser._process(_person())
    calls = 0

    def process(line: bytes) -> tuple[bytes | None, bool]:
        nonlocal calls
        calls += 1
        if calls == 2:  # between the read and the rename, a request logs two more lines
            os.write(writer, _audit_line(customer_id(PERSON), "r3") + _audit_line("cus_9", "r4"))
        return inner(line)

    try:
        changed, late = _rewrite_lines(path, process)
    finally:
        os.close(writer)
    assert (changed, late) == (2, 2)
    requests = [orjson.loads(line)["request_id"] for line in path.read_bytes().splitlines()]
    assert requests == ["r1", "r2", "r3", "r4"]
    assert customer_id(PERSON).encode() not in path.read_bytes()


# --- exports and runs -------------------------------------------------------------------------


def _write_exports(home: Path) -> None:
    daily = home / "exports" / "daily_email"
    daily.mkdir(parents=True)
    (daily / "2026-03-02.csv").write_bytes(
        b"decision_id,customer_id,email,subject\n"
        + f'd1,{customer_id(PERSON)},{email(PERSON)},"Hi\nthere"\n'.encode()
        + f"d2,{customer_id(OTHER)},{email(OTHER)},Hello\n".encode()
        + f"d3,{customer_id(1)},{email(1)},Hello\n".encode()
    )
    pq.write_table(
        pa.table(
            {
                "decision_id": ["d1", "d2", "d3"],
                "customer_id": [customer_id(PERSON), customer_id(OTHER), customer_id(1)],
                "email": [email(PERSON).upper(), email(OTHER), email(1)],
            }
        ),
        daily / "2026-03-02.parquet",
    )
    webhook = home / "exports" / "webhook"
    webhook.mkdir()
    (webhook / "received.jsonl").write_bytes(
        b"".join(
            orjson.dumps({"to": {"email": email(i), "phone": phone(i)}, "n": i}) + b"\n"
            for i in (PERSON, OTHER, 1)
        )
    )
    run = home / "runs" / "run-1" / "identity"
    run.mkdir(parents=True)
    (run / "evaluation.json").write_text(
        json.dumps({"samples": [{"account_id": f"ACC-{PERSON}"}, {"account_id": "ACC-8"}]})
    )
    (run / "stats.json").write_text(json.dumps({"records": 10, "clusters": 4}))
    (run / "partial_parse.msgpack").write_bytes(b"\x00\x01binary without identifiers")


def test_exports_and_run_files_lose_the_persons_records(world: StreamWorld) -> None:
    _write_exports(world.home)
    eraser = ExportsEraser(world.home)
    scanned = eraser.scan(_person())
    assert scanned.remaining >= 4
    assert "runs/run-1/identity/evaluation.json" in scanned.where

    outcome = eraser.erase(_person())

    assert outcome.removed["files deleted"] == 1  # one JSON document naming them
    assert outcome.removed["files rewritten"] == 3
    assert outcome.removed["records dropped"] == 3
    daily = world.home / "exports" / "daily_email"
    csv = (daily / "2026-03-02.csv").read_text()
    assert csv.splitlines()[0] == "decision_id,customer_id,email,subject"
    assert [line.split(",")[0] for line in csv.splitlines()[1:]] == ["d2", "d3"]
    table = pq.read_table(daily / "2026-03-02.parquet")
    assert table.column("decision_id").to_pylist() == ["d2", "d3"]
    received = (world.home / "exports" / "webhook" / "received.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["n"] for line in received] == [OTHER, 1]
    assert not (world.home / "runs" / "run-1" / "identity" / "evaluation.json").exists()
    assert (world.home / "runs" / "run-1" / "identity" / "stats.json").exists()
    assert (world.home / "runs" / "run-1" / "identity" / "partial_parse.msgpack").exists()
    for file in (world.home / "exports").rglob("*"):
        if file.is_file():
            assert email(PERSON).encode() not in file.read_bytes().lower()
    assert eraser.scan(_person()).remaining == 0
    assert eraser.erase(_person()).total == 0


# --- Dagster storage --------------------------------------------------------------------------


def test_dagster_storage_is_scanned_never_rewritten(tmp_path: Path) -> None:
    storage = tmp_path / "dagster" / "storage"
    storage.mkdir(parents=True)
    conn = sqlite3.connect(storage / "index.db")
    conn.execute("create table event_logs (id integer primary key, event text)")
    conn.executemany(
        "insert into event_logs (event) values (?)",
        [
            (json.dumps({"metadata": {"preview": f"| {email(PERSON)} | {phone(PERSON)} |"}}),),
            (json.dumps({"metadata": {"preview": "| *** | *** |"}}),),
        ],
    )
    conn.commit()
    conn.close()
    (storage / "compute.log").write_text(f"loaded row for ACC-{PERSON}\nok\n")
    scanner = DagsterStorageScan(tmp_path, store_normalizer(tmp_path))
    before = (storage / "index.db").read_bytes()

    found = scanner.scan(_person())
    outcome = scanner.erase(_person())

    assert found.remaining == 2
    assert set(found.where) == {
        "dagster/storage/index.db:event_logs",
        "dagster/storage/compute.log",
    }
    assert outcome.total == 0 and "scan only" in outcome.notes[0]
    assert (storage / "index.db").read_bytes() == before
    assert scanner.scan(_person(OTHER)).remaining == 0
    assert DagsterStorageScan(tmp_path / "nothing").erase(_person()).absent


def test_scans_over_the_whole_list_count_every_person(world: StreamWorld) -> None:
    both = Suppression.of_identifiers(KEYRING, [*_identifiers(PERSON), *_identifiers(OTHER)])
    one = ServingEraser(world.home).scan(_person()).remaining
    assert ServingEraser(world.home).scan(both).remaining > one > 0


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path) -> Iterator[None]:
    yield
    leftovers = [p for p in tmp_path.rglob("*.erase-*")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (f"sent to  Person{PERSON}@ShopMail.COM today", True),
        (f"call (415) 555-{PERSON:04d} now", True),
        (f'{{"account": "ACC-{PERSON}."}}', True),
        (f"customer {customer_id(PERSON)}, next", True),
        (f"{email(OTHER)} {customer_id(OTHER)} ACC-{PERSON}0 " + "x" * 5_000, False),
        ("", False),
    ],
)
def test_the_fast_text_check_agrees_with_text_matches(text: str, named: bool) -> None:
    normalize = store_normalizer(Path("/nonexistent"))
    assert text_names(text, _person(), normalize) is named
    assert (_person().text_matches(text, normalize) > 0) is named


def test_a_damaged_export_file_is_rewritten_from_the_log(world: StreamWorld) -> None:
    path = _decision_log(world.home)
    out = world.home / "lake" / "_decisions"
    rows = read_export(out, "outcomes").num_rows
    damaged = sorted((out / "outcomes").glob("*.parquet"))[0]
    damaged.write_bytes(b"not parquet")
    eraser = DecisionsEraser(world.home)
    assert eraser.scan(_person()).remaining > 0

    eraser.erase(_person())

    assert read_export(out, "outcomes").num_rows == rows
    assert eraser.scan(_person()).remaining == 0
    with DecisionStore.open(path) as store:
        assert store.export(out).reason == "incremental"
