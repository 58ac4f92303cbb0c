"""The serving marts (lookup, identity explanations, id history, aliases) built by real dbt.

The tiny world gets extra identity outputs written as identity would write them: edges, an id
history, alias chains (one merging after the as-of date, one looping back on itself), a value
two customers share and a case variant of an account id. dbt builds it as of 2025-06-30 and as
of 2025-07-31; the first build is also published and served, to show a customer merged after
the as-of date still separate in the snapshot built as of before.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_project.lib.publish import publish_snapshot
from dagster_project.lib.workspace import Workspace
from snapshots import read_current
from tests.support.dbt_tiny_world import TinyWorld, build_tiny_world, run_dbt, ts

pytestmark = pytest.mark.slow

EXTRA_VARS = {"affinity_min_pair_count": 1}
LATER = date(2025, 7, 31)
SERVING_MARTS = (
    "identifier_lookup",
    "identity_records",
    "identity_evidence",
    "customer_id_history",
    "customer_aliases",
)

#: alias -> (survivor as identity wrote it, created_at)
ALIASES = {
    "cus_old": ("cus_a", "2025-03-01 00:00"),
    "cus_older": ("cus_old", "2025-02-01 00:00"),  # a chain: older -> old -> cus_a
    "cus_loop1": ("cus_loop2", "2025-04-01 00:00"),  # a cycle: loop1 -> loop2 -> loop1
    "cus_loop2": ("cus_loop1", "2025-04-01 00:00"),
    "cus_tail": ("cus_loop1", "2025-04-01 00:00"),  # runs into the cycle
    "cus_late": ("cus_a", "2025-07-05 00:00"),  # merged after the as-of date
}
HISTORY = [
    ("2024-01-01 00:00", "run0", "created", "cus_a", None),
    ("2025-03-01 00:00", "run1", "merged", "cus_a", "cus_old"),
    ("2025-07-05 00:00", "run3", "merged", "cus_a", "cus_late"),
]
#: record_uid_l, record_uid_r, rule, is_accepted (rejected_reason when refused)
EDGES = [
    ("crm:C1", "shop_accounts:A1", "same_email", None),
    ("shop_accounts:A1", "web_events:cookie:k1", "same_account_id", None),
    ("crm:C1", "crm:C3", "same_phone", "max_distinct_names_per_phone"),
    ("shop_accounts:A9", "shop_accounts:A9x", "same_email", None),  # A9x is in no identity map
]


def _append(path: Path, rows: dict[str, list[Any]]) -> None:
    table = pq.read_table(path)
    extra = pa.table(rows, schema=table.schema)
    pq.write_table(pa.concat_tables([table, extra]), path)


def _extend_identity(world: TinyWorld) -> None:
    identity = world.workspace.identity
    resolved = ts("2025-07-10 00:00")
    _append(
        identity / "identity_map.parquet",
        {
            "record_uid": ["shop_accounts:A9"],
            "source": ["shop_accounts"],
            "record_id": ["A9"],
            "customer_id": ["cus_late"],
            "cluster_size": [1],
            "resolved_at": [resolved],
        },
    )
    extra_identifiers = [
        # cus_late's account, and an identifier it was first seen with after the as-of date
        ("shop_accounts:A9", "cus_late", "account_id", "A9", "2024-01-01 00:00"),
        ("shop_accounts:A9", "cus_late", "loyalty_id", "L9", "2025-07-02 00:00"),
        # a phone on one record of cus_a (+1 below) and two of cus_c: cus_c owns it
        ("crm:C3", "cus_c", "phone", "+16175550199", "2024-01-01 00:00"),
        ("email_events:email:carol@example.com", "cus_c", "phone", "+16175550199", "2024-01-01"),
        ("crm:C1", "cus_a", "phone", "+16175550199", "2024-01-01 00:00"),
        # the account id A1 written in lower case on cus_f's record: one key with cus_a's A1
        ("shop_accounts:A6", "cus_f", "account_id", "a1", "2024-01-01 00:00"),
    ]
    columns = pq.read_schema(identity / "identity_identifiers.parquet").names
    rows: dict[str, list[Any]] = {name: [] for name in columns}
    for uid, customer, kind, value, first_seen in extra_identifiers:
        row = {
            "record_uid": uid,
            "customer_id": customer,
            "identifier_type": kind,
            "identifier_value": value,
            "source": uid.split(":")[0],
            "first_seen_at": datetime.fromisoformat(first_seen).replace(tzinfo=UTC),
            "last_seen_at": resolved,
            "is_shared": False,
        }
        for name in columns:
            rows[name].append(row.get(name))
    _append(identity / "identity_identifiers.parquet", rows)
    pq.write_table(
        pa.table(
            {
                "alias_customer_id": list(ALIASES),
                "customer_id": [target for target, _ in ALIASES.values()],
                "created_at": pa.array(
                    [ts(at) for _, at in ALIASES.values()], pa.timestamp("us", tz="UTC")
                ),
                "cause": ["evidence: same_email"] * len(ALIASES),
            }
        ),
        identity / "customer_aliases.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "occurred_at": pa.array([ts(r[0]) for r in HISTORY], pa.timestamp("us", tz="UTC")),
                "run_id": [r[1] for r in HISTORY],
                "event_type": [r[2] for r in HISTORY],
                "customer_id": [r[3] for r in HISTORY],
                "related_customer_id": pa.array([r[4] for r in HISTORY], pa.string()),
                "cause": ["evidence: same_email"] * len(HISTORY),
            }
        ),
        identity / "customer_id_history.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "record_uid_l": [e[0] for e in EDGES],
                "record_uid_r": [e[1] for e in EDGES],
                "evidence_type": ["rule"] * len(EDGES),
                "rule": [e[2] for e in EDGES],
                "identifier_type": [e[2].removeprefix("same_") for e in EDGES],
                "match_probability": [1.0] * len(EDGES),
                "match_weight": pa.array([None] * len(EDGES), pa.float64()),
                "details": ['{"value":"***"}'] * len(EDGES),
                "is_accepted": [e[3] is None for e in EDGES],
                "rejected_reason": pa.array([e[3] for e in EDGES], pa.string()),
                "run_id": ["run3"] * len(EDGES),
            }
        ),
        identity / "identity_edges.parquet",
    )


def _build(world: TinyWorld, as_of: date) -> None:
    result = run_dbt(world, ["build"], as_of=as_of, extra_vars=EXTRA_VARS)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    warned = [line for line in result.stdout.splitlines() if " WARN " in line]
    assert not [line for line in warned if any(m in line for m in SERVING_MARTS)], warned


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TinyWorld]:
    """The extended tiny world built as of 2025-06-30 (and published) and as of 2025-07-31."""
    built: dict[str, TinyWorld] = {}
    for label, as_of in (("as_of", None), ("later", LATER)):
        world = build_tiny_world(tmp_path_factory.mktemp(f"serving_{label}"))
        _extend_identity(world)
        _build(world, as_of or world.as_of)
        built[label] = world
    first = built["as_of"].workspace
    publish_snapshot(first.warehouse, first.serving, as_of=built["as_of"].as_of)
    return built


@pytest.fixture
def warehouse(worlds: dict[str, TinyWorld]) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(worlds["as_of"].workspace.warehouse), read_only=True)
    connection.execute("set TimeZone = 'UTC'")
    yield connection
    connection.close()


@pytest.fixture
def later(worlds: dict[str, TinyWorld]) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(worlds["later"].workspace.warehouse), read_only=True)
    connection.execute("set TimeZone = 'UTC'")
    yield connection
    connection.close()


def _pairs(connection: duckdb.DuckDBPyConnection, sql: str) -> dict[Any, Any]:
    return {row[0]: row[1] for row in connection.execute(sql).fetchall()}


def test_the_lookup_follows_the_one_ownership_rule(warehouse: duckdb.DuckDBPyConnection) -> None:
    """identifier_lookup and int_identifiers_deduplicated (what rows resolve by) agree on every
    identifier; shared and case-variant values go to the customer the marts credit."""
    disagreements = warehouse.execute(
        """
        select l.identifier_type, l.identifier_value, l.customer_id, o.customer_id
        from identifier_lookup as l
        full outer join int_identifiers_deduplicated as o
            on o.identifier_type = l.identifier_type
            and o.identifier_key = lower(trim(l.identifier_value))
        where l.customer_id is distinct from o.customer_id
            or l.customer_count is distinct from o.claimant_count
        """
    ).fetchall()
    assert disagreements == []
    lookup = {
        (t, v): (c, n)
        for t, v, c, n in warehouse.execute("select * from identifier_lookup").fetchall()
    }
    # two records of cus_c carry the phone, one of cus_a: cus_c owns it, two customers share it
    assert lookup[("phone", "+16175550199")] == ("cus_c", 2)
    # 'a1' and 'A1' are one key: one record each, same last_seen, so the smaller id (cus_a)
    # owns both spellings, exactly as a row carrying either resolves
    assert lookup[("account_id", "A1")] == ("cus_a", 2)
    assert lookup[("account_id", "a1")] == ("cus_a", 2)
    assert lookup[("account_id", "A2")] == ("cus_b", 1)  # two records, one customer
    # first seen after the as-of date: not an identifier yet
    assert ("loyalty_id", "L9") not in lookup
    # retired ids are looked up through customer_aliases, not here
    assert not [key for key in lookup if key[0] == "alias_customer_id"]
    orders = _pairs(warehouse, "select order_key, customer_id from int_orders_resolved")
    assert orders["orders:O1"] == lookup[("account_id", "A1")][0]


def test_a_second_ownership_rule_fails_the_build(
    worlds: dict[str, TinyWorld], tmp_path: Path
) -> None:
    """The dbt test guarding the one rule bites: a lookup that disagrees with the owner the
    marts resolve rows to (here: the exact value's own customer) fails it."""
    source = worlds["later"]
    home = tmp_path / "home"
    shutil.copytree(source.workspace.home, home)
    world = TinyWorld(workspace=Workspace(home), config=source.config, as_of=LATER)
    con = duckdb.connect(str(world.workspace.warehouse))
    con.execute("update identifier_lookup set customer_id = 'cus_f' where identifier_value = 'a1'")
    con.close()
    test = "assert_identifier_lookup_follows_ownership"
    result = run_dbt(world, ["test", "--select", test], as_of=LATER, extra_vars=EXTRA_VARS)
    assert result.returncode == 1, result.stdout[-3000:]
    assert f"Failure in test {test}" in result.stdout


def test_alias_chains_resolve_and_cycles_stop(
    warehouse: duckdb.DuckDBPyConnection, later: duckdb.DuckDBPyConnection
) -> None:
    as_of = _pairs(warehouse, "select alias_customer_id, customer_id from customer_aliases")
    # older -> old -> cus_a; loop1 -> loop2 -> loop1 and tail -> loop1 -> ... name no survivor
    assert as_of == {"cus_old": "cus_a", "cus_older": "cus_a"}
    assert _pairs(later, "select alias_customer_id, customer_id from customer_aliases") == {
        **as_of,
        "cus_late": "cus_a",  # merged after the first build's as-of date
    }
    # customer_identifiers lists the retired ids under the survivor
    retired = warehouse.execute(
        "select identifier_value, customer_id from customer_identifiers "
        "where identifier_type = 'alias_customer_id' order by 1"
    ).fetchall()
    assert retired == [("cus_old", "cus_a"), ("cus_older", "cus_a")]


def test_as_of_hides_identity_rows_after_the_date(
    warehouse: duckdb.DuckDBPyConnection, later: duckdb.DuckDBPyConnection
) -> None:
    history = warehouse.execute(
        "select event_number, event_type, related_customer_id from customer_id_history "
        "order by event_number"
    ).fetchall()
    assert history == [(0, "created", None), (1, "merged", "cus_old")]
    assert later.execute("select count(*) from customer_id_history").fetchone()[0] == 3
    assert later.execute(
        "select count(*) from identifier_lookup where identifier_value = 'L9'"
    ).fetchone() == (1,)
    # the records are those of the identity map the customers mart counts, in both builds
    for connection in (warehouse, later):
        records = _pairs(connection, "select record_uid, customer_id from identity_records")
        customers = {
            r[0] for r in connection.execute("select customer_id from customers").fetchall()
        }
        assert set(records.values()) == customers
        assert records["shop_accounts:A9"] == "cus_late"


def test_evidence_lists_each_link_from_both_records(warehouse: duckdb.DuckDBPyConnection) -> None:
    evidence = warehouse.execute(
        "select record_uid, other_record_uid, customer_id, other_customer_id, other_source, "
        "rule, is_accepted from identity_evidence order by all"
    ).fetchall()
    c1, c3, a1, k1 = "crm:C1", "crm:C3", "shop_accounts:A1", "web_events:cookie:k1"
    assert evidence == [
        (c1, c3, "cus_a", "cus_c", "crm", "same_phone", False),  # refused by a guard
        (c1, a1, "cus_a", "cus_a", "shop_accounts", "same_email", True),
        (c3, c1, "cus_c", "cus_a", "crm", "same_phone", False),
        (a1, c1, "cus_a", "cus_a", "crm", "same_email", True),
        (a1, k1, "cus_a", "cus_a", "web_events", "same_account_id", True),
        # the other end is in no identity map: the link is still explained, its customer unknown
        ("shop_accounts:A9", "shop_accounts:A9x", "cus_late", None, None, "same_email", True),
        (k1, a1, "cus_a", "cus_a", "shop_accounts", "same_account_id", True),
    ]
    reasons = warehouse.execute(
        "select distinct rejected_reason from identity_evidence where not is_accepted"
    ).fetchall()
    assert reasons == [("max_distinct_names_per_phone",)]


def test_a_customer_merged_after_as_of_is_still_separate_in_the_snapshot(
    worlds: dict[str, TinyWorld], tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.security import create_key
    from api.settings import ApiSettings

    workspace = worlds["as_of"].workspace
    assert read_current(workspace.serving) is not None
    home = tmp_path / "home"
    home.mkdir()
    shutil.copytree(workspace.serving, home / "serving")
    key = create_key(home / "api_keys.yml", "test", ["admin"])
    query = """query($id: ID!, $value: String!) {
      byId: customer(id: $id) { customerId identity { records { recordId } } }
      retired: customer(lookup: {type: "alias_customer_id", value: $value}) { customerId } }"""
    settings = ApiSettings(home=home, api_audit_dir=tmp_path / "audit")
    with TestClient(create_app(settings)) as client:
        body = client.post(
            "/graphql",
            json={"query": query, "variables": {"id": "cus_late", "value": "cus_late"}},
            headers={"Authorization": f"Bearer {key}"},
        ).json()
        assert "errors" not in body, body
        assert body["data"] == {
            "byId": {"customerId": "cus_late", "identity": {"records": [{"recordId": "A9"}]}},
            "retired": None,
        }
        chain = client.post(
            "/graphql",
            json={"query": query, "variables": {"id": "cus_older", "value": "cus_older"}},
            headers={"Authorization": f"Bearer {key}"},
        ).json()
        assert chain["data"]["byId"]["customerId"] == "cus_a"
        assert chain["data"]["retired"] == {"customerId": "cus_a"}
