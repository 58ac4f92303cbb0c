"""The PII leak test: canary people through the real pipeline, then every field of the API.

A key without ``pii:read`` must never see personal data, wherever it hides (golden-record
fields, identity record ids, evidence about other customers, event free text, any field added
later), and every personal value a ``pii:read`` key sees must be audited against the customer
who owns it. The world is the session's sample world plus a few canary people with
distinctive values (``tests/support/canary.py``); the crawler introspects the schema and
selects every field of every object type reachable from ``Query``, so a new field is checked
without editing this file (or the coverage test names it).

Mutations are not crawled, deliberately: the crawler reads, and ``decide`` writes (each call
logs a decision and may use up a cap). Their answers are covered anyway: the masked key first
decides for every canary customer (its answers are checked for canaries below), and the
decisions it logged are what the crawl then reaches through ``Customer.decisions``, the same
``Decision`` type ``decide`` returns, with every field (the rendered subject and blocks among
them) selected by both keys.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.security import create_key
from api.settings import ApiSettings
from dagster_project.lib.settings import PlatformSettings
from dagster_project.runner import run_pipeline
from decisions.policy import load_policy
from tests.support.api_harness import api_settings
from tests.support.canary import (
    ALPHA,
    ALPHA_COOKIE,
    BRAVO,
    FAMILY_EMAIL,
    PERSONS,
    CanaryPlan,
    Crawler,
    Exchange,
    Post,
    introspect,
    plant_canaries,
    where_found,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MASKED_KEY = "leak-masked"
PII_KEY = "leak-pii"
#: Every scope but pii:read (admin implies it) for the masked key.
KEY_SCOPES = {
    MASKED_KEY: ["profile:read", "segments:read", "decisions:read", "decisions:write"],
    PII_KEY: ["profile:read", "pii:read", "segments:read", "decisions:read", "decisions:write"],
}

#: (type, field) pairs the crawler may leave unselected, because it cannot fill their required
#: arguments from anything an earlier response showed. Keep it short and say why for each.
#: Root fields only an admin key may use. Admin implies pii:read, so no masked key can reach
#: them; their personal fields are the LinkedRecord/Evidence types crawled here anyway, and
#: their masking and audit are tested in tests/api/test_explain.py.
ADMIN_ONLY_ROOTS: frozenset[str] = frozenset({"identityExplanation", "erasureRequest"})
EXEMPT: frozenset[tuple[str, str]] = frozenset(
    {("Query", "identityExplanation")}
    | {
        ("IdentityExplanation", field)
        for field in ("isSameCustomer", "recordA", "recordB", "path", "refusedLinks", "reasons")
    }
    | {("IdentityExplanation", "summary")}
    | {("IdentityLink", field) for field in ("record", "otherRecord", "evidence")}
    # The canary people carry no consent statement (their history is empty); a statement holds a
    # flag, a source name or event id and a time, nothing personal. The history is exercised in
    # tests/api/test_consents_graphql.py.
    | {("Consent", "history")}
    | {("ConsentStatement", field) for field in ("isGranted", "source", "changedAt")}
    # Erasure requests are admin only and hold no personal value (a status, counts, the type of
    # identifier a request named, store and file names); tests/api/test_erasure_graphql.py.
    | {("Query", "erasureRequest")}
    | {
        ("ErasureRequest", field)
        for field in (
            "id",
            "status",
            "namedBy",
            "requestedAt",
            "requestedBy",
            "completedAt",
            "customerIds",
            "identifiers",
            "message",
            "stores",
        )
    }
    | {
        ("ErasureStoreStatus", field)
        for field in ("store", "status", "removed", "remaining", "detail", "updatedAt")
    }
)


#: Root fields addressing the catalogue, not a person: any id the crawl found may be used (the
#: focus on canary customers keeps the crawl small; products are few and hold nothing personal,
#: and Product.similar is reached only from product(id:)).
CATALOGUE_ROOTS: frozenset[str] = frozenset({"product"})


def not_admin_only(field: str) -> bool:
    """Whether a root field is open to the crawl's keys (see ADMIN_ONLY_ROOTS)."""
    return field not in ADMIN_ONLY_ROOTS


@dataclass
class CanaryWorld:
    """A CDP_HOME built by the real pipeline from the sample world plus canary people."""

    home: Path
    plan: CanaryPlan
    as_of: date


@pytest.fixture(scope="module")
def canary_world(
    sample_world: Path, world_end: date, tmp_path_factory: pytest.TempPathFactory
) -> CanaryWorld:
    """The sample world's landing files and cdp.yml, canaries added, `cdp run` materialized."""
    home = tmp_path_factory.mktemp("pii_leak_home")
    shutil.copytree(sample_world / "landing", home / "landing")
    shutil.copy(sample_world / "cdp.yml", home / "cdp.yml")
    delivered = "\n".join(p.read_text() for p in (home / "landing").rglob("*") if p.is_file())
    needles = {n.value: n for p in PERSONS for n in p.needles()}.values()
    collisions = [n.value for n in needles if n.found_in(delivered)]
    assert not collisions, f"canary values already in the sample world: {collisions}"
    plan = plant_canaries(home, world_end)
    outcome = run_pipeline(PlatformSettings(home=home, as_of=world_end))
    assert outcome.success, outcome.failures
    plan.resolve(home / "lake" / "identity" / "identity_map.parquet")
    _live_profiles(home, sorted(plan.customers))
    return CanaryWorld(home=home, plan=plan, as_of=world_end)


def _live_profiles(home: Path, customer_ids: list[str]) -> None:
    """Views and a cart for each canary customer through the real stream processor, so the
    crawl reaches ``customer.live`` with data (found by an identifier the snapshot knows)."""
    import sqlite3

    from events.log import SqliteEventLog
    from events.processor import StreamProcessor, log_path
    from events.types import EventKind, ProductLine
    from snapshots import DATABASE_FILE, read_current, snapshot_folder
    from tests.support.stream_world import event

    serving = home / "serving"
    database = snapshot_folder(serving, read_current(serving)) / DATABASE_FILE
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        product = conn.execute("select product_id from products order by product_id").fetchone()[0]
        owned = {
            customer: conn.execute(
                "select identifier_type, identifier_value from identifier_lookup "
                "where customer_id = ? and identifier_type in ('email', 'account_id') "
                "order by identifier_type, identifier_value limit 1",
                (customer,),
            ).fetchone()
            for customer in customer_ids
        }
    events = [
        event(kind, identifiers={kind_of: value}, products=[ProductLine(product)])
        for kind_of, value in (found for found in owned.values() if found is not None)
        for kind in (EventKind.PRODUCT_VIEW, EventKind.ADD_TO_CART)
    ]
    assert events, "no canary customer has an email or account id in the snapshot"
    with SqliteEventLog(log_path(home)) as log:
        log.append(events)
        processor = StreamProcessor.from_home(home, log=log)
        try:
            while processor.process_batch():
                pass
        finally:
            processor.close()


@dataclass
class LeakApi:
    """The app in-process, one poster per key, and where it writes the audit log."""

    settings: ApiSettings
    posters: dict[str, Post]

    def audit_lines(self) -> list[dict[str, Any]]:
        """Every audit line written so far."""
        return [
            json.loads(line)
            for path in sorted(self.settings.audit_dir.glob("pii-*.jsonl"))
            for line in path.read_text().splitlines()
        ]


@pytest.fixture(scope="module")
def leak_api(
    canary_world: CanaryWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LeakApi]:
    """The API over the canary world's snapshot, introspection on, with the two keys."""
    keys_file = canary_world.home / "api_keys.yml"
    secrets = {name: create_key(keys_file, name, scopes) for name, scopes in KEY_SCOPES.items()}
    settings = api_settings(
        canary_world.home,
        tmp_path_factory.mktemp("pii_leak_api"),
        api_enable_introspection=True,
        # decide on the world's as-of day, when its sales run (periods start at 14:00 UTC)
        api_now=datetime.combine(canary_world.as_of, time(20), tzinfo=UTC),
    )
    with TestClient(create_app(settings)) as client:

        def poster(secret: str) -> Post:
            def post(query: str, variables: dict[str, Any]) -> httpx.Response:
                return client.post(
                    "/graphql",
                    json={"query": query, "variables": variables},
                    headers={"Authorization": f"Bearer {secret}", "X-Request-Id": uuid.uuid4().hex},
                )

            return post

        yield LeakApi(settings, {name: poster(secret) for name, secret in secrets.items()})


DECIDE = """
mutation Decide($id: ID!, $channel: String!, $placement: String!) {
  decide(customer: {id: $id}, channel: $channel, placement: $placement) {
    decisionId send reasons theme subject blocks expiresAt
    experiment { experiment arm isHoldout }
    items { product { id name } sale { id title } score propensity isWildcard reasons }
  }
}
"""


@dataclass(frozen=True)
class Decided:
    """One decide call of the masked key and its answer."""

    variables: dict[str, str]
    status: int
    text: str

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.text) if self.status == 200 else {}


@pytest.fixture(scope="module")
def decided(leak_api: LeakApi, canary_world: CanaryWorld) -> list[Decided]:
    """The masked key decides for every canary customer on every channel of every placement of
    the world's policy (so the crawl finds logged decisions, rendered with first names)."""
    policy = load_policy(canary_world.home / "cdp.yml")
    post = leak_api.posters[MASKED_KEY]
    answers = []
    for customer in sorted(canary_world.plan.customers):
        for placement, spec in sorted(policy.placements.items()):
            if spec.kind == "trigger":  # sent by real-time triggers, never asked for
                continue
            for channel in spec.channels:
                variables = {"id": customer, "channel": channel, "placement": placement}
                response = post(DECIDE, variables)
                answers.append(Decided(variables, response.status_code, response.text))
    return answers


@dataclass
class Crawls:
    """Both keys' crawls and the audit log around the masked one."""

    pii: Crawler
    masked: Crawler
    audit_after_pii: list[dict[str, Any]]
    audit_after_masked: list[dict[str, Any]]


@pytest.fixture(scope="module")
def crawls(leak_api: LeakApi, canary_world: CanaryWorld, decided: list[Decided]) -> Crawls:
    """The pii:read key crawls the lists and the canary customers one leaf field per query (so
    each revealed value is pinned to one field); the masked key then crawls everything."""
    schema = introspect(leak_api.posters[MASKED_KEY])
    focus = canary_world.plan.customers
    depth = leak_api.settings.api_max_depth
    pii = Crawler(
        leak_api.posters[PII_KEY],
        schema,
        max_depth=depth,
        granularity="leaf",
        allow=lambda field, args: (
            not_admin_only(field)
            and ("id" not in args or args["id"] in focus or field in CATALOGUE_ROOTS)
        ),
    ).crawl()
    after_pii = leak_api.audit_lines()
    # The masked key looks customers up only by values it could know (seen unmasked by the
    # pii crawl): masked values, "***" or opaque tokens, are never sent back.
    seen = set().union(*pii.values.values())
    masked = Crawler(
        leak_api.posters[MASKED_KEY],
        schema,
        max_depth=depth,
        usable=lambda value: value in seen,
        allow=lambda field, _args: not_admin_only(field),
    ).crawl()
    return Crawls(pii, masked, after_pii, leak_api.audit_lines())


def _errors(crawler: Crawler) -> list[str]:
    return [
        f"HTTP {e.status}: {(json.dumps(e.errors) if e.errors else e.text)[:300]}\n"
        f"    {e.describe()[:300]}"
        for e in crawler.unexpected
    ]


def _line(plan: CanaryPlan, problem: str, found: list[Exchange]) -> str:
    """One problem and (some of) the root calls whose responses showed it."""
    calls = sorted({e.call() for e in found})
    shown = []
    for call in calls[:3]:
        for customer in plan.customers:
            call = call.replace(f'"{customer}"', plan.label(customer))
        shown.append(call)
    more = f" and {len(calls) - 3} more" if len(calls) > 3 else ""
    return f"- {problem}\n    in {len(found)} responses to {'; '.join(shown)}{more}"


# ---------------------------------------------------------------------------------------------


def test_the_canary_world_exercises_cross_customer_evidence(canary_world: CanaryWorld) -> None:
    plan = canary_world.plan
    alpha = plan.customer_of("crm", "C9900001")
    bravo = plan.customer_of("crm", "C9900002")
    charlie = plan.customer_of("crm", "C9900003")
    mailbox = plan.customer_of("email_events", f"email:{FAMILY_EMAIL}")
    assert plan.customer_of("web_events", f"cookie:{ALPHA_COOKIE}") == alpha
    assert plan.customer_of("shop_accounts", "A990000001") == alpha
    assert plan.customer_of("email_events", f"email:{ALPHA.email}") == alpha
    assert plan.customer_of("email_events", f"email:{BRAVO.email}") == bravo
    assert len({alpha, bravo, charlie, mailbox}) == 4
    identity = canary_world.home / "lake" / "identity"
    edges_file, map_file = (
        str(identity / f"{n}.parquet") for n in ("identity_edges", "identity_map")
    )
    with duckdb.connect() as con:
        edges = con.execute(
            """
            select l.customer_id, r.customer_id, e.rule, e.is_accepted, e.rejected_reason
            from read_parquet(?) e
            join read_parquet(?) l on l.record_uid = e.record_uid_l
            join read_parquet(?) r on r.record_uid = e.record_uid_r
            """,
            [edges_file, map_file, map_file],
        ).fetchall()
    between = {(frozenset((a, b)), rule, ok) for a, b, rule, ok, _ in edges if a != b}
    # A and B share a phone under two names: refused, kept as evidence between two customers
    assert (frozenset((alpha, bravo)), "same_phone", False) in between
    # C's CRM record and the family mailbox's own record: refused (two names use the mailbox)
    assert (frozenset((charlie, mailbox)), "same_email", False) in between


def test_decide_answers_a_key_without_pii_read_with_no_personal_data(
    decided: list[Decided], canary_world: CanaryWorld
) -> None:
    plan = canary_world.plan
    assert decided
    failed = [e.text[:300] for e in decided if e.status != 200 or "errors" in e.body]
    assert not failed, failed[:3]
    # the rendered messages are there (masked), so the check below is not vacuous
    assert any(e.body["data"]["decide"]["items"] for e in decided)
    leaks = [e.variables for e in decided if plan.find(e.text)]
    assert not leaks, f"personal data in decide answers to a masked key: {leaks[:3]}"


def test_the_crawl_selects_every_field_reachable_from_query(crawls: Crawls) -> None:
    for name, crawler in (("pii:read", crawls.pii), ("masked", crawls.masked)):
        assert not crawler.too_deep, f"{name}: deeper than the depth limit from any root"
        assert crawler.uncovered(EXEMPT) == [], (
            f"{name} crawl never selected these fields in a successful response; teach the "
            f"crawler their arguments, or exempt them in EXEMPT with the reason"
        )


def test_no_canary_value_reaches_a_key_without_pii_read(
    crawls: Crawls, canary_world: CanaryWorld
) -> None:
    plan = canary_world.plan
    leaks: dict[str, list[Exchange]] = defaultdict(list)
    for exchange in crawls.masked.exchanges:
        if not plan.find(exchange.text):
            continue
        located = where_found(plan.needles, exchange.body)
        for path, values in located.items():
            leaks[f"{path.removeprefix('data.')}: {', '.join(sorted(values))}"].append(exchange)
        if not located:
            leaks[f"outside the data's strings: {exchange.text[:200]}"].append(exchange)
    report = [_line(plan, leak, found) for leak, found in sorted(leaks.items())]
    assert not report, "personal data served to a key without pii:read:\n" + "\n".join(report)


def test_a_key_without_pii_read_gets_no_errors_and_writes_no_audit_line(crawls: Crawls) -> None:
    assert not _errors(crawls.masked), "\n".join(_errors(crawls.masked))
    written = crawls.audit_after_masked[len(crawls.audit_after_pii) :]
    assert written == [], written[:5]
    assert all(line["key"] == PII_KEY for line in crawls.audit_after_masked)


def test_the_pii_key_sees_every_canary_value_without_errors(
    crawls: Crawls, canary_world: CanaryWorld
) -> None:
    """Otherwise the leak test would pass for canaries that never reached the API."""
    assert not _errors(crawls.pii), "\n".join(_errors(crawls.pii))
    seen = {n.value for e in crawls.pii.exchanges for n in canary_world.plan.find(e.text)}
    # sources carry first and last names apart (the golden full name stays empty), so a full
    # name reaches the API only inside free text; it is still searched for as a leak
    planted = {n.value for n in canary_world.plan.needles if n.kind != "full_name"}
    assert planted - seen == set()


def test_every_pii_read_is_audited_against_the_customer_who_owns_it(
    crawls: Crawls, canary_world: CanaryWorld
) -> None:
    plan = canary_world.plan
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in crawls.audit_after_pii:
        assert {"key", "customer_id", "fields", "operation", "request_id", "snapshot_id"} <= set(
            line
        ), line
        lines[line["request_id"]].append(line)
    problems: dict[str, list[Exchange]] = defaultdict(list)
    for exchange in crawls.pii.exchanges:
        text = exchange.text.lower()
        if not plan.find(text) and not any(t.lower() in text for t in plan.record_tokens):
            continue
        audited = {line["customer_id"] for line in lines.get(exchange.request_id or "", [])}
        located = where_found(plan.needles, exchange.body)
        paths = ", ".join(sorted(p.removeprefix("data.") for p in located)) or "(raw text)"
        expected: list[tuple[str, set[str]]] = [
            (needle.value, plan.owners(needle.value)) for needle in plan.find(text)
        ]
        # a record id that embeds a value (email:<address>) belongs to that record's customer
        expected += [
            (token, {owner}) for token, owner in plan.record_tokens.items() if token.lower() in text
        ]
        for value, owners in expected:
            if owners & audited:
                continue
            who = " or ".join(sorted(plan.label(c) for c in owners))
            got = ", ".join(sorted(plan.label(c) for c in audited)) or "no audit line"
            problems[f"{paths}: '{value}' belongs to {who}; audited: {got}"].append(exchange)
    report = [_line(plan, problem, found) for problem, found in sorted(problems.items())]
    assert not report, "PII served without an audit line naming its owner:\n" + "\n".join(report)


#: A node budget the full customer query exceeds but every single field path fits.
TIGHT_NODE_BUDGET = 1_500


def test_queries_refused_for_their_cost_are_split_rather_than_failed(
    canary_world: CanaryWorld, tmp_path: Path
) -> None:
    if "api_max_nodes" not in ApiSettings.model_fields:
        pytest.skip("the API has no request cost budget (api_max_nodes) to refuse with")
    secret = create_key(canary_world.home / "api_keys.yml", "leak-budget", KEY_SCOPES[MASKED_KEY])
    settings = api_settings(
        canary_world.home,
        tmp_path,
        api_enable_introspection=True,
        api_max_nodes=TIGHT_NODE_BUDGET,
    )
    focus = canary_world.plan.customers
    with TestClient(create_app(settings)) as client:

        def post(query: str, variables: dict[str, Any]) -> httpx.Response:
            return client.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {secret}"},
            )

        crawler = Crawler(
            post,
            introspect(post),
            max_depth=settings.api_max_depth,
            allow=lambda field, args: (
                not_admin_only(field)
                and "lookup" not in args
                and (args.get("id", "") in {"", *focus} or field in CATALOGUE_ROOTS)
            ),
        ).crawl()
    assert any(e.refused_for_size for e in crawler.exchanges), "nothing was refused for cost"
    assert not _errors(crawler), "\n".join(_errors(crawler))
    assert crawler.uncovered(EXEMPT) == []
    assert not [e.call() for e in crawler.exchanges if canary_world.plan.find(e.text)]
