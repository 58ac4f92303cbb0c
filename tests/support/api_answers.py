"""A reproducible sample of API answers on a generated world, to compare two versions of the code.

Refactors promise "the same `cdp run` on the same world gives the same answers": this builds the
world, runs the pipeline, asks the API a fixed set of questions with a full-access key and
returns the answers as plain JSON, so ``tests/test_api_answers.py`` can compare them with the
answers recorded by an earlier version (``tests/support/baselines/api_answers.json``).

Regenerate the baseline (only when a change of answers is intended and reviewed)::

    python -m tests.support.api_answers tests/support/baselines/api_answers.json
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

WORLD_PERSONS = 400
WORLD_SEED = 7
WORLD_END = date(2026, 10, 31)
#: Customers (by id, the first page) whose whole profile is recorded.
SAMPLE_CUSTOMERS = 60

PROFILE = """query($id: ID!) { customer(id: $id) {
  customerId email phone firstName lastName fullName birthDate streetAddress postalCode city
  region country isAnonymous signedUpAt recordCount profileRecordCount sourceCount
  consents { channel isGranted source updatedAt }
  provenance { attribute source updatedAt }
  traits { asOfDate recencyDays frequency monetary rScore fScore mScore orderCount
    lifetimeRevenue averageOrderValue firstOrderAt lastOrderAt returnCount orderCount30d
    orderCount90d daysSinceLastVisit webActiveDays30d productViewCount30d addToCartCount30d
    favouriteCategory favouriteBrand emailSends30d emailSends90d openRate30d openRate90d
    clickRate30d clickRate90d engagementScore lastActiveAt }
  segments { name enteredAt }
  identifiers { type value source recordCount }
  events(first: 5) { edges { node { eventId occurredAt channel eventType source productId
    orderId campaignId amount detail } } }
  identity { records { source recordId evidence { rule isAccepted otherRecord { recordId } } } }
} }"""
CATALOGUE = "{ segments { name size family owner } }"
PAGE = """query($after: String) { customers(filter: {}, first: 100, after: $after) {
  edges { node { customerId } } } }"""
LOOKUP = """query($t: String!, $v: String!) { customer(lookup: {type: $t, value: $v}) {
  customerId } }"""


def build_home(root: Path) -> Path:
    """Generate the world and run the whole pipeline on it; returns CDP_HOME."""
    from dagster_project.lib.generate import generate_world
    from dagster_project.lib.settings import PlatformSettings
    from dagster_project.runner import run_pipeline

    world = root / "world"
    generate_world(world, WORLD_PERSONS, WORLD_SEED, end=WORLD_END)
    home = root / "home"
    home.mkdir()
    shutil.copytree(world / "landing", home / "landing")
    shutil.copy(world / "cdp.yml", home / "cdp.yml")
    outcome = run_pipeline(PlatformSettings(home=home, as_of=WORLD_END))
    if not outcome.success:
        raise RuntimeError(f"cdp run failed: {outcome.failures}")
    return home


def collect_answers(home: Path, audit_dir: Path) -> dict[str, Any]:
    """The answers to the fixed questions, from an in-process app over ``home``'s snapshot."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.security import create_key
    from api.settings import ApiSettings

    key = create_key(home / "api_keys.yml", "answers", ["admin"], replace=True)
    settings = ApiSettings(home=home, api_audit_dir=audit_dir)
    with TestClient(create_app(settings)) as client:

        def ask(query: str, variables: dict[str, Any] | None = None) -> Any:
            response = client.post(
                "/graphql",
                json={"query": query, "variables": variables or {}},
                headers={"Authorization": f"Bearer {key}"},
            )
            body = response.json()
            if response.status_code != 200 or "errors" in body:
                raise RuntimeError(f"{query[:60]}: {response.status_code} {body}")
            return body["data"]

        ids = [e["node"]["customerId"] for e in ask(PAGE)["customers"]["edges"][:SAMPLE_CUSTOMERS]]
        profiles = {cid: ask(PROFILE, {"id": cid})["customer"] for cid in ids}
        lookups = {}
        for profile in profiles.values():
            for identifier in profile["identifiers"]:
                if identifier["type"] in ("email", "account_id", "loyalty_id"):
                    found = ask(LOOKUP, {"t": identifier["type"], "v": identifier["value"]})
                    lookups[f"{identifier['type']}:{identifier['value']}"] = (
                        found["customer"]["customerId"] if found["customer"] else None
                    )
        return {
            "world": {"persons": WORLD_PERSONS, "seed": WORLD_SEED, "end": str(WORLD_END)},
            "segments": ask(CATALOGUE)["segments"],
            "profiles": profiles,
            "lookups": dict(sorted(lookups.items())),
        }


def main(out: str) -> None:
    """Build the world in a temporary folder and write the answers to ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        home = build_home(Path(tmp))
        answers = collect_answers(home, Path(tmp) / "audit")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(answers, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
