"""A small warehouse with the marts' contract schemas, plus identity Parquet, for API tests.

The tables are created from the contracts under ``dbt/models/marts/`` (names and data types,
every YAML, the serving marts included), so a contract change shows up here without editing
this file; the rows are constructed so every expected answer is known: customer ``i`` has email
``person<i>@shopmail.com``, phone ``+1415555<i:04d>``, account ``ACC-<i>``, loyalty
``L<i:06d>`` and cookie ``ck_<i>``. The serving marts (identity explanations, lookups, aliases)
hold what the identity Parquet written next to the warehouse says, as dbt would derive it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from tests.support.marts import mart_columns as contract_columns

AS_OF = date(2025, 6, 30)
NOW = datetime(2025, 6, 30, 23, 0, tzinfo=UTC)

SEGMENTS = {
    "frequent_buyers": ("More than 3 purchases in the last 30 days.", "crm-team"),
    "high_value": ("Top 10% lifetime revenue.", "finance"),
    "email_unsubscribed": ("Unsubscribed from email.", "crm-team"),
    "browsers": ("Many product views, no purchase.", "web-team"),
}
ANONYMOUS = 299  # the last customer only ever browsed (a cookie)
HOUSEHOLD = (5, 6)  # share one phone; customer 5 has more records carrying it
EVENTFUL = 0  # has many events, for event pagination
EMAIL_RECORD = 3  # also has an email_events record whose record id is the address
ALIAS = ("cus_old_0001", "cus_older_0001")  # merged into customer 1 (a chain: older -> old)


def customer_id(i: int) -> str:
    """Id of customer ``i``."""
    return f"cus_{i:04d}"


def email(i: int) -> str:
    """Normalized email of customer ``i``."""
    return f"person{i}@shopmail.com"


def phone(i: int) -> str:
    """E.164 phone of customer ``i`` (the household shares customer 5's)."""
    return f"+1415555{(5 if i in HOUSEHOLD else i):04d}"


def is_member(segment: str, i: int) -> bool:
    """Segment membership rule of the constructed world."""
    if i == ANONYMOUS:
        return segment == "browsers"
    return {
        "frequent_buyers": i % 2 == 0,
        "high_value": i % 10 == 0,
        "email_unsubscribed": False,
        "browsers": i % 3 == 0,
    }[segment]


def mart_columns() -> dict[str, list[tuple[str, str]]]:
    """Columns and data types of every mart, read from the dbt contracts (all marts YAML)."""
    return contract_columns()


@dataclass
class ApiWorld:
    """Where the world is and what it holds."""

    home: Path
    persons: int
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def identity_dir(self) -> Path:
        return self.home / "lake" / "identity"

    @property
    def serving_dir(self) -> Path:
        return self.home / "serving"


def _ts(days_ago: float) -> datetime:
    return NOW - timedelta(days=days_ago)


def _customers(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        anonymous = i == ANONYMOUS
        row: dict[str, Any] = {
            "customer_id": customer_id(i),
            "is_anonymous": anonymous,
            "has_email_consent": i % 4 != 0,
            "has_sms_consent": i % 5 == 0,
            "has_push_consent": False,
            "profile_record_count": 0 if anonymous else 2,
            "record_count": 1 if anonymous else 3,
            "source_count": 1 if anonymous else 3,
        }
        if not anonymous:
            observed = _ts(10 + i % 30)
            row.update(
                email=email(i),
                phone=phone(i),
                first_name=f"First{i}",
                last_name=f"Last{i}",
                full_name=f"First{i} Last{i}",
                birth_date=date(1980 + i % 30, 1 + i % 12, 1 + i % 28),
                street_address=f"{i} Main Street",
                postal_code=f"{94000 + i:05d}",
                city="San Francisco",
                region="CA",
                country="US",
                signed_up_at=_ts(400 + i),
                has_email_consent_source="crm",
                has_email_consent_updated_at=observed,
            )
            for attribute in ("email", "phone", "first_name", "last_name", "birth_date"):
                row[f"{attribute}_source"] = "crm" if i % 2 else "shop_accounts"
                row[f"{attribute}_updated_at"] = observed
        rows.append(row)
    return rows


def _identifiers(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        cid = customer_id(i)
        seen = (_ts(300), _ts(5))
        values = [("cookie_id", f"ck_{i}", "web_events", 4)]
        if i != ANONYMOUS:
            values += [
                ("email", email(i), "crm", 1),
                ("email", email(i), "shop_accounts", 1),
                ("phone", phone(i), "crm", 2 if i == HOUSEHOLD[0] else 1),
                ("account_id", f"ACC-{i}", "shop_accounts", 1),
                ("loyalty_id", f"L{i:06d}", "crm", 1),
            ]
        for identifier_type, value, source, count in values:
            rows.append(
                {
                    "customer_identifier_id": f"{cid}|{identifier_type}|{value}|{source}",
                    "customer_id": cid,
                    "identifier_type": identifier_type,
                    "identifier_value": value,
                    "source": source,
                    "first_seen_at": seen[0],
                    "last_seen_at": seen[1],
                    "record_count": count,
                }
            )
    for alias in ALIAS:
        rows.append(
            {
                "customer_identifier_id": f"{customer_id(1)}|alias|{alias}",
                "customer_id": customer_id(1),
                "identifier_type": "alias_customer_id",
                "identifier_value": alias,
                "source": "identity",
                "first_seen_at": _ts(20),
                "last_seen_at": _ts(20),
                "record_count": 0,
            }
        )
    return rows


def _identifier_lookup(identifiers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One owner per value: each value is one customer's, but the household phone, which
    customer 5 carries on more records (see HOUSEHOLD). Retired ids are not looked up here."""
    claims: dict[tuple[str, str], set[str]] = {}
    for row in identifiers:
        if row["identifier_type"] != "alias_customer_id":
            key = (row["identifier_type"], row["identifier_value"])
            claims.setdefault(key, set()).add(row["customer_id"])
    owners = {(customer_id(HOUSEHOLD[0]), customer_id(HOUSEHOLD[1])): customer_id(HOUSEHOLD[0])}
    rows = []
    for (identifier_type, value), customers in claims.items():
        claimants = tuple(sorted(customers))
        rows.append(
            {
                "identifier_type": identifier_type,
                "identifier_value": value,
                "customer_id": owners[claimants] if len(claimants) > 1 else claimants[0],
                "customer_count": len(claimants),
            }
        )
    return rows


def _serving_rows(frames: dict[str, pd.DataFrame]) -> dict[str, list[dict[str, Any]]]:
    """The identity marts as dbt derives them from the identity Parquet of this world."""
    records = frames["identity_map"]
    by_uid = {r["record_uid"]: r for r in records.to_dict("records")}
    evidence = []
    for edge in frames["identity_edges"].to_dict("records"):
        for mine, other in (("record_uid_l", "record_uid_r"), ("record_uid_r", "record_uid_l")):
            here, there = by_uid[edge[mine]], by_uid.get(edge[other], {})
            evidence.append(
                {
                    "customer_id": here["customer_id"],
                    "record_uid": edge[mine],
                    "other_record_uid": edge[other],
                    "other_customer_id": there.get("customer_id"),
                    "other_source": there.get("source"),
                    "other_record_id": there.get("record_id"),
                    **{
                        k: (None if pd.isna(v) else v)
                        for k, v in edge.items()
                        if k not in ("record_uid_l", "record_uid_r")
                    },
                }
            )
    aliases = frames["customer_aliases"]
    survivor = dict(zip(aliases["alias_customer_id"], aliases["customer_id"], strict=True))
    resolved = []
    for row in aliases.to_dict("records"):
        target = row["customer_id"]
        while target in survivor:  # the world's chain has no cycle
            target = survivor[target]
        resolved.append({**row, "customer_id": target})
    history = frames["customer_id_history"].to_dict("records")
    return {
        "identity_records": records.drop(columns=["resolved_at"]).to_dict("records"),
        "identity_evidence": evidence,
        "customer_aliases": resolved,
        "customer_id_history": [{"event_number": k, **row} for k, row in enumerate(history)],
    }


def _traits(n: int) -> list[dict[str, Any]]:
    return [
        {
            "customer_id": customer_id(i),
            "as_of_date": AS_OF,
            "recency_days": i % 90,
            "frequency": i % 7,
            "monetary": float(i * 10),
            "r_score": 1 + i % 5,
            "order_count": i % 7,
            "lifetime_revenue": float(i * 10),
            "return_count": 0,
            "order_count_30d": i % 4,
            "order_count_90d": i % 6,
            "web_active_days_30d": i % 11,
            "product_view_count_30d": i % 13,
            "add_to_cart_count_30d": i % 3,
            "favourite_category": ["shoes", "books", "garden"][i % 3],
            "favourite_brand": f"brand{i % 5}",
            "email_sends_30d": 4,
            "email_sends_90d": 12,
            "open_rate_30d": 0.5,
            "engagement_score": float(i % 100),
            "last_active_at": _ts(i % 90),
        }
        for i in range(n)
    ]


def _events(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        count = 45 if i == EVENTFUL else 2
        for k in range(count):
            rows.append(
                {
                    "event_id": f"web_events:{i}-{k}",
                    "customer_id": customer_id(i),
                    # customer 0 has two events at the same instant (ties break by event_id)
                    "occurred_at": _ts(k if k != 1 else 0),
                    "channel": "web" if k % 3 else "orders",
                    "event_type": "page_view" if k % 3 else "order_completed",
                    "source": "web_events" if k % 3 else "orders",
                    "product_id": f"P{k}",
                    "order_id": None if k % 3 else f"O{i}-{k}",
                    "amount": None if k % 3 else 25.5,
                    "detail": "/home",
                }
            )
    return rows


def _segment_rows(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    members = []
    catalogue = []
    for name, (description, owner) in SEGMENTS.items():
        ids = [i for i in range(n) if is_member(name, i)]
        members += [
            {"customer_id": customer_id(i), "segment": name, "entered_at": _ts(i % 50)} for i in ids
        ]
        catalogue.append(
            {
                "segment": name,
                "description": description,
                "owner": owner,
                "segment_family": "rule",
                "defined_by": f"segments/{name}",
                "member_count": len(ids),
            }
        )
    return members, catalogue


def _identity_frames(n: int) -> dict[str, pd.DataFrame]:
    records = []
    edges = []
    for i in range(n):
        cid = customer_id(i)
        cookie = f"web_events:cookie:ck_{i}"
        records.append((cookie, "web_events", f"cookie:ck_{i}", cid))
        if i == ANONYMOUS:
            continue
        crm, shop = f"crm:{i}", f"shop_accounts:ACC-{i}"
        records += [(crm, "crm", str(i), cid), (shop, "shop_accounts", f"ACC-{i}", cid)]
        edges.append(
            (
                crm,
                shop,
                "rule",
                "same_email",
                "email",
                1.0,
                None,
                '{"value":"p***@shopmail.com"}',
                True,
                None,
            )
        )
        edges.append(
            (
                shop,
                cookie,
                "rule",
                "same_account_id",
                "account_id",
                1.0,
                None,
                '{"value":"AC***"}',
                True,
                None,
            )
        )
        if i == EMAIL_RECORD:
            # email_events records are keyed by the address itself
            mail = f"email_events:email:{email(i)}"
            records.append((mail, "email_events", f"email:{email(i)}", cid))
            edges.append(
                (
                    crm,
                    mail,
                    "rule",
                    "same_email",
                    "email",
                    1.0,
                    None,
                    '{"value":"p***@shopmail.com"}',
                    True,
                    None,
                )
            )
    # the household phone: the guard refused to link customers 5 and 6
    edges.append(
        (
            f"crm:{HOUSEHOLD[0]}",
            f"crm:{HOUSEHOLD[1]}",
            "rule",
            "same_phone",
            "phone",
            1.0,
            None,
            '{"value":"+1******0005"}',
            False,
            "max_distinct_names_per_phone",
        )
    )
    identity_map = pd.DataFrame(
        records, columns=["record_uid", "source", "record_id", "customer_id"]
    )
    identity_map["cluster_size"] = identity_map.groupby("customer_id")["record_uid"].transform(
        "size"
    )
    identity_map["resolved_at"] = pd.Timestamp(NOW)
    edge_frame = pd.DataFrame(
        edges,
        columns=[
            "record_uid_l",
            "record_uid_r",
            "evidence_type",
            "rule",
            "identifier_type",
            "match_probability",
            "match_weight",
            "details",
            "is_accepted",
            "rejected_reason",
        ],
    ).astype({"match_weight": "float64"})
    aliases = pd.DataFrame(
        {
            "alias_customer_id": [ALIAS[0], ALIAS[1]],
            "customer_id": [customer_id(1), ALIAS[0]],
            "created_at": [pd.Timestamp(_ts(20)), pd.Timestamp(_ts(40))],
            "cause": ["evidence: same_email", "evidence: same_phone"],
        }
    )
    history = pd.DataFrame(
        {
            "occurred_at": [pd.Timestamp(_ts(40)), pd.Timestamp(_ts(20))],
            "run_id": ["run1", "run2"],
            "event_type": ["merged", "merged"],
            "customer_id": [ALIAS[0], customer_id(1)],
            "related_customer_id": [ALIAS[1], ALIAS[0]],
            "cause": ["evidence: same_phone", "evidence: same_email"],
        }
    )
    return {
        "identity_map": identity_map,
        "identity_edges": edge_frame,
        "customer_aliases": aliases,
        "customer_id_history": history,
    }


def _create_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    columns: list[tuple[str, str]],
    rows: list[dict[str, Any]],
) -> int:
    con.execute(f"create table {name} ({', '.join(f'{c} {t}' for c, t in columns)})")
    if rows:
        unknown = set().union(*rows) - {c for c, _ in columns}
        assert not unknown, f"{name}: columns {unknown} are not in the contract"
        present = [c for c, _ in columns if any(c in row for row in rows)]
        frame = pd.DataFrame({c: [row.get(c) for row in rows] for c in present}, dtype=object)
        con.register("_rows", frame)
        con.execute(f"insert into {name} by name select * from _rows")
        con.unregister("_rows")
    return len(rows)


def build_world(home: Path, persons: int = 300) -> ApiWorld:
    """Write ``home/warehouse.duckdb`` (every mart) and ``home/lake/identity/*.parquet``."""
    assert persons > max(ANONYMOUS, *HOUSEHOLD) or persons > 10
    world = ApiWorld(home=home, persons=persons)
    columns = mart_columns()
    members, catalogue = _segment_rows(persons)
    identifiers = _identifiers(persons)
    frames = _identity_frames(persons)
    data: dict[str, list[dict[str, Any]]] = {
        "customers": _customers(persons),
        "customer_identifiers": identifiers,
        "identifier_lookup": _identifier_lookup(identifiers),
        **_serving_rows(frames),
        "customer_traits": _traits(persons),
        "customer_events": _events(persons),
        "customer_segments": members,
        "segments": catalogue,
        "segment_membership_history": [
            {
                "membership_event_id": f"{m['segment']}|{m['customer_id']}",
                "customer_id": m["customer_id"],
                "segment": m["segment"],
                "event_type": "entered",
                "occurred_at": m["entered_at"],
                "build_id": "build1",
                "built_at": NOW,
            }
            for m in members
        ],
        "product_affinity": [
            {
                "affinity_type": "co_purchase",
                "product_id": "P1",
                "related_product_id": "P2",
                "pair_count": 3,
                "support": 0.1,
                "confidence": 0.5,
                "lift": 2.0,
            }
        ],
        "campaign_metrics": [{"campaign_id": "spring", "send_count": 100, "open_count": 40}],
    }
    home.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(world.warehouse))
    try:
        con.execute("set TimeZone = 'UTC'")
        for name, cols in columns.items():
            world.tables[name] = _create_table(con, name, cols, data.get(name, []))
    finally:
        con.close()
    world.identity_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_parquet(world.identity_dir / f"{name}.parquet", index=False)
    return world
