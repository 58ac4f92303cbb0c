"""Erasing a person from the batch stores: landing files, lake parts, quarantine, identity.

A small generated world is ingested and resolved for real; one person of its ground truth is
erased by their email, account ids and cookie ids (as keyed hashes only), and every store is
then searched for their plain values. Planted records add what the world lacks: a CSV record
whose quoted field spans two lines (the person's and another person's) and quarantined rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

import dagster_project.lib.erasure.lake as lake_module
from dagster_project.lib.config import LoadedConfig, load_config
from dagster_project.lib.erasure import LakeEraser, person_columns
from dagster_project.lib.erasure.lake import IDENTITY_ROWS, LAKE_ROWS, LANDING_LINES
from dagster_project.lib.generate import generate_world
from dagster_project.lib.ingest import ingest_source, read_lake, read_quarantine
from dagster_project.lib.ingest.lake import Manifest, part_name
from dagster_project.lib.workspace import Workspace
from identity import resolve, write_resolution
from privacy.keys import Keyring, PrivacyKey
from privacy.suppression import Suppression
from tests.support.ingest import ingest, setup, write_landing

AT = datetime(2024, 6, 1, 12, tzinfo=UTC)
#: Sources holding people's data (the catalogue and offers are left out: faster, nothing personal).
PERSON_SOURCES = (
    "crm",
    "shop_accounts",
    "web_events",
    "orders",
    "order_lines",
    "email_events",
    "realtime_events",
)
PLANTED_KEY = "C9900001"
OTHER_KEY = "C9900002"
OTHER_EMAIL = "planted.other.person@example.org"
BAD_ACCOUNT = "A999000001"


@dataclass(frozen=True)
class World:
    """A built home (copy it before changing it) and the person to erase."""

    home: Path
    originals: Path
    email: str
    accounts: tuple[str, ...]
    cookies: tuple[str, ...]
    truth_ids: frozenset[tuple[str, str]]
    orders: tuple[str, ...]

    @property
    def values(self) -> list[str]:
        return [self.email, *self.accounts, *self.cookies]


def _ingest_all(loaded: LoadedConfig, workspace: Workspace, **kwargs: object) -> dict[str, dict]:
    summaries = {}
    for name in PERSON_SOURCES:
        report = ingest_source(
            loaded, loaded.config.source(name), workspace, ingested_at=AT, **kwargs
        )
        assert report.is_balanced(), report.summary()
        summaries[name] = report.summary()
    return summaries


def _resolve(loaded: LoadedConfig, workspace: Workspace) -> None:
    from dagster_project.defs.identity.assets import identity_settings, load_identity_inputs

    settings = identity_settings(loaded)
    collected = load_identity_inputs(loaded, workspace, settings, None)
    resolution = resolve(
        collected.records,
        collected.identifiers,
        settings,
        previous=None,
        model=None,
        run_id="test",
        now=AT,
    )
    write_resolution(resolution, workspace.identity)


def _plant(home: Path, email: str, account: str) -> None:
    """A multi-line CSV record of the person and of someone else; quarantined rows of theirs."""
    crm = home / "landing" / "crm" / "crm_customers.csv"
    text = crm.read_text(encoding="utf-8")
    header = text.splitlines()[0].split(",")

    def row(key: str, mail: str, street: str, signup: str = "2020-01-02") -> str:
        values = dict.fromkeys(header, "")
        values.update(
            customer_number=key,
            first_name="Pat",
            last_name="Planted",
            email=mail,
            street=street,
            city="Austin",
            state="TX",
            country="US",
            signup_date=signup,
        )
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow([values[h] for h in header])
        return out.getvalue()

    planted = row(PLANTED_KEY, email, "12 Main St\nApt 4")  # the person's, over two lines
    planted += row(OTHER_KEY, OTHER_EMAIL, "9 Elm St\nUnit 7")  # someone else's
    planted += row("C9900003", email, "1 Bad Date Rd", signup="not-a-date")  # quarantined
    crm.write_text(text + planted, encoding="utf-8")
    shop = home / "landing" / "shop" / "accounts.jsonl"
    bad = {"account_id": BAD_ACCOUNT, "email": email, "created_at": "yesterday-ish"}
    with shop.open("ab") as handle:
        handle.write(orjson.dumps(bad) + b"\n")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("erasure_world")
    generated = root / "world"
    generate_world(generated, 150, 11, end=date(2024, 6, 1), days=365)
    home = root / "home"
    home.mkdir()
    shutil.copytree(generated / "landing", home / "landing")
    shutil.copy(generated / "cdp.yml", home / "cdp.yml")
    loaded = load_config(home / "cdp.yml")
    workspace = Workspace(home).ensure()
    # The person: a CRM record, shop accounts with orders, web events with cookies.
    truth = pq.read_table(generated / "ground_truth" / "records.parquet").to_pylist()
    persons = {
        p["person_id"]: p
        for p in pq.read_table(generated / "ground_truth" / "persons.parquet").to_pylist()
    }
    by_person: dict[str, set[tuple[str, str]]] = {}
    for record in truth:
        by_person.setdefault(record["person_id"], set()).add(
            (record["source"], record["record_id"])
        )
    orders_csv = list(csv.DictReader((home / "landing" / "orders" / "orders.csv").open()))
    chosen = None
    for person_id, records in sorted(by_person.items()):
        accounts = sorted(r for s, r in records if s == "shop_accounts")
        cookies = sorted(r.split(":", 1)[1] for s, r in records if r.startswith("cookie:"))
        orders = sorted(o["order_id"] for o in orders_csv if o["account_id"] in accounts)
        if accounts and cookies and orders and any(s == "crm" for s, _ in records):
            chosen = (person_id, accounts, cookies, orders)
            break
    assert chosen is not None, "the world has no person with every kind of record"
    person_id, accounts, cookies, orders = chosen
    email = persons[person_id]["email"]
    _plant(home, email, accounts[0])
    originals = root / "originals"
    shutil.copytree(home / "landing", originals)
    _ingest_all(loaded, workspace)
    _resolve(loaded, workspace)
    return World(
        home,
        originals,
        email,
        tuple(accounts),
        tuple(cookies),
        frozenset(by_person[person_id]),
        tuple(orders),
    )


@pytest.fixture
def home(world: World, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(world.home, copy)
    return copy


def _keyring() -> Keyring:
    return Keyring((PrivacyKey(bytes(range(32))),))


def _person(world: World, keyring: Keyring) -> dict[str, str]:
    ids = [("email", world.email)]
    ids += [("account_id", a) for a in world.accounts]
    ids += [("cookie_id", c) for c in world.cookies]
    ids += [("account_id", BAD_ACCOUNT)]
    return {keyring.hash(kind, value): kind for kind, value in ids}


def _eraser(home: Path) -> LakeEraser:
    return LakeEraser(load_config(home / "cdp.yml"), Workspace(home))


def _full_person(world: World, home: Path) -> Suppression:
    keyring = _keyring()
    hashes = _person(world, keyring)
    related = _eraser(home).related(Suppression.of(keyring, hashes))
    return Suppression.of(keyring, {**hashes, **related})


def _parquet_text(path: Path) -> str:
    return orjson.dumps(pq.read_table(path).to_pylist(), default=str).decode()


def _leaks(home: Path, values: list[str]) -> list[str]:
    """Files under landing/, lake/ and quarantine/ holding one of the values (as text)."""
    found = []
    for folder in ("landing", "lake", "quarantine"):
        for path in sorted((home / folder).rglob("*")):
            if not path.is_file():
                continue
            text = (
                _parquet_text(path)
                if path.suffix == ".parquet"
                else path.read_text(errors="replace")
            )
            found += [f"{path.relative_to(home)}: {v}" for v in values if v in text]
    return found


def _record_ids(home: Path, source: str) -> set[str]:
    return set(read_lake(Workspace(home), source)["record_id"].to_pylist())


def _names(row: dict[str, object], world: World) -> bool:
    """Whether a lake row names the person by a plain value."""
    email = str(row.get("email") or "").strip().lower()
    return (
        email == world.email.lower()
        or row.get("account_id") in (*world.accounts, BAD_ACCOUNT)
        or row.get("cookie_id") in world.cookies
        or row.get("order_id") in world.orders
    )


def test_erase_removes_the_person_from_every_batch_store(world: World, home: Path) -> None:
    person = _full_person(world, home)
    assert len(person) > len(_person(world, _keyring())), "their orders' ids are related"
    assert _leaks(home, world.values), "the person is really in the stores before"
    eraser = _eraser(home)
    before = eraser.scan(person)
    assert before.remaining > 0
    assert any(w.startswith("landing/") for w in before.where)
    assert any(w.startswith("lake/identity/") for w in before.where)
    lake_before = {s: read_lake(Workspace(home), s).to_pylist() for s in PERSON_SOURCES}
    identity_map = pq.read_table(home / "lake" / "identity" / "identity_map.parquet").to_pylist()
    customers = {
        r["customer_id"]
        for r in identity_map
        if (r["source"], r["record_id"]) in {("shop_accounts", a) for a in world.accounts}
    }
    assert customers

    outcome = eraser.erase(person)

    assert outcome.removed[LANDING_LINES] > 0 and outcome.removed[LAKE_ROWS] > 0
    assert outcome.removed[IDENTITY_ROWS] > 0
    assert _leaks(home, world.values) == []
    assert eraser.scan(person).remaining == 0
    assert eraser.erase(person).total == 0  # idempotent

    # Nothing of anyone else went: the rows removed are exactly those naming the person (by a
    # plain comparison here) and the lines of their orders.
    for source in PERSON_SOURCES:
        rows = lake_before[source]
        expected = {r["record_id"] for r in rows if _names(r, world)}
        removed = {r["record_id"] for r in rows} - _record_ids(home, source)
        assert removed == expected, source
    lines = read_lake(Workspace(home), "order_lines")["order_id"].to_pylist()
    assert not set(world.orders) & set(lines)
    landing_lines = (home / "landing" / "orders" / "order_lines.csv").read_text()
    assert not any(order in landing_lines for order in world.orders)
    # Identity's outputs hold none of the person's records.
    identity_map = pq.read_table(home / "lake" / "identity" / "identity_map.parquet").to_pylist()
    held = {(r["source"], r["record_id"]) for r in identity_map}
    assert ("crm", PLANTED_KEY) not in held
    assert all(("shop_accounts", a) not in held for a in world.accounts)
    assert not {c for c in customers if c} & {r["customer_id"] for r in identity_map}


def test_manifest_counts_balance_and_name_the_rewritten_files(world: World, home: Path) -> None:
    _eraser(home).erase(_full_person(world, home))
    landing = home / "landing"
    for name in PERSON_SOURCES:
        manifest = Manifest.load(home / "lake" / name, name)
        for entry in manifest.files:
            assert entry["rows_read"] == (
                entry["rows_ingested"]
                + entry["rows_quarantined"]
                + entry["rows_duplicate"]
                + entry.get("rows_suppressed", 0)
            ), entry
            current = (landing / entry["path"]).read_bytes()
            assert entry["sha256"] == hashlib.sha256(current).hexdigest(), entry["path"]
        lake_rows = read_lake(Workspace(home), name).num_rows
        assert lake_rows == sum(e["rows_ingested"] for e in manifest.files)
        quarantined = read_quarantine(Workspace(home), name).num_rows
        assert quarantined == sum(e["rows_quarantined"] for e in manifest.files)
    crm = Manifest.load(home / "lake" / "crm", "crm").files[0]
    assert crm["erasure"]["previous_sha256"] and crm["rows_suppressed"] >= 3


def test_a_multi_line_csv_record_goes_whole_and_others_stay(world: World, home: Path) -> None:
    crm = home / "landing" / "crm" / "crm_customers.csv"
    records_before = list(csv.DictReader(io.StringIO(crm.read_text(), newline="")))
    _eraser(home).erase(_full_person(world, home))
    text = crm.read_text()
    assert "12 Main St" not in text and "Apt 4" not in text
    assert '"9 Elm St\nUnit 7"' in text
    records = list(csv.DictReader(io.StringIO(text, newline="")))
    assert text.splitlines()[0].startswith("customer_number,")
    gone = {r["customer_number"] for r in records_before} - {r["customer_number"] for r in records}
    assert {PLANTED_KEY, "C9900003"} <= gone
    assert OTHER_KEY not in gone
    assert all(r["email"] != world.email for r in records)
    # Lineage follows the rewritten file: each lake row's line is where its record starts now.
    starts = _record_starts(text)
    lake = read_lake(Workspace(home), "crm").to_pylist()
    assert all(starts[row["record_id"]] == row["_source_line"] for row in lake)


def _record_starts(text: str) -> dict[str, int]:
    lines = io.StringIO(text, newline="").readlines()
    starts: dict[str, int] = {}
    number = 2
    reader = csv.reader(iter(lines[1:]))
    for values in reader:
        starts[values[0]] = number
        number = 2 + reader.line_num
    return starts


def test_quarantined_rows_of_the_person_are_erased(world: World, home: Path) -> None:
    workspace = Workspace(home)
    raw_before = " ".join(read_quarantine(workspace, "shop_accounts")["raw"].to_pylist())
    assert BAD_ACCOUNT in raw_before
    crm_before = read_quarantine(workspace, "crm").num_rows
    outcome = _eraser(home).erase(_full_person(world, home))
    assert outcome.removed["quarantine rows"] >= 2
    assert BAD_ACCOUNT not in " ".join(
        read_quarantine(workspace, "shop_accounts")["raw"].to_pylist()
    )
    assert read_quarantine(workspace, "crm").num_rows == crm_before - 1


def test_reingest_of_the_original_files_brings_nothing_back(world: World, home: Path) -> None:
    person = _full_person(world, home)
    _eraser(home).erase(person)
    loaded = load_config(home / "cdp.yml")
    workspace = Workspace(home)
    counts = {s: read_lake(workspace, s).num_rows for s in PERSON_SOURCES}
    # The same files delivered again (same names, and a copy under a new name): recognised.
    shutil.rmtree(home / "landing")
    shutil.copytree(world.originals, home / "landing")
    shutil.copy(
        world.originals / "crm" / "crm_customers.csv", home / "landing" / "crm" / "again.csv"
    )
    summaries = _ingest_all(loaded, workspace, suppression=person)
    assert all(s["rows_ingested"] == 0 for s in summaries.values()), summaries
    assert {s: read_lake(workspace, s).num_rows for s in PERSON_SOURCES} == counts
    # skipped, and the re-delivered landing files lose the person's records too
    assert summaries["crm"]["rows_suppressed"] > 0
    assert _leaks(home, world.values) == []
    assert _eraser(home).scan(person).remaining == 0
    quiet = _ingest_all(loaded, workspace, suppression=person)
    assert all(s["rows_ingested"] == s["rows_suppressed"] == 0 for s in quiet.values()), quiet
    # A fresh home given the original files: the person's records are counted and dropped.
    fresh = home.parent / "fresh"
    fresh.mkdir()
    shutil.copytree(world.originals, fresh / "landing")
    shutil.copy(home / "cdp.yml", fresh / "cdp.yml")
    fresh_space = Workspace(fresh).ensure()
    summaries = _ingest_all(load_config(fresh / "cdp.yml"), fresh_space, suppression=person)
    assert sum(s["rows_suppressed"] for s in summaries.values()) > 0
    assert summaries["crm"]["rows_suppressed"] == 3  # two planted and the world's record
    assert _leaks(fresh, world.values) == []
    assert {s: read_lake(fresh_space, s).num_rows for s in PERSON_SOURCES} == counts
    # The originals, delivered again to the fresh home, are known by their part's name.
    shutil.copytree(world.originals, fresh / "landing", dirs_exist_ok=True)
    again = _ingest_all(load_config(fresh / "cdp.yml"), fresh_space, suppression=person)
    assert all(s["files_ingested"] == 0 for s in again.values())
    crm_sha = Manifest.load(fresh / "lake" / "crm", "crm").files[0]
    assert (fresh / "lake" / "crm" / crm_sha["part"]).name == part_name(
        crm_sha["erasure"]["previous_sha256"][0]
    )


def test_an_empty_list_ingests_exactly_as_before(world: World, tmp_path: Path) -> None:
    def fresh(name: str) -> tuple[LoadedConfig, Workspace]:
        folder = tmp_path / name
        folder.mkdir()
        shutil.copytree(world.originals, folder / "landing")
        shutil.copy(world.home / "cdp.yml", folder / "cdp.yml")
        return load_config(folder / "cdp.yml"), Workspace(folder).ensure()

    plain = _ingest_all(*fresh("plain"))
    empty = _ingest_all(*fresh("empty"), suppression=Suppression.of(_keyring(), {}))
    assert plain == empty
    assert all(s["rows_suppressed"] == 0 for s in empty.values())
    for path in sorted((tmp_path / "empty" / "landing").rglob("*.*")):
        original = world.originals / path.relative_to(tmp_path / "empty" / "landing")
        assert path.read_bytes() == original.read_bytes()


def test_person_columns_name_identifiers_and_order_ids(world: World) -> None:
    config = load_config(world.home / "cdp.yml").config
    assert person_columns(config.source("crm")) == {
        "email": "email",
        "phone": "phone",
        "loyalty_id": "loyalty_id",
    }
    assert person_columns(config.source("order_lines")) == {"order_id": "order_id"}
    assert person_columns(config.source("web_events")) == {
        "cookie_id": "cookie_id",
        "account_id": "account_id",
        "order_id": "order_id",
    }
    assert person_columns(config.source("products")) == {}


MEMBERS = {
    "name": "members",
    "kind": "people",
    "format": "csv",
    "path": "members/*.csv",
    "record_key": "id",
    "mapping": {"email": "email", "first_name": "name"},
    "identifiers": {"account_id": "acct"},
}
HEADER = "id,name,email,acct\n"
ERASED_ROW = '2,"Gone\nPerson",gone@example.org,A2\n'


def test_duplicates_and_files_not_ingested_yet_are_read_and_cleaned(tmp_path: Path) -> None:
    first = HEADER + "1,Ann,ann@example.org,A1\n" + ERASED_ROW
    second = HEADER + ERASED_ROW + "3,Bob,bob@example.org,A3\n"  # the erased row again
    loaded, source, workspace = setup(
        tmp_path, MEMBERS, {"members/a.csv": first, "members/b.csv": second}
    )
    ingest(loaded, source, workspace)
    write_landing(workspace.home, {"members/c.csv": HEADER + ERASED_ROW})  # not ingested yet
    keyring = _keyring()
    person = Suppression.of(keyring, {keyring.hash("email", "gone@example.org"): "email"})
    eraser = LakeEraser(loaded, workspace)
    assert eraser.scan(person).remaining == 7  # a part row and three records of two lines

    outcome = eraser.erase(person)

    assert outcome.removed[LANDING_LINES] == 6 and outcome.removed[LAKE_ROWS] == 1
    landing = workspace.home / "landing" / "members"
    assert (landing / "a.csv").read_text() == HEADER + "1,Ann,ann@example.org,A1\n"
    assert (landing / "b.csv").read_text() == HEADER + "3,Bob,bob@example.org,A3\n"
    assert (landing / "c.csv").read_text() == HEADER
    entries = {
        e["path"]: e for e in Manifest.load(workspace.source_lake("members"), "members").files
    }
    assert (
        entries["members/b.csv"]["rows_duplicate"],
        entries["members/b.csv"]["rows_suppressed"],
    ) == (0, 1)
    assert entries["members/a.csv"]["rows_suppressed"] == 1
    assert read_lake(workspace, "members")["record_id"].to_pylist() == ["1", "3"]
    assert eraser.scan(person).remaining == 0
    assert eraser.erase(person).total == 0


def test_an_interrupted_erasure_is_finished_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = HEADER + "1,Ann,ann@example.org,A1\n" + ERASED_ROW + "3,Bob,bob@example.org,A3\n"
    loaded, source, workspace = setup(tmp_path, MEMBERS, {"members/a.csv": first})
    ingest(loaded, source, workspace)
    keyring = _keyring()
    person = Suppression.of(keyring, {keyring.hash("account_id", "A2"): "account_id"})

    def crash(path: Path, data: bytes) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:  # parts and manifest written, the landing file not
        patch.setattr(lake_module, "replace_file", crash)
        with pytest.raises(OSError):
            LakeEraser(loaded, workspace).erase(person)
    eraser = LakeEraser(loaded, workspace)
    assert eraser.scan(person).remaining == 2  # the landing record's two lines

    eraser.erase(person)

    landing = workspace.home / "landing" / "members" / "a.csv"
    assert landing.read_text() == HEADER + "1,Ann,ann@example.org,A1\n3,Bob,bob@example.org,A3\n"
    entry = Manifest.load(workspace.source_lake("members"), "members").files[0]
    assert entry["sha256"] == hashlib.sha256(landing.read_bytes()).hexdigest()
    assert (entry["rows_read"], entry["rows_ingested"], entry["rows_suppressed"]) == (3, 2, 1)
    lake = read_lake(workspace, "members").to_pylist()
    assert [(r["record_id"], r["_source_line"]) for r in lake] == [("1", 2), ("3", 3)]
    assert eraser.scan(person).remaining == 0
    # Re-ingesting finds the file known (rewritten) and adds nothing.
    again = ingest_source(loaded, source, workspace, ingested_at=AT, suppression=person)
    assert again.rows_read == 0
