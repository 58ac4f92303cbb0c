"""The executor answers exactly as strawberry's own ``Schema.execute`` would.

``api.graphql.executor`` runs operations on the graphql-core schema strawberry builds, without
strawberry's per-request extension runner. This test runs a corpus of queries both ways on the
constructed world and compares data, errors and the PII reads (what the audit log records):

* the executor, as the app builds it (``ApiState``);
* ``Schema.execute`` (async) on a second schema built from the same ``Query`` with strawberry's
  own ``QueryDepthLimiter``, ``MaxAliasesLimiter``, ``MaxTokensLimiter``,
  ``DisableIntrospection`` and ``MaskErrors`` as schema extensions, the same settings, the same
  personal-field protection, and an identical ``Context`` per run.

The intended differences are tests of their own at the end (``test_difference_*``): budget
refusals exist only in the executor; it strips "Did you mean" from every error while
introspection is off (strawberry only from unknown-field errors); it refuses non-query
operations before GraphQL (HTTP 400), and so a document of several operations without an
operation name (strawberry runs the first named one; the GraphQL spec makes it an error). The
time and response-size budgets are tested in ``test_budget.py``. Finally, what the executor
would skip it refuses at start.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import strawberry
from strawberry.directive import DirectiveLocation
from strawberry.extensions import (
    DisableIntrospection,
    FieldExtension,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig

from api.graphql import compat
from api.graphql.context import Context
from api.graphql.errors import is_client_error
from api.graphql.executor import (
    INTERNAL_ERROR_MESSAGE,
    OperationExecutor,
    RequestError,
    UnsupportedSchemaError,
)
from api.graphql.pagination import encode_cursor
from api.graphql.pii import protect_personal_fields
from api.graphql.schema import Mutation, Query
from api.main import ApiState, create_app
from api.settings import ApiSettings
from tests.support.api_harness import Published, api_settings

Variables = dict[str, Any] | Callable[["Harness"], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    """One query of the corpus, asked with one key."""

    name: str
    query: str
    key: str = "admin"
    variables: Variables | None = None
    operation_name: str | None = None


DECIDE = (
    "mutation D($c: CustomerRef!, $p: String!, $ch: String!) { decide(customer: $c, "
    "placement: $p, channel: $ch) { decisionId customerId channel placement policyVersion "
    "decidedAt expiresAt send reasons theme subject blocks isHoldout "
    "experiment { experiment arm isHoldout } items { product { id name } sale { id } score "
    "propensity isWildcard reasons } } }"
)


@dataclass
class Answer:
    """What one path answered: the response body, or a refusal outside GraphQL."""

    body: dict[str, Any] | None
    refused: str | None
    pii_reads: dict[str, set[str]] = field(default_factory=dict)


def reference_schema(settings: ApiSettings) -> strawberry.Schema:
    """``build_schema``'s schema run the standard way: limits and masking as extensions."""
    schema = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(disable_field_suggestions=not settings.api_enable_introspection),
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=settings.api_max_tokens),
            lambda: QueryDepthLimiter(max_depth=settings.api_max_depth),
            lambda: MaxAliasesLimiter(max_alias_count=settings.api_max_aliases),
            DisableIntrospection,
            lambda: MaskErrors(
                should_mask_error=lambda error: not is_client_error(error),
                error_message=INTERNAL_ERROR_MESSAGE,
            ),
        ],
    )
    protect_personal_fields(schema)
    return schema


class Harness:
    """The app's state (executor, snapshot, keys) and the reference schema, side by side."""

    def __init__(self, published: Published, settings: ApiSettings) -> None:
        self.keys = published.keys
        self.settings = settings
        self.state = ApiState(settings)
        self.state.refresh()
        assert self.state.snapshots.current is not None
        self.reference = reference_schema(settings)

    def context(self, key: str, request_id: str) -> Context:
        principal = self.state.keys.authenticate(self.keys[key])
        assert principal is not None
        return Context(
            snapshot=self.state.snapshots.current,  # type: ignore[arg-type]
            principal=principal,
            limits=self.state.limits,
            request_id=request_id,
            sealer=self.state.sealer,
            deadline=time.monotonic() + 30,
            decisions=self.state.decisions,
        )

    def variables(self, case: Case) -> dict[str, Any] | None:
        return case.variables(self) if callable(case.variables) else case.variables

    async def executor(self, case: Case) -> Answer:
        context = self.context(case.key, "parity-executor")
        try:
            raw = await self.state.executor.run(
                case.query, self.variables(case), case.operation_name, context
            )
        except RequestError as refused:
            return Answer(None, str(refused))
        return Answer(orjson.loads(raw), None, dict(context.pii_reads))

    async def strawberry(self, case: Case) -> Answer:
        context = self.context(case.key, "parity-strawberry")
        try:
            result = await self.reference.execute(
                case.query,
                variable_values=self.variables(case),
                context_value=context,
                operation_name=case.operation_name,
            )
        except Exception as refused:  # strawberry raises what it cannot run at all
            return Answer(None, type(refused).__name__)
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        return Answer(orjson.loads(orjson.dumps(body)), None, dict(context.pii_reads))

    def both(self, case: Case) -> tuple[Answer, Answer]:
        resolved = replace(case, variables=self.variables(case))  # page-two cursors run first

        async def run() -> tuple[Answer, Answer]:
            return await self.executor(resolved), await self.strawberry(resolved)

        return asyncio.run(run())

    def end_cursor(self, query: str, variables: dict[str, Any], *path: str) -> str:
        """The endCursor of a first page, as the executor returns it (used for page two)."""
        answer = asyncio.run(self.executor(Case("first page", query, variables=variables)))
        assert answer.body is not None and "errors" not in answer.body, answer.body
        value: Any = answer.body["data"]
        for step in path:
            value = value[step]
        assert value["pageInfo"]["hasNextPage"], value
        return str(value["pageInfo"]["endCursor"])

    def close(self) -> None:
        self.state.snapshots.close()
        self.state.audit.close()


@pytest.fixture(scope="module")
def harness(published: Published, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    settings = api_settings(published.home, tmp_path_factory.mktemp("parity"))
    ready = Harness(published, settings)
    yield ready
    ready.close()


# -- the corpus -------------------------------------------------------------------------------

PROFILE = """query P($id: ID!) { customer(id: $id) { customerId email phone firstName lastName
  fullName birthDate streetAddress postalCode city region country isAnonymous signedUpAt
  recordCount profileRecordCount sourceCount maskedFields
  consents { channel isGranted source updatedAt } provenance { attribute source updatedAt }
  traits { orderCount lifetimeRevenue engagementScore lastActiveAt favouriteCategory }
  identifiers { type value source firstSeenAt lastSeenAt recordCount }
  emails: identifiers(types: ["email"]) { value source } } }"""
IDENTITY = """query I($id: ID!) { customer(id: $id) { customerId identity {
  records { recordUid source recordId evidence { evidenceType rule identifierType
    matchProbability matchWeight details isAccepted rejectedReason
    otherRecord { recordUid source recordId customerId isSameCustomer } } }
  history { occurredAt runId eventType customerId relatedCustomerId cause } } } }"""
LOOKUP = """query L($t: String!, $v: String!) { customer(lookup: {type: $t, value: $v}) {
  customerId email identifiers(types: [$t]) { value } } }"""
MEMBERS = """query M($name: String!, $first: Int, $after: String) { segment(name: $name) {
  name size members(first: $first, after: $after) { totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor customerId enteredAt node { customerId email
      traits { orderCount lifetimeRevenue }
      segments { name enteredAt segment { owner } } } } } } }"""
EVENTS = """query E($id: ID!, $first: Int, $after: String) { customer(id: $id) {
  events(first: $first, after: $after) { pageInfo { hasNextPage endCursor }
    edges { cursor node { eventId occurredAt channel eventType source productId orderId amount
      detail } } } } }"""
FILTERED = """query F($filter: CustomerFilter!, $first: Int, $after: String) {
  customers(filter: $filter, first: $first, after: $after) { totalCount
    pageInfo { hasNextPage endCursor } edges { cursor node { customerId traits { orderCount } } } }
}"""
EXPLAIN = """query X($a: RecordRef!, $b: RecordRef!) {
  identityExplanation(recordA: $a, recordB: $b) { isSameCustomer reasons summary
  recordA { recordUid customerId } recordB { recordUid customerId }
  path { record { recordUid source recordId } otherRecord { recordUid }
    evidence { rule details isAccepted } }
  refusedLinks { record { recordId } otherRecord { recordId customerId isSameCustomer }
    evidence { rule rejectedReason details } } } }"""
DEEP = """{ customer(id: "cus_0000") { segments { segment { members(first: 1) { edges { node {
  segments { segment { members(first: 1) { edges { customerId } } } } } } } } } } }"""


def _members_page_two(h: Harness) -> dict[str, Any]:
    first = {"name": "frequent_buyers", "first": 3}
    return {**first, "after": h.end_cursor(MEMBERS, first, "segment", "members")}


def _events_page_two(h: Harness) -> dict[str, Any]:
    first = {"id": "cus_0000", "first": 10}
    return {**first, "after": h.end_cursor(EVENTS, first, "customer", "events")}


def _filtered_page_two(h: Harness) -> dict[str, Any]:
    first = {"filter": {"segment": "high_value"}, "first": 5}
    return {**first, "after": h.end_cursor(FILTERED, first, "customers")}


def _foreign_cursor(h: Harness) -> dict[str, Any]:
    cursor = encode_cursor(h.state.sealer, "member:frequent_buyers", "cus_0004")
    return {"id": "cus_0000", "first": 5, "after": cursor}


def _ref(uid: str) -> dict[str, str]:
    source, record_id = uid.split(":", 1)
    return {"source": source, "recordId": record_id}


CORPUS: list[Case] = [
    # lookups by id, alias and every identifier type, masked and revealed
    Case("profile by id, masked", PROFILE, "web", {"id": "cus_0001"}),
    Case("profile by id, pii:read", PROFILE, "pii", {"id": "cus_0002"}),
    Case("anonymous profile", PROFILE, "pii", {"id": "cus_0299"}),
    Case("retired id finds the survivor", PROFILE, "web", {"id": "cus_older_0001"}),
    Case("unknown id is null", PROFILE, "web", {"id": "cus_9999"}),
    Case("email lookup", LOOKUP, "pii", {"t": "email", "v": " Person4@ShopMail.com "}),
    Case("phone lookup", LOOKUP, "pii", {"t": "phone", "v": "+1 (415) 555-0007"}),
    Case("phone lookup, national form", LOOKUP, "web", {"t": "phone", "v": "4155550008"}),
    Case("account lookup", LOOKUP, "pii", {"t": "account_id", "v": "ACC-9"}),
    Case("loyalty lookup", LOOKUP, "web", {"t": "loyalty_id", "v": "L000010"}),
    Case("cookie lookup", LOOKUP, "pii", {"t": "cookie_id", "v": "ck_299"}),
    Case("alias lookup", LOOKUP, "web", {"t": "alias_customer_id", "v": "cus_old_0001"}),
    Case("nobody", LOOKUP, "web", {"t": "email", "v": "nobody@example.org"}),
    # identity explanations: evidence about other customers, masked and revealed
    Case("identity, masked", IDENTITY, "web", {"id": "cus_0005"}),
    Case("identity, pii:read", IDENTITY, "pii", {"id": "cus_0005"}),
    Case("identity with history", IDENTITY, "pii", {"id": "cus_0001"}),
    Case("email record", IDENTITY, "web", {"id": "cus_0003"}),
    Case(
        "explanation: refused",
        EXPLAIN,
        "admin",
        {"a": _ref("crm:5"), "b": _ref("crm:6")},
    ),
    Case(
        "explanation: path",
        EXPLAIN,
        "admin",
        {"a": _ref("crm:1"), "b": _ref("web_events:cookie:ck_1")},
    ),
    # segments, pages and cursors
    Case("segment catalogue", "{ segments { name description owner family definedBy size } }"),
    Case("members page one", MEMBERS, "web", {"name": "frequent_buyers", "first": 3}),
    Case("members page two", MEMBERS, "web", _members_page_two),
    Case("members default page", MEMBERS, "pii", {"name": "high_value"}),
    Case("events page one", EVENTS, "pii", {"id": "cus_0000", "first": 10}),
    Case("events page two", EVENTS, "web", _events_page_two),
    Case("filter by segment", FILTERED, "web", {"filter": {"segment": "high_value"}, "first": 5}),
    Case("filter page two", FILTERED, "web", _filtered_page_two),
    Case(
        "filter by traits",
        FILTERED,
        "profile",
        {
            "filter": {
                "traits": [
                    {"name": "orderCount", "gte": 5},
                    {"name": "lifetime_revenue", "lt": 900},
                ]
            },
            "first": 20,
        },
    ),
    Case(
        "aliases, fragments and several roots",
        """query Q { a: customer(id: "cus_0002") { ...Who } b: customer(lookup: {type: "email",
          value: "person3@shopmail.com"}) { ...Who } segments { name } snapshot { snapshotId
          asOf tables { name rowCount } } } fragment Who on Customer { customerId email }""",
        "web",
    ),
    Case(
        "operation picked by name",
        'query A { snapshot { snapshotId } } query B { customer(id: "cus_0004") { phone } }',
        "pii",
        operation_name="B",
    ),
    Case(
        "include and skip",
        """query D($with: Boolean!) { customer(id: "cus_0006") { customerId
          email @include(if: $with) phone @skip(if: $with) } }""",
        "pii",
        {"with": False},
    ),
    Case("typename", '{ __typename customer(id: "cus_0001") { __typename customerId } }'),
    # bad input
    Case(
        "id and lookup", '{ customer(id: "x", lookup: {type: "email", value: "a@b.co"}) { email } }'
    ),
    Case("neither id nor lookup", "{ customer { email } }"),
    Case("id too long", PROFILE, "web", {"id": "x" * 201}),
    Case("unknown identifier type", LOOKUP, "web", {"t": "fax", "v": "123"}),
    Case("invalid phone", LOOKUP, "web", {"t": "phone", "v": "12"}),
    Case("junk email", LOOKUP, "web", {"t": "email", "v": "test@example.com"}),
    Case("invalid email", LOOKUP, "web", {"t": "email", "v": "not-an-email"}),
    Case("empty value", LOOKUP, "web", {"t": "email", "v": "  "}),
    Case("oversize page", MEMBERS, "web", {"name": "browsers", "first": 500}),
    Case("page of zero", EVENTS, "web", {"id": "cus_0000", "first": 0}),
    Case("garbage cursor", EVENTS, "web", {"id": "cus_0000", "after": "garbage"}),
    Case("another list's cursor", EVENTS, "web", _foreign_cursor),
    Case("unknown trait", FILTERED, "web", {"filter": {"traits": [{"name": "shoeSize", "gt": 1}]}}),
    Case("trait without bound", FILTERED, "web", {"filter": {"traits": [{"name": "orderCount"}]}}),
    Case(
        "too many trait conditions",
        FILTERED,
        "web",
        {"filter": {"traits": [{"name": "orderCount", "gt": i} for i in range(21)]}},
    ),
    Case("missing variable", LOOKUP, "web", {"t": "email"}),
    Case("variable of the wrong type", EVENTS, "web", {"id": "cus_0000", "first": "ten"}),
    Case(
        "unknown explanation record",
        EXPLAIN,
        "admin",
        {"a": _ref("crm:1"), "b": _ref("crm:404")},
    ),
    # unknown fields, syntax and the validation limits
    Case("unknown field", '{ customer(id: "cus_0001") { customerId nope } }'),
    Case("unknown field with a suggestion", '{ customer(id: "cus_0001") { emial } }'),
    Case("unknown type in a fragment", "{ ...F } fragment F on Nope { x }"),
    Case("syntax error", '{ customer(id: "cus_0001" { email } }'),
    Case("too many tokens", "{ " + " ".join(f"a{i}: __typename" for i in range(700)) + " }"),
    Case("too deep", DEEP, "web"),
    Case(
        "too many aliases",
        "{ " + " ".join(f"s{i}: snapshot {{ snapshotId }}" for i in range(16)) + " }",
    ),
    Case("introspection off", "{ __schema { queryType { name } } }"),
    Case("type introspection off", '{ __type(name: "Customer") { name } }'),
    # scopes and unknown names
    Case("missing scope at the root", "{ segments { name } }", "profile"),
    Case(
        "missing scope inside",
        '{ customer(id: "cus_0000") { customerId segments { name } } }',
        "profile",
    ),
    Case(
        "missing scope for a member's profile",
        '{ segment(name: "browsers") { members(first: 2) { edges { customerId '
        "node { email } } } } }",
        "segments",
    ),
    Case(
        "segment filter needs segments:read",
        FILTERED,
        "profile",
        {"filter": {"segment": "high_value"}},
    ),
    Case("explanation needs admin", EXPLAIN, "pii", {"a": _ref("crm:5"), "b": _ref("crm:6")}),
    Case("unknown segment", '{ segment(name: "nope") { name } }', "segments"),
    Case("unknown segment in a filter", FILTERED, "web", {"filter": {"segment": "nope"}}),
    # the decision mutations (the second path gets the logged delivery of the first: the
    # same answer, read back from the decision log)
    Case("decide", DECIDE, "admin", {"c": {"id": "cus_0002"}, "p": "daily_email", "ch": "web"}),
    Case(
        "decide by lookup, masked",
        DECIDE,
        "channel",
        {
            "c": {"lookup": {"type": "email", "value": "person4@shopmail.com"}},
            "p": "daily_email",
            "ch": "email",
        },
    ),
    Case(
        "decide needs decisions:write",
        DECIDE,
        "web",
        {"c": {"id": "cus_0002"}, "p": "daily_email", "ch": "web"},
    ),
    Case(
        "decide, unknown placement",
        DECIDE,
        "admin",
        {"c": {"id": "cus_0002"}, "p": "nope", "ch": "web"},
    ),
    Case(
        "outcome of an unknown decision",
        'mutation { recordDecisionOutcome(decisionId: "d_nope", channel: "web", kind: "click") }',
        "admin",
    ),
    # refused outside GraphQL (HTTP 400 in the app)
    Case("unknown operation name", "query A { snapshot { snapshotId } }", operation_name="Nope"),
]


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_the_executor_answers_as_strawberry_does(harness: Harness, case: Case) -> None:
    mine, theirs = harness.both(case)
    if theirs.refused is not None or mine.refused is not None:
        # both refuse to run it at all (strawberry raises, the executor answers HTTP 400)
        assert (mine.refused is None) == (theirs.refused is None), (mine, theirs)
        return
    assert mine.body == theirs.body
    assert mine.pii_reads == theirs.pii_reads


def test_the_corpus_exercises_what_it_claims(harness: Harness) -> None:
    """Guards against a corpus that silently stops testing: errors, masking, audit, pages."""
    answers = {case.name: harness.both(case)[0] for case in CORPUS}
    codes = {
        (error.get("extensions") or {}).get("code", "VALIDATION")
        for answer in answers.values()
        for error in (answer.body or {}).get("errors", [])
    }
    assert {"BAD_USER_INPUT", "FORBIDDEN", "NOT_FOUND", "VALIDATION"} <= codes
    assert answers["identity, pii:read"].pii_reads.keys() == {"cus_0005", "cus_0006"}
    assert not answers["identity, masked"].pii_reads
    masked = answers["profile by id, masked"].body
    assert masked is not None and masked["data"]["customer"]["email"] == "***"
    assert answers["members page two"].body["data"]["segment"]["members"]["edges"]  # type: ignore[index]
    refused = answers["explanation: refused"].body
    assert refused is not None and refused["data"]["identityExplanation"]["refusedLinks"]


def test_unexpected_errors_are_masked_the_same_way(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> Any:
        raise RuntimeError("secret detail of an internal failure")

    monkeypatch.setattr("api.graphql.schema.customers_by_id", broken)
    mine, theirs = harness.both(Case("internal error", PROFILE, "web", {"id": "cus_0001"}))
    assert mine.body == theirs.body
    assert mine.body is not None
    assert mine.body["errors"][0]["message"] == INTERNAL_ERROR_MESSAGE
    assert "secret detail" not in orjson.dumps(mine.body).decode()


# -- intended differences ---------------------------------------------------------------------


def _suggestion_free(message: str) -> str:
    return re.sub(r"\s*Did you mean [^?]*\?", "", message)


def test_difference_budget_refusals_exist_only_in_the_executor(harness: Harness) -> None:
    repeated = Case("repeats", "{ " + "snapshot { snapshotId } " * 11 + "}")
    fan_out = Case(
        "nodes",
        """{ customers(filter: {}, first: 100) { edges { node { events(first: 100) { edges {
          node { eventId } } } segments { segment { members(first: 100) { edges {
          customerId } } } } } } } }""",
    )
    for case, budget in ((repeated, "repeats"), (fan_out, "nodes")):
        mine = asyncio.run(harness.executor(case))
        assert mine.body is not None and mine.body["data"] is None
        assert mine.body["errors"][0]["extensions"]["code"] == "BUDGET_EXCEEDED"
        assert mine.body["errors"][0]["extensions"]["budget"] == budget
    theirs = asyncio.run(harness.strawberry(repeated))
    assert theirs.body is not None and "errors" not in theirs.body


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ('{ customer(idd: "cus_0001") { customerId } }', None),
        (
            "query($l: IdentifierLookup!) { customer(lookup: $l) { customerId } }",
            {"l": {"type": "email", "valu": "a@b.co"}},
        ),
    ],
    ids=["unknown argument", "unknown input field in a variable"],
)
def test_difference_every_suggestion_is_stripped_while_introspection_is_off(
    harness: Harness, query: str, variables: dict[str, Any] | None
) -> None:
    """Strawberry's ``disable_field_suggestions`` strips only unknown-field errors; a
    suggestion elsewhere still names schema members that introspection would not show."""
    mine, theirs = harness.both(Case("suggestion", query, "admin", variables))
    assert theirs.body is not None and mine.body is not None
    assert any("Did you mean" in e["message"] for e in theirs.body["errors"])
    assert mine.body == {
        **theirs.body,
        "errors": [{**e, "message": _suggestion_free(e["message"])} for e in theirs.body["errors"]],
    }


def test_difference_several_operations_need_an_operation_name(harness: Harness) -> None:
    """The GraphQL spec (GetOperation) makes this a request error; strawberry runs the first
    named operation instead. Found by this test."""
    case = Case(
        "several operations, no name", "query A { __typename } query B { snapshot { asOf } }"
    )
    mine, theirs = harness.both(case)
    assert mine.refused == "Can't get GraphQL operation type"
    assert theirs.body == {"data": {"__typename": "Query"}}


def test_difference_subscriptions_are_refused(harness: Harness) -> None:
    """Queries and mutations (decide, recordDecisionOutcome) run; a subscription is a request
    error, where strawberry's execute reports it as an operation it cannot run."""
    case = Case("subscription", "subscription { nothing }")
    mine, theirs = harness.both(case)
    assert mine.refused == "subscriptions are not offered: send a query or a mutation"
    assert theirs.body is None or theirs.body["data"] is None


# -- what the executor refuses to skip --------------------------------------------------------


class Shout(FieldExtension):
    """A field extension the executor does not know."""

    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        return str(next_(source, info, **kwargs)).upper()


class Timing(SchemaExtension):
    """A schema extension (its hooks run only in strawberry's extension runner)."""


@strawberry.directive(locations=[DirectiveLocation.FIELD])
def shout(value: str) -> str:
    """An operation directive with a resolver (run by DirectivesExtension)."""
    return value.upper()


@strawberry.type
class ShoutingQuery:
    @strawberry.field(extensions=[Shout()])
    def hello(self) -> str:
        return "hi"


@strawberry.type
class PlainQuery:
    @strawberry.field(extensions=[compat.PermissionExtension(permissions=[], use_directives=False)])
    def hello(self) -> str:
        return "hi"


def _executor(schema: strawberry.Schema, tmp_path: Path) -> OperationExecutor:
    from api.metrics import ApiMetrics
    from api.security import AuditLog

    settings = ApiSettings(home=tmp_path, api_audit_dir=tmp_path / "audit")
    return OperationExecutor(schema, settings, ApiMetrics(), AuditLog(settings.audit_dir))


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        (
            lambda: strawberry.Schema(query=ShoutingQuery),
            "ShoutingQuery.hello: field extension Shout",
        ),
        (
            lambda: strawberry.Schema(query=PlainQuery, extensions=[Timing]),
            "schema extension Timing",
        ),
        (
            lambda: strawberry.Schema(query=PlainQuery, directives=[shout]),
            "operation directive @shout",
        ),
        (
            lambda: strawberry.Schema(
                query=PlainQuery,
                config=StrawberryConfig(enable_experimental_incremental_execution=True),
            ),
            "enable_experimental_incremental_execution",
        ),
    ],
    ids=["field extension", "schema extension", "operation directive", "incremental delivery"],
)
def test_what_the_executor_would_skip_fails_at_start(
    schema: Callable[[], strawberry.Schema], named: str, tmp_path: Path
) -> None:
    with pytest.raises(UnsupportedSchemaError, match=re.escape(named)):
        _executor(schema(), tmp_path)


def test_the_reference_schema_itself_is_refused(harness: Harness, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSchemaError) as refused:
        _executor(harness.reference, tmp_path)
    for name in (
        "MaxTokensLimiter",
        "QueryDepthLimiter",
        "MaxAliasesLimiter",
        "DisableIntrospection",
        "MaskErrors",
    ):
        assert f"schema extension {name}" in str(refused.value)


def test_permission_extensions_are_supported(tmp_path: Path) -> None:
    _executor(strawberry.Schema(query=PlainQuery), tmp_path)


def test_create_app_fails_on_an_unsupported_schema(
    published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "api.main.build_schema", lambda _settings: strawberry.Schema(query=ShoutingQuery)
    )
    with pytest.raises(UnsupportedSchemaError, match=r"ShoutingQuery\.hello"):
        create_app(api_settings(published.home, tmp_path))


# -- the tested strawberry version ------------------------------------------------------------


def test_the_installed_strawberry_is_the_tested_one() -> None:
    """An upgrade is taken by running this file on it, then moving TESTED_STRAWBERRY_VERSION."""
    assert compat.installed_strawberry_version() == compat.TESTED_STRAWBERRY_VERSION


def test_another_strawberry_version_warns_at_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setattr(compat, "installed_strawberry_version", lambda: "0.999.0")
    with caplog.at_level(logging.WARNING, logger="api.graphql.compat"):
        _executor(strawberry.Schema(query=PlainQuery), tmp_path)
    assert "strawberry-graphql 0.999.0 is installed" in caplog.text
    assert compat.TESTED_STRAWBERRY_VERSION in caplog.text


def test_every_strawberry_internal_comes_from_compat() -> None:
    """The executor, pii.py and budget.py reach strawberry's internals only through compat."""
    public = {"from strawberry.schema import BaseSchema"}
    api = Path(__file__).resolve().parents[2] / "api" / "graphql"
    for name in ("executor.py", "pii.py", "budget.py"):
        text = (api / name).read_text(encoding="utf-8")
        imports = {
            line.strip()
            for line in text.splitlines()
            if re.match(r"\s*(from|import) strawberry\b", line)
        }
        assert imports <= public, (name, imports - public)
        assert not re.search(r"(?<!self)\._schema\b", text), name
        assert "GraphQLCoreConverter.DEFINITION_BACKREF" not in text, name
        assert ".validation_rules" not in text, name
