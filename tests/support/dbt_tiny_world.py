"""A constructed tiny world whose trait values are known by hand (see EXPECTED below).

Writes the lake exactly as ingest does (record_id, every canonical field of the kind typed as in
KIND_FIELDS, the source's identifier columns, passthrough, lineage) plus the identity outputs,
so dbt runs on real Parquet. As-of date: 2025-06-30. Rows dated after it exist on purpose; with
``truncate=True`` they are left out, which must not change any trait computed as of that date.
The identity map and identifiers are written by hand; identity_attributes is identity's own
reading of the people sources (``collect_records`` + ``Normalizer``), as a run as of
``identity_as_of`` would write it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dagster_project.lib.config import KIND_FIELDS, CdpConfig, FieldType
from dagster_project.lib.dbt_project import DBT_PROJECT_DIR, dbt_environment, dbt_vars
from dagster_project.lib.workspace import Workspace
from identity import (
    ATTRIBUTES_FILE,
    IdentitySettings,
    Normalizer,
    collect_records,
)

AS_OF = date(2025, 6, 30)
INGESTED = datetime(2025, 7, 10, tzinfo=UTC)

_ARROW_TYPES = {
    FieldType.TEXT: pa.string(),
    FieldType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    FieldType.DATE: pa.date32(),
    FieldType.BOOLEAN: pa.bool_(),
    FieldType.INTEGER: pa.int64(),
    FieldType.DECIMAL: pa.float64(),
}

CONFIG = {
    "version": 1,
    "sources": [
        {
            "name": "crm",
            "kind": "people",
            "format": "csv",
            "path": "crm/*.csv",
            "record_key": "customer_number",
            "identifiers": {"loyalty_id": "customer_number"},
            "trust": 10,
        },
        {
            "name": "shop_accounts",
            "kind": "people",
            "format": "jsonl",
            "path": "shop/*.jsonl",
            "record_key": "account_id",
            "identifiers": {"account_id": "account_id"},
            "trust": 20,
        },
        {
            "name": "web_events",
            "kind": "events",
            "format": "jsonl",
            "path": "web/*.jsonl",
            "record_key": "event_id",
            "mapping": {"event_type": "type", "occurred_at": "ts"},
            "identifiers": {"cookie_id": "cookie_id", "account_id": "account_id"},
        },
        {
            "name": "orders",
            "kind": "orders",
            "format": "csv",
            "path": "orders/orders.csv",
            "record_key": "order_id",
            "mapping": {"order_id": "order_id", "ordered_at": "ordered_at", "status": "status"},
            "identifiers": {"account_id": "account_id"},
        },
        {
            "name": "order_lines",
            "kind": "order_lines",
            "format": "csv",
            "path": "orders/order_lines.csv",
            "record_key": ["order_id", "line_number"],
            "mapping": {
                "order_id": "order_id",
                "product_id": "product_id",
                "quantity": "quantity",
                "unit_price": "unit_price",
            },
        },
        {
            "name": "products",
            "kind": "products",
            "format": "csv",
            "path": "catalog/products.csv",
            "record_key": "product_id",
            "mapping": {"product_id": "product_id"},
        },
        {
            "name": "price_changes",
            "kind": "price_changes",
            "format": "jsonl",
            "path": "catalog/price_changes.jsonl",
            "record_key": "event_id",
            "mapping": {"product_id": "product_id", "price": "price", "changed_at": "changed_at"},
        },
        {
            "name": "email_events",
            "kind": "email_events",
            "format": "jsonl",
            "path": "email/*.jsonl",
            "record_key": "event_id",
            "mapping": {"event_type": "type", "occurred_at": "ts"},
        },
    ],
}


def ts(text: str) -> datetime:
    """'2025-06-20 09:00' (UTC) as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _people() -> dict[str, list[dict[str, Any]]]:
    crm = [
        # A placeholder email on the most trusted record: identity nulls it, so the shop
        # account's address (written " ALICE@Example.com ") is the golden email.
        {
            "record_id": "C1",
            "loyalty_id": "C1",
            "email": "test@example.com",
            "first_name": "Alice",
            "last_name": "Smith",
            "city": "Boston",
            "signed_up_at": ts("2024-05-01 10:00"),
            "has_email_consent": True,
        },
        # A later version (changed after the as-of date) must stay invisible as of 2025-06-30.
        {
            "record_id": "C1",
            "loyalty_id": "C1",
            "email": "alice@example.com",
            "first_name": "Alice",
            "last_name": "Jones",
            "city": "Boston",
            "signed_up_at": ts("2024-05-01 10:00"),
            "updated_at": ts("2025-08-01 10:00"),
            "has_email_consent": True,
            "_ingested_at": datetime(2025, 8, 2, tzinfo=UTC),
        },
        {
            "record_id": "C3",
            "loyalty_id": "C3",
            "email": "carol@example.com",
            "first_name": "Carol",
            "last_name": "White",
            "signed_up_at": ts("2024-02-01 10:00"),
        },
        # Signed up after the as-of date.
        {
            "record_id": "C5",
            "loyalty_id": "C5",
            "email": "eve@example.com",
            "first_name": "Eve",
            "signed_up_at": ts("2025-07-15 10:00"),
        },
    ]
    shop = [
        # An older version of A1, superseded by the next row (later ingest).
        {
            "record_id": "A1",
            "account_id": "A1",
            "email": "alice@example.com",
            "first_name": "Ally",
            "city": "Somerville",
            "signed_up_at": ts("2024-06-01 10:00"),
            "updated_at": ts("2025-01-01 10:00"),
            "_ingested_at": datetime(2025, 1, 2, tzinfo=UTC),
        },
        {
            "record_id": "A1",
            "account_id": "A1",
            "email": " ALICE@Example.com ",
            "first_name": "Ally",
            "last_name": "Smith",
            "phone": "(520) 213-7631",  # golden as E.164: +15202137631
            "city": "Cambridge",
            "signed_up_at": ts("2024-06-01 10:00"),
            "updated_at": ts("2025-05-01 10:00"),
            "has_email_consent": False,
        },
        {
            "record_id": "A2",
            "account_id": "A2",
            "email": "bob@example.com",
            "first_name": "Bob",
            "signed_up_at": ts("2023-12-01 10:00"),
        },
        {"record_id": "A6", "account_id": "A6", "first_name": "Fay"},
        {"record_id": "A7", "account_id": "A7", "first_name": "Gus"},
        {"record_id": "A8", "account_id": "A8", "first_name": "Hal"},
    ]
    return {"crm": crm, "shop_accounts": shop}


def _web_events() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "record_id": "W1",
            "event_type": "add_to_cart",
            "occurred_at": ts("2025-06-19 10:00"),
            "cookie_id": "k1",
            "product_id": "P1",
        },
        {
            "record_id": "W2",
            "event_type": "login",
            "occurred_at": ts("2025-06-28 08:00"),
            "cookie_id": "k1",
            "account_id": "A1",
        },
        {
            "record_id": "W3",
            "event_type": "product_view",
            "occurred_at": ts("2025-06-28 08:01"),
            "cookie_id": "k1",
            "product_id": "P4",
        },
        {
            "record_id": "W4",
            "event_type": "product_view",
            "occurred_at": ts("2025-06-28 08:02"),
            "cookie_id": "k1",
            "product_id": "P4",
        },
        {
            "record_id": "W5",
            "event_type": "product_view",
            "occurred_at": ts("2025-06-28 08:03"),
            "cookie_id": "k1",
            "product_id": "P4",
        },
        {
            "record_id": "W6",
            "event_type": "page_view",
            "occurred_at": ts("2025-06-29 12:00"),
            "cookie_id": "k1",
            "page_url": "/home",
        },
        # Shared computer: Bob logs in on Alice's cookie; the account wins over the cookie.
        {
            "record_id": "W7",
            "event_type": "login",
            "occurred_at": ts("2025-03-01 12:00"),
            "cookie_id": "k1",
            "account_id": "A2",
        },
        {
            "record_id": "W8",
            "event_type": "page_view",
            "occurred_at": ts("2025-03-01 12:05"),
            "cookie_id": "k2",
            "page_url": "/sale",
        },
        # After the as-of date.
        {
            "record_id": "W9",
            "event_type": "page_view",
            "occurred_at": ts("2025-07-02 12:00"),
            "cookie_id": "k1",
            "page_url": "/later",
        },
        # An anonymous browser (cookie k4): 11 product views, an abandoned cart.
        {
            "record_id": "W40",
            "event_type": "add_to_cart",
            "occurred_at": ts("2025-06-20 15:00"),
            "cookie_id": "k4",
            "product_id": "P2",
        },
    ]
    for day in range(11):
        rows.append(
            {
                "record_id": f"W4{day:02d}",
                "event_type": "product_view",
                "occurred_at": ts(f"2025-06-{5 + day:02d} 09:00"),
                "cookie_id": "k4",
                "product_id": "P1" if day % 2 else "P2",
            }
        )
    return rows


def _orders() -> list[dict[str, Any]]:
    def order(
        oid: str, account: str | None, at: str, status: str, total: float | None, **extra: Any
    ) -> dict[str, Any]:
        return {
            "record_id": oid,
            "order_id": oid,
            "account_id": account,
            "ordered_at": ts(at),
            "status": status,
            "total_amount": total,
            "currency": "USD",
            **extra,
        }

    return [
        order("O1", "A1", "2025-06-20 09:00", "completed", 100.0),
        order("O2", "A1", "2025-06-25 09:00", "completed", 50.0),
        # O3 was delivered completed, then a later version says returned.
        order(
            "O3",
            "A1",
            "2025-06-10 09:00",
            "completed",
            30.0,
            _ingested_at=datetime(2025, 6, 11, tzinfo=UTC),
        ),
        order("O3", "A1", "2025-06-10 09:00", "returned", 30.0),
        order("O4", "A1", "2025-06-28 09:00", "cancelled", 999.0),
        order("O5", "A1", "2025-06-29 09:00", "completed", 20.0),
        order("O6", "A1", "2025-06-15 09:00", "completed", None),  # total from its lines
        order("O7", "A1", "2025-07-05 09:00", "completed", 500.0),  # after as-of
        order("O10", "A2", "2024-01-15 09:00", "completed", 40.0),
        order("O11", None, "2025-02-01 09:00", "completed", 60.0, email="Bob@Example.com"),
        order("O20", "A6", "2025-06-01 09:00", "completed", 5.0),
        order("O21", "A7", "2025-04-01 09:00", "completed", 15.0),
        order("O22", "A8", "2024-12-31 09:00", "completed", 25.0),
    ]


def _order_lines() -> list[dict[str, Any]]:
    lines = [
        ("O1", 1, "P1", 2, 30.0),
        ("O1", 2, "P2", 1, 40.0),
        ("O2", 1, "P1", 1, 25.0),
        ("O2", 2, "P3", 1, 25.0),
        ("O3", 1, "P4", 1, 30.0),
        ("O5", 1, "P2", 1, 20.0),
        ("O6", 1, "P3", 2, 5.0),
        ("O7", 1, "P4", 1, 500.0),
        ("O10", 1, "P1", 1, 40.0),
        ("O11", 1, "P2", 1, 60.0),
    ]
    return [
        {
            "record_id": f"{o}|{n}",
            "order_id": o,
            "line_number": n,
            "product_id": p,
            "quantity": q,
            "unit_price": u,
        }
        for o, n, p, q, u in lines
    ]


def _products() -> list[dict[str, Any]]:
    return [
        {
            "record_id": "P1",
            "product_id": "P1",
            "product_name": "Runner",
            "category": "Shoes",
            "brand": "Acme",
            "price": 30.0,
        },
        {
            "record_id": "P2",
            "product_id": "P2",
            "product_name": "Sprinter",
            "category": "Shoes",
            "brand": "Bolt",
            "price": 40.0,
        },
        {
            "record_id": "P3",
            "product_id": "P3",
            "product_name": "Cap",
            "category": "Hats",
            "brand": "Acme",
            "price": 25.0,
        },
        {
            "record_id": "P4",
            "product_id": "P4",
            "product_name": "Tote",
            "category": "Bags",
            "brand": "Cargo",
            "price": 30.0,
        },
    ]


def _price_changes() -> list[dict[str, Any]]:
    return [
        {
            "record_id": "PC1",
            "product_id": "P1",
            "price": 35.0,
            "changed_at": ts("2025-01-01 00:00"),
        },
        {
            "record_id": "PC2",
            "product_id": "P1",
            "price": 28.0,
            "changed_at": ts("2025-06-22 00:00"),
        },
    ]


def _email_events() -> list[dict[str, Any]]:
    def event(rid: str, kind: str, at: str, email: str, campaign: str) -> dict[str, Any]:
        return {
            "record_id": rid,
            "event_type": kind,
            "occurred_at": ts(at),
            "email": email,
            "campaign_id": campaign,
        }

    return [
        event("E1", "send", "2025-06-10 08:00", "carol@example.com", "M1"),
        event("E2", "open", "2025-06-11 08:00", "carol@example.com", "M1"),
        event("E3", "click", "2025-06-11 08:01", "carol@example.com", "M1"),
        event("E4", "send", "2025-05-01 08:00", "carol@example.com", "M2"),
        event("E5", "send", "2025-06-20 08:00", "carol@example.com", "M3"),
        event("E6", "unsubscribe", "2025-06-21 08:00", "carol@example.com", "M3"),
        event("E7", "send", "2025-06-10 08:00", "Alice@Example.com", "M1"),
        event("E8", "click", "2025-06-12 12:00", "alice@example.com", "M1"),
        event("E9", "send", "2025-06-10 08:00", "ghost@example.com", "M1"),
        event("E10", "bounce", "2025-06-10 08:05", "ghost@example.com", "M1"),
        event("E11", "send", "2025-07-03 08:00", "carol@example.com", "M4"),  # after as-of
    ]


def _identity_tables(
    extra_records: list[tuple[str, str, str]], extra_identifiers: list[tuple[str, ...]]
) -> dict[str, pa.Table]:
    records = [
        ("crm", "C1", "cus_a"),
        ("shop_accounts", "A1", "cus_a"),
        ("web_events", "cookie:k1", "cus_a"),
        ("email_events", "email:alice@example.com", "cus_a"),
        ("shop_accounts", "A2", "cus_b"),
        ("web_events", "cookie:k2", "cus_b"),
        ("crm", "C3", "cus_c"),
        ("email_events", "email:carol@example.com", "cus_c"),
        ("web_events", "cookie:k4", "cus_d"),
        ("crm", "C5", "cus_e"),
        ("shop_accounts", "A6", "cus_f"),
        ("shop_accounts", "A7", "cus_g"),
        ("shop_accounts", "A8", "cus_h"),
        *extra_records,
    ]
    sizes: dict[str, int] = {}
    for _, _, customer in records:
        sizes[customer] = sizes.get(customer, 0) + 1
    resolved = ts("2025-07-10 00:00")
    identity_map = pa.table(
        {
            "record_uid": [f"{s}:{r}" for s, r, _ in records],
            "source": [s for s, _, _ in records],
            "record_id": [r for _, r, _ in records],
            "customer_id": [c for _, _, c in records],
            "cluster_size": pa.array([sizes[c] for _, _, c in records], pa.int64()),
            "resolved_at": pa.array([resolved] * len(records), pa.timestamp("us", tz="UTC")),
        }
    )
    identifiers = [
        ("crm:C1", "cus_a", "loyalty_id", "C1", "crm"),
        ("shop_accounts:A1", "cus_a", "account_id", "A1", "shop_accounts"),
        ("shop_accounts:A1", "cus_a", "email", "alice@example.com", "shop_accounts"),
        ("shop_accounts:A1", "cus_a", "phone", "+15202137631", "shop_accounts"),
        ("web_events:cookie:k1", "cus_a", "cookie_id", "k1", "web_events"),
        (
            "email_events:email:alice@example.com",
            "cus_a",
            "email",
            "alice@example.com",
            "email_events",
        ),
        ("shop_accounts:A2", "cus_b", "account_id", "A2", "shop_accounts"),
        ("shop_accounts:A2", "cus_b", "email", "bob@example.com", "shop_accounts"),
        ("web_events:cookie:k2", "cus_b", "cookie_id", "k2", "web_events"),
        ("web_events:cookie:k2", "cus_b", "account_id", "A2", "web_events"),
        ("crm:C3", "cus_c", "loyalty_id", "C3", "crm"),
        ("crm:C3", "cus_c", "email", "carol@example.com", "crm"),
        (
            "email_events:email:carol@example.com",
            "cus_c",
            "email",
            "carol@example.com",
            "email_events",
        ),
        ("web_events:cookie:k4", "cus_d", "cookie_id", "k4", "web_events"),
        ("crm:C5", "cus_e", "loyalty_id", "C5", "crm"),
        ("crm:C5", "cus_e", "email", "eve@example.com", "crm"),
        ("shop_accounts:A6", "cus_f", "account_id", "A6", "shop_accounts"),
        ("shop_accounts:A7", "cus_g", "account_id", "A7", "shop_accounts"),
        ("shop_accounts:A8", "cus_h", "account_id", "A8", "shop_accounts"),
        *extra_identifiers,
    ]
    first_seen = ts("2024-01-01 00:00")
    identity_identifiers = pa.table(
        {
            "record_uid": [r[0] for r in identifiers],
            "customer_id": [r[1] for r in identifiers],
            "identifier_type": [r[2] for r in identifiers],
            "identifier_value": [r[3] for r in identifiers],
            "source": [r[4] for r in identifiers],
            "first_seen_at": pa.array(
                [first_seen] * len(identifiers), pa.timestamp("us", tz="UTC")
            ),
            "last_seen_at": pa.array([resolved] * len(identifiers), pa.timestamp("us", tz="UTC")),
        }
    )
    aliases = pa.table(
        {
            "alias_customer_id": ["cus_old"],
            "customer_id": ["cus_a"],
            "created_at": pa.array([ts("2025-03-01 00:00")], pa.timestamp("us", tz="UTC")),
            "cause": ["merge: same email"],
        }
    )
    return {
        "identity_map": identity_map,
        "identity_identifiers": identity_identifiers,
        "customer_aliases": aliases,
    }


def _row_time(row: dict[str, Any]) -> datetime | None:
    for key in ("occurred_at", "ordered_at", "changed_at"):
        if row.get(key) is not None:
            return row[key]
    people_time = row.get("updated_at") or row.get("signed_up_at")
    return people_time


def lake_table(config: CdpConfig, source_name: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as a lake part of one source: the exact column order and types ingest writes."""
    source = config.source(source_name)
    fields = [pa.field("record_id", pa.string())]
    fields += [pa.field(f.name, _ARROW_TYPES[f.type]) for f in KIND_FIELDS[source.kind]]
    fields += [pa.field(name, pa.string()) for name in sorted(source.identifiers)]
    fields += [
        pa.field("passthrough", pa.map_(pa.string(), pa.string())),
        pa.field("_source_file", pa.string()),
        pa.field("_source_line", pa.int64()),
        pa.field("_file_sha256", pa.string()),
        pa.field("_record_hash", pa.string()),
        pa.field("_ingested_at", pa.timestamp("us", tz="UTC")),
    ]
    schema = pa.schema(fields)
    columns: dict[str, list[Any]] = {f.name: [] for f in fields}
    for line, row in enumerate(rows, start=2):
        mapped = {k: v for k, v in row.items() if not k.startswith("_")}
        unknown = set(mapped) - set(columns)
        assert not unknown, f"{source_name}: unknown columns {unknown}"
        for name in columns:
            if name == "passthrough":
                columns[name].append([])
            elif name == "_source_file":
                columns[name].append(f"{source_name}/delivery.txt")
            elif name == "_source_line":
                columns[name].append(line)
            elif name == "_file_sha256":
                columns[name].append("0" * 64)
            elif name == "_record_hash":
                digest = json.dumps(mapped, default=str, sort_keys=True).encode()
                columns[name].append(hashlib.sha256(digest).hexdigest())
            elif name == "_ingested_at":
                columns[name].append(row.get("_ingested_at", INGESTED))
            else:
                columns[name].append(row.get(name))
    return pa.table(columns, schema=schema)


@dataclass(frozen=True)
class TinyWorld:
    """Where the tiny world lives and how it was configured."""

    workspace: Workspace
    config: CdpConfig
    as_of: date


def _extra_customers(count: int) -> dict[str, list[dict[str, Any]]]:
    """Seeded filler shoppers (accounts X000...) so clustering has a population to split."""
    rng = random.Random(17)
    rows: dict[str, list[dict[str, Any]]] = {
        "shop_accounts": [],
        "web_events": [],
        "orders": [],
        "email_events": [],
        "identity_map": [],
        "identity_identifiers": [],
    }
    for i in range(count):
        account, cookie, customer = f"X{i:03d}", f"kx{i:03d}", f"cus_x{i:03d}"
        rows["shop_accounts"].append({"record_id": account, "account_id": account})
        rows["identity_map"] += [
            ("shop_accounts", account, customer),
            ("web_events", f"cookie:{cookie}", customer),
        ]
        rows["identity_identifiers"] += [
            (f"shop_accounts:{account}", customer, "account_id", account, "shop_accounts"),
            (f"web_events:cookie:{cookie}", customer, "cookie_id", cookie, "web_events"),
        ]
        style = i % 4  # big spenders, regulars, window shoppers, lapsed
        orders = {0: rng.randint(5, 9), 1: rng.randint(1, 3), 2: 0, 3: rng.randint(1, 2)}[style]
        for n in range(orders):
            days_ago = rng.randint(1, 60) if style != 3 else rng.randint(200, 400)
            at = datetime(2025, 6, 30, 12, tzinfo=UTC) - timedelta(days=days_ago)
            amount = round(rng.uniform(150, 400) if style == 0 else rng.uniform(10, 60), 2)
            rows["orders"].append(
                {
                    "record_id": f"{account}-{n}",
                    "order_id": f"{account}-{n}",
                    "account_id": account,
                    "ordered_at": at,
                    "status": "completed",
                    "total_amount": amount,
                    "currency": "USD",
                }
            )
        visits = {0: 3, 1: 2, 2: rng.randint(8, 15), 3: 0}[style]
        for n in range(visits):
            at = datetime(2025, 6, 30, 9, tzinfo=UTC) - timedelta(days=rng.randint(0, 25))
            rows["web_events"].append(
                {
                    "record_id": f"{cookie}-{n}",
                    "event_type": "product_view",
                    "occurred_at": at,
                    "cookie_id": cookie,
                    "product_id": rng.choice(["P1", "P2", "P3", "P4"]),
                }
            )
    return rows


def _identity_attributes(config: CdpConfig, workspace: Workspace, as_of: date) -> pa.Table:
    """identity_attributes as an identity run as of ``as_of`` writes it from the people lake."""
    cutoff = datetime(as_of.year, as_of.month, as_of.day, 23, 59, 59, 999999, tzinfo=UTC)
    people = {
        s.name: (str(s.kind), workspace.source_lake(s.name))
        for s in config.sources
        if s.kind == "people"
    }
    collected = collect_records(people, {name: [] for name in people}, cutoff)
    attributes = Normalizer(IdentitySettings(), today=as_of).normalize(collected.records)
    return pa.Table.from_pandas(attributes.attributes, preserve_index=False)


def build_tiny_world(
    home: Path, *, truncate: bool = False, extra_customers: int = 0, identity_as_of: date = AS_OF
) -> TinyWorld:
    """Write the lake and identity Parquet under ``home``; ``truncate`` drops post-as-of rows.

    ``extra_customers`` adds seeded filler shoppers (their traits are not hand-computed);
    ``identity_as_of`` is the date identity resolution ran as of (the record versions it read).
    """
    config = CdpConfig.model_validate(CONFIG)
    workspace = Workspace(home).ensure()
    cutoff = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 23, 59, 59, 999999, tzinfo=UTC)
    sources: dict[str, list[dict[str, Any]]] = {
        **_people(),
        "web_events": _web_events(),
        "orders": _orders(),
        "order_lines": _order_lines(),
        "products": _products(),
        "price_changes": _price_changes(),
        "email_events": _email_events(),
    }
    extra = _extra_customers(extra_customers)
    for name in ("shop_accounts", "web_events", "orders", "email_events"):
        sources[name] = sources[name] + extra[name]
    if truncate:
        sources = {
            name: [r for r in rows if (_row_time(r) is None or _row_time(r) <= cutoff)]
            for name, rows in sources.items()
        }
        kept_orders = {r["order_id"] for r in sources["orders"]}
        sources["order_lines"] = [r for r in sources["order_lines"] if r["order_id"] in kept_orders]
    for name, rows in sources.items():
        folder = workspace.source_lake(name)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(lake_table(config, name, rows), folder / "part-0000000000000000.parquet")
    workspace.identity.mkdir(parents=True, exist_ok=True)
    for name, table in _identity_tables(
        extra["identity_map"], extra["identity_identifiers"]
    ).items():
        pq.write_table(table, workspace.identity / f"{name}.parquet")
    pq.write_table(
        _identity_attributes(config, workspace, identity_as_of),
        workspace.identity / ATTRIBUTES_FILE,
    )
    return TinyWorld(workspace=workspace, config=config, as_of=AS_OF)


def run_dbt(
    world: TinyWorld,
    args: list[str],
    *,
    project_dir: Path = DBT_PROJECT_DIR,
    as_of: date | None = None,
    extra_vars: dict[str, Any] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the dbt CLI on the world (vars and env exactly as the Dagster asset builds them)."""
    variables = dbt_vars(world.config, world.workspace, as_of or world.as_of, project_dir)
    variables.update(extra_vars or {})
    target = world.workspace.home / "dbt_target"
    env = {
        **os.environ,
        **dbt_environment(world.workspace),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    command = [
        str(Path(sys.executable).parent / "dbt"),
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target-path",
        str(target),
        "--log-path",
        str(target / "logs"),
        "--vars",
        json.dumps(variables),
    ]
    return subprocess.run(
        command, cwd=project_dir, env=env, capture_output=True, text=True, check=False
    )
