from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from identity import IdentitySettings, collect_records, resolve
from identity.collect import read_parquet_folder


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def tables() -> dict:
    people = pd.DataFrame(
        {
            "record_id": ["A1", "A1", "A2", "A3"],
            "first_name": ["Ann", "Anne", "Ben", "Cy"],
            "email": ["ann@x.com", "ann@new.com", "ben@x.com", None],
            "updated_at": [_ts("2025-01-01"), _ts("2025-06-01"), _ts("2025-02-01"), None],
            "signed_up_at": [_ts("2024-01-01")] * 4,
            "_ingested_at": [
                _ts("2025-01-02"),
                _ts("2025-06-02"),
                _ts("2025-02-02"),
                _ts("2025-02-02"),
            ],
            "account_id": ["A1", "A1", "A2", "A3"],
        }
    )
    events = pd.DataFrame(
        {
            "occurred_at": [
                _ts("2025-03-01T10:00"),
                _ts("2025-03-02T10:00"),
                _ts("2025-03-03T10:00"),
                _ts("2025-03-04T10:00"),
                _ts("2025-03-05T10:00"),
                _ts("2025-08-01T10:00"),
                _ts("2025-03-06T10:00"),
            ],
            "event_type": [
                "page_view",
                "login",
                "login",
                "login",
                "page_view",
                "login",
                "purchase",
            ],
            "cookie_id": ["c1", "c1", "c2", "c2", "c3", "c3", None],
            "account_id": [None, "A1", "A1", "A2", None, "A3", "A3"],
            "email": [None] * 7,
        }
    )
    email_events = pd.DataFrame(
        {
            "occurred_at": [
                _ts("2025-03-01"),
                _ts("2025-03-02"),
                _ts("2025-03-03"),
                _ts("2025-09-01"),
            ],
            "event_type": ["send", "open", "click", "send"],
            "email": ["Ann@X.com", "ann@x.com", " ann@x.com ", "late@x.com"],
        }
    )
    return {
        "shop": ("people", pa.Table.from_pandas(people, preserve_index=False)),
        "web": ("events", events),
        "esp": ("email_events", email_events),
        "orders": ("orders", pd.DataFrame({"order_id": ["o1"], "account_id": ["A1"]})),
    }


IDENTIFIERS = {"shop": ["account_id"], "web": ["cookie_id", "account_id"], "esp": []}


def test_people_take_the_latest_version(tables):
    records, identifiers = collect_records(tables, IDENTIFIERS)
    shop = records[records["source"] == "shop"].set_index("record_id")
    assert list(shop.index) == ["A1", "A2", "A3"]
    assert shop.loc["A1", "email"] == "ann@new.com"
    assert shop.loc["A1", "observed_at"] == _ts("2025-06-01")
    assert shop.loc["A3", "observed_at"] == _ts("2024-01-01")  # signed_up_at when no update
    assert (records["record_uid"] == records["source"] + ":" + records["record_id"]).all()
    assert "orders" not in set(records["source"])
    ids = identifiers[identifiers["record_uid"] == "shop:A1"]
    assert ids[["identifier_type", "identifier_value"]].values.tolist() == [["account_id", "A1"]]


def test_events_become_one_record_per_cookie(tables):
    records, identifiers = collect_records(tables, IDENTIFIERS)
    web = records[records["source"] == "web"]
    assert set(web["record_id"]) == {"cookie:c1", "cookie:c2", "cookie:c3", "account:A3"}
    c2 = identifiers[identifiers["record_uid"] == "web:cookie:c2"]
    assert set(map(tuple, c2[["identifier_type", "identifier_value"]].values)) == {
        ("cookie_id", "c2"),
        ("account_id", "A1"),
        ("account_id", "A2"),
    }
    c1 = identifiers[(identifiers["record_uid"] == "web:cookie:c1")].set_index("identifier_type")
    assert c1.loc["cookie_id", "first_seen_at"] == _ts("2025-03-01T10:00")
    assert c1.loc["cookie_id", "last_seen_at"] == _ts("2025-03-02T10:00")


def test_email_events_become_one_record_per_address_as_written(tables):
    records, _ = collect_records(tables, IDENTIFIERS)
    esp = records[records["source"] == "esp"]
    assert set(esp["record_id"]) == {"email:Ann@X.com", "email:ann@x.com", "email:late@x.com"}


def test_as_of_ignores_later_rows(tables):
    records, identifiers = collect_records(
        tables, IDENTIFIERS, as_of=datetime(2025, 4, 1, tzinfo=UTC)
    )
    shop = records[records["source"] == "shop"].set_index("record_id")
    assert shop.loc["A1", "email"] == "ann@x.com"  # the June version did not exist yet
    assert "email:late@x.com" not in set(records["record_id"])
    c3 = identifiers[identifiers["record_uid"] == "web:cookie:c3"]
    assert set(c3["identifier_type"]) == {"cookie_id"}  # the August login is in the future


def test_shared_computer_merges_no_accounts(tables):
    records, identifiers = collect_records(tables, IDENTIFIERS)
    resolution = resolve(
        records,
        identifiers,
        IdentitySettings(),
        train=False,
        run_id="r",
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    owner = resolution.identity_map.set_index("record_uid")["customer_id"]
    assert owner["shop:A1"] != owner["shop:A2"]
    assert owner["web:cookie:c1"] == owner["shop:A1"]  # a single-account cookie joins it
    assert owner["web:cookie:c2"] not in {owner["shop:A1"], owner["shop:A2"]}
    assert owner["esp:email:Ann@X.com"] == owner["esp:email:ann@x.com"]
    reasons = resolution.stats["links_rejected_by_reason"]
    assert reasons == {"shared_device:account_id": 2}
    shared = resolution.identifiers
    assert shared[
        (shared["record_uid"] == "web:cookie:c2") & (shared["identifier_type"] == "account_id")
    ].empty


def test_read_parquet_folder_projects_existing_columns(tmp_path):
    for part in range(2):
        pq.write_table(
            pa.table({"record_id": [f"r{part}"], "email": ["a@x.com"]}),
            tmp_path / f"part-{part}.parquet",
        )
    table = read_parquet_folder(tmp_path, ["record_id", "email", "not_there"])
    assert table.column_names == ["record_id", "email"] and table.num_rows == 2
    with pytest.raises(FileNotFoundError):
        read_parquet_folder(tmp_path / "missing")
