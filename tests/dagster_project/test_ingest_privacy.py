"""No raw personal value reaches the Dagster instance: metadata, checks, logs and events.

Canary values (an email, a phone, a name, an address, a record key, a search, a URL, a
cookie) are planted in valid and invalid rows of the sample world; after a real ingest the
whole event log of the run is serialized and searched for them. The same canaries are then
found in the lake and the quarantine, so the test proves they were really read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg
import pytest
from dagster._serdes import serialize_value

from dagster_project.definitions import build_definitions
from dagster_project.lib.ingest import read_lake, read_quarantine
from dagster_project.lib.settings import PlatformSettings
from dagster_project.lib.workspace import Workspace

EMAIL = "canary.leak.7731@example.org"
PHONE = "415-555-7731"
FIRST = "Quillonzer"
LAST = "Vantacanary"
STREET = "77 Canarywharf Lane"
CRM_KEY = "CANARYKEY7731"
ACCOUNT = "CANARYACCT7731"
COOKIE = "canary-cookie-7731"
SEARCH = "canary search quillonzer"
BAD_DATE = "canary-date-7731"
NOTE = "canary passthrough note 7731"
KEY = "canary.key.7731@example.net"  # a JSON key that is itself personal
VALUES = [EMAIL, PHONE, "4155557731", FIRST, LAST, STREET, CRM_KEY, ACCOUNT, COOKIE, SEARCH]
VALUES += [BAD_DATE, NOTE, "canary.leak"]
CANARIES = [*VALUES, KEY]

CRM_HEADER = (
    "customer_number,first_name,last_name,email,phone,street,city,state,postal_code,country,"
    "birth_date,signup_date,consent_email,consent_sms,consent_push,notes"
)


def crm_row(key: str, **values: str) -> str:
    row = {
        "customer_number": key,
        "first_name": FIRST,
        "last_name": LAST,
        "email": EMAIL,
        "phone": PHONE,
        "street": STREET,
        "city": "Springfield",
        "state": "IL",
        "postal_code": "62704",
        "country": "US",
        "birth_date": "1990-01-01",
        "signup_date": "2021-11-24",
        "consent_email": "true",
        "consent_sms": "false",
        "consent_push": "false",
        "notes": NOTE,
        **values,
    }
    return ",".join(row[c] for c in CRM_HEADER.split(","))


def plant_canaries(landing: Path) -> None:
    """A file per source that sorts first in its glob, so the canaries are in the preview."""
    crm = [
        CRM_HEADER,
        crm_row(CRM_KEY),  # valid
        crm_row(CRM_KEY + "B", signup_date=BAD_DATE),  # unparseable timestamp
        crm_row(CRM_KEY),  # duplicate record key
        crm_row(CRM_KEY + "C", first_name=FIRST + "\x00"),  # NUL
        crm_row(CRM_KEY + "D", last_name=LAST + "x" * 5000),  # value too long
        crm_row(CRM_KEY + "E", notes=NOTE + "y" * 70_000),  # record too large
        crm_row(CRM_KEY + "F", street=f'"{STREET}'),  # a quote that never closes
    ]
    (landing / "crm" / "0000_canary.csv").write_text("\n".join(crm) + "\n", encoding="utf-8")

    account = {
        "account_id": ACCOUNT,
        "email": EMAIL,
        "first_name": FIRST,
        "last_name": LAST,
        "phone": PHONE,
        "ship_street": STREET,
        "created_at": "2021-12-12T00:13:26Z",
        "loyalty_note": NOTE,
    }
    shop = [
        json.dumps(account),  # valid
        json.dumps({**account, "account_id": ACCOUNT + "B", "created_at": BAD_DATE}),
        json.dumps({**account, "account_id": ACCOUNT + "C"})[:-1] + f', "email": "{EMAIL}"}}',
        json.dumps({**account, "account_id": ACCOUNT + "D", "first_name": FIRST + "\u0007"}),
        '{"account_id": "' + ACCOUNT + 'E", "email": "' + EMAIL + '", ',  # malformed JSON
    ]
    (landing / "shop" / "0000_canary.jsonl").write_text("\n".join(shop) + "\n", encoding="utf-8")

    event = {
        "event_id": "wev-canary-1",
        "cookie_id": COOKIE,
        "account_id": ACCOUNT,
        "event_type": "search",
        "occurred_at": "2026-04-01T03:44:17Z",
        "search_query": SEARCH,
        "url": f"https://shop.example.com/search?q={SEARCH}&email={EMAIL}",
        "user_agent": f"Mozilla/5.0 ({FIRST})",
    }
    web = [
        json.dumps(event),  # valid
        json.dumps({**event, "event_id": "wev-canary-2", "occurred_at": BAD_DATE}),
        json.dumps({**event, "event_id": "wev-canary-3", "search_query": SEARCH + "z" * 5000}),
        # a key that is itself personal, holding a control character
        json.dumps({**event, "event_id": "wev-canary-4", KEY: "\u0000"}),
    ]
    (landing / "web" / "events-0000-canary.jsonl").write_text("\n".join(web) + "\n")

    # An export without its header row: the first record would be taken for column names.
    orders = [f"{CRM_KEY}X,{EMAIL},{EMAIL},{PHONE}", f"{CRM_KEY}Y,{EMAIL},{FIRST},{LAST}"]
    (landing / "orders" / "orders-0000-canary.csv").write_text("\n".join(orders) + "\n")


def leaks(text: str, canaries: list[str] = CANARIES) -> list[str]:
    lowered = text.lower()
    return [c for c in canaries if c.lower() in lowered]


def test_no_canary_reaches_metadata_checks_logs_or_events(
    settings: PlatformSettings, caplog: pytest.LogCaptureFixture
) -> None:
    plant_canaries(settings.home / "landing")
    defs = build_definitions(settings)
    keys = [k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == "lake"]
    caplog.set_level(logging.DEBUG)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("cdp_full_refresh").execute_in_process(
            instance=instance, asset_selection=keys, raise_on_error=False
        )
        assert result.success, [e.message for e in result.get_step_failure_events()]
        records = instance.all_logs(result.run_id)
        evaluations = result.get_asset_check_evaluations()
        materializations = result.get_asset_materialization_events()

        found: list[tuple[str, list[str]]] = []
        for record in records:
            found.append((record.user_message[:80], leaks(serialize_value(record))))
        for evaluation in evaluations:
            found.append((f"check {evaluation.check_name}", leaks(serialize_value(evaluation))))
        metadata = {e.asset_key.path[-1]: e.materialization.metadata for e in materializations}
        for name, values in metadata.items():
            found += [(f"{name}.{key}", leaks(str(value.value))) for key, value in values.items()]
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        found.append(("run", leaks(serialize_value(run))))
        found.append(("python logs", leaks(caplog.text)))
        assert not [(where, hits) for where, hits in found if hits]

        # The run really read and judged the canary files: previews, quarantines, checks.
        assert len(materializations) == len(keys) and evaluations
        assert "***" in metadata["crm"]["preview"].value
        assert metadata["crm"]["rows_quarantined"].value == 6
        failed = {e.asset_key.path[-1] for e in evaluations if not e.passed}
        assert {"crm", "shop_accounts", "orders"} <= failed
        assert (
            "unmapped column: control character"
            in metadata["web_events"]["quarantine_reasons"].value
        )

    # ...while the lake and the quarantine (as private as the lake) did receive them.
    workspace = Workspace(settings.home)
    lake = read_lake(workspace, "crm").to_pylist()
    assert any(row["email"] == EMAIL and row["record_id"] == CRM_KEY for row in lake)
    quarantine = read_quarantine(workspace, "crm").to_pylist()
    assert any(BAD_DATE in row["raw"] for row in quarantine)
    # Reasons name columns (even one named by the file, next to the raw record), never values.
    for source in ("crm", "shop_accounts", "web_events", "orders"):
        for row in read_quarantine(workspace, source).to_pylist():
            assert not leaks(row["reason"], VALUES), row["reason"]
