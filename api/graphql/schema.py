"""The GraphQL schema: the root queries and how they reach the snapshot, and the decision
mutations (``decide``, ``recordDecisionOutcome``), the only writes the API offers."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig

from api.decisioning import DecisionInputError, DecisionNotFoundError, DecisionUnavailableError
from api.graphql.budget import list_size
from api.graphql.context import Context
from api.graphql.errors import (
    BadInputError,
    ClientError,
    ForbiddenError,
    NotFoundError,
    UnavailableError,
)
from api.graphql.pagination import decode_cursor, encode_cursor, page_size
from api.graphql.permissions import requires, scope_message
from api.graphql.pii import protect_personal_fields
from api.graphql.types.customer import Customer, CustomerConnection, CustomerEdge, strawberry_name
from api.graphql.types.decision import CustomerRef, Decision, sale_ids
from api.graphql.types.erasure import ErasureRequest
from api.graphql.types.explanation import IdentityExplanation, RecordRef, explain
from api.graphql.types.filters import CustomerFilter
from api.graphql.types.identifier import IdentifierLookup
from api.graphql.types.page import PageInfo
from api.graphql.types.product import Product, has_recommendations
from api.graphql.types.segment import Segment
from api.graphql.types.snapshot import SnapshotInfo
from api.lookup import ALIAS_TYPE, normalize_lookup
from api.privacy import ErasureInputError
from api.repositories.customers import (
    TRAIT_OPERATORS,
    TraitCondition,
    count_customers,
    current_ids,
    customers_by_id,
    filter_customers,
    lookup_customer,
)
from api.repositories.database import Database
from api.security import Scope
from api.settings import ApiSettings
from privacy.access import AccessError, PersonRef

MAX_ID_LENGTH = 200
#: Most trait conditions in one filter (each is a join predicate; thousands overflow SQLite).
MAX_TRAIT_CONDITIONS = 20


def _known(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _segment_or_error(context: Context, name: str) -> dict[str, Any]:
    row = context.segment_catalogue().get(name)
    if row is None:
        # No list of the known names: an error never enumerates data (`segments` does that,
        # for keys allowed to read it).
        raise NotFoundError(f"unknown segment '{name[:100]}'; `segments {{ name }}` lists them")
    return row


def _trait_conditions(context: Context, filter: CustomerFilter) -> list[TraitCondition]:
    columns = context.snapshot.manifest.columns.get("customer_traits", {})
    numeric = {c: c for c, kind in columns.items() if kind in ("integer", "float")}
    numeric.update({strawberry_name(c): c for c in list(numeric)})
    conditions = []
    if len(filter.traits or []) > MAX_TRAIT_CONDITIONS:
        raise BadInputError(
            f"{len(filter.traits or [])} trait conditions; at most {MAX_TRAIT_CONDITIONS} "
            "are accepted in one filter"
        )
    for condition in filter.traits or []:
        column = numeric.get(condition.name)
        if column is None:
            raise BadInputError(
                f"'{condition.name[:64]}' is not a numeric trait; use one of: "
                f"{_known(sorted({strawberry_name(c) for c in numeric.values()}), 40)}"
            )
        bounds = [(op, getattr(condition, op)) for op in TRAIT_OPERATORS]
        given = [(op, value) for op, value in bounds if value is not None]
        if not given:
            raise BadInputError(
                f"trait condition on '{condition.name}' has no bound (gt, gte, lt, lte or eq)"
            )
        conditions += [TraitCondition(column, op, float(value)) for op, value in given]
    return conditions


def _survivor(db: Database, retired_id: str) -> dict[str, Any] | None:
    """The golden record of the customer a retired (merged-away) id now belongs to."""
    survivor = current_ids(db, [retired_id]).get(retired_id)
    return customers_by_id(db, [survivor]).get(survivor) if survivor else None


def find_customer(
    context: Context, id: strawberry.ID | None, lookup: IdentifierLookup | None
) -> dict[str, Any] | None:
    """The golden record ``customer(id:)`` or ``customer(lookup:)`` finds (None: nobody).

    Shared by every field that addresses a customer (``decide`` takes the same reference).
    """
    if (id is None) == (lookup is None):
        raise BadInputError("give exactly one of `id` or `lookup`")
    db = context.db
    if id is not None:
        customer_id = str(id).strip()
        if not customer_id or len(customer_id) > MAX_ID_LENGTH:
            raise BadInputError(f"`id` must be 1 to {MAX_ID_LENGTH} characters")
        row = customers_by_id(db, [customer_id]).get(customer_id)
        if row is None:
            row = _survivor(db, customer_id)
        return row
    assert lookup is not None
    kind, value = normalize_lookup(context.snapshot, lookup.type, lookup.value)
    if kind == ALIAS_TYPE:
        return _survivor(db, value)
    hit = lookup_customer(db, kind, value)
    return hit.customer if hit is not None else None


@strawberry.type
class Query:
    @strawberry.field(
        description="One customer by id (an id retired by a merge finds the survivor) or by "
        "any identifier. Null when nobody matches.",
        extensions=requires(Scope.PROFILE_READ),
    )
    def customer(
        self,
        info: strawberry.Info,
        id: strawberry.ID | None = None,
        lookup: IdentifierLookup | None = None,
    ) -> Customer | None:
        # Synchronous on purpose: a root field has nothing to batch with (aliases aside, at
        # most api_max_aliases point reads), and skipping the await machinery is a measurable
        # share of a lookup. Nested fields go through the request's DataLoaders, primed here.
        context: Context = info.context
        row = find_customer(context, id, lookup)
        if row is None:
            return None
        context.loaders.customer.prime(row["customer_id"], row)
        return Customer.from_row(row)

    @strawberry.field(
        description="Customers matching a filter (segment and trait thresholds), by id.",
        extensions=requires(Scope.PROFILE_READ),
    )
    def customers(
        self,
        info: strawberry.Info,
        filter: CustomerFilter,
        first: int | None = None,
        after: str | None = None,
    ) -> CustomerConnection:
        context: Context = info.context
        limit = page_size(
            first,
            default=context.limits.default_page_size,
            maximum=context.limits.max_page_size,
        )
        segment = filter.segment
        if segment is not None:
            if not context.principal.has(Scope.SEGMENTS_READ):
                # membership by filter is an audience export: the same scope as `members`
                raise ForbiddenError(
                    scope_message(Scope.SEGMENTS_READ), requiredScope=Scope.SEGMENTS_READ.value
                )
            _segment_or_error(context, segment)
        conditions = _trait_conditions(context, filter)
        position = decode_cursor(context.sealer, after, "customer", 1)
        db = context.db
        rows = filter_customers(
            db,
            segment=segment,
            conditions=conditions,
            limit=limit + 1,
            after=position[0] if position else None,
        )
        page = rows[:limit]
        edges = []
        for row in page:
            context.loaders.customer.prime(row["customer_id"], row)
            edges.append(CustomerEdge(node=Customer.from_row(row)))
        return CustomerConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > limit,
                end_cursor=encode_cursor(context.sealer, "customer", page[-1]["customer_id"])
                if page
                else None,
            ),
            count=lambda: count_customers(db, segment=segment, conditions=conditions),
        )

    @strawberry.field(
        description="Every segment with its description, owner and size.",
        extensions=requires(Scope.SEGMENTS_READ),
        metadata=list_size(100),
    )
    def segments(self, info: strawberry.Info) -> list[Segment]:
        catalogue = info.context.segment_catalogue()
        return [Segment(row=catalogue[name]) for name in sorted(catalogue)]

    @strawberry.field(
        description="One segment by name; an unknown name is an error.",
        extensions=requires(Scope.SEGMENTS_READ),
    )
    def segment(self, info: strawberry.Info, name: str) -> Segment | None:
        return Segment(row=_segment_or_error(info.context, name))

    @strawberry.field(
        description="Why two identity records are, or are not, one customer: the path of links "
        "and their evidence, or the refusals and reasons (admin: for data stewards).",
        extensions=requires(Scope.ADMIN),
    )
    async def identity_explanation(
        self, info: strawberry.Info, record_a: RecordRef, record_b: RecordRef
    ) -> IdentityExplanation:
        return await explain(info.context, record_a, record_b)

    @strawberry.field(
        description="One product of the catalogue by id; null when unknown.",
        extensions=requires(Scope.PROFILE_READ),
    )
    async def product(self, info: strawberry.Info, id: strawberry.ID) -> Product | None:
        product_id = str(id).strip()
        if not product_id or len(product_id) > MAX_ID_LENGTH:
            raise BadInputError(f"`id` must be 1 to {MAX_ID_LENGTH} characters")
        if not has_recommendations(info):
            return None
        row = await info.context.loaders.products.load(product_id)
        return Product.from_row(row) if row is not None else None

    @strawberry.field(
        description="An erasure request by id: its status overall and per store (admin).",
        extensions=requires(Scope.ADMIN),
    )
    def erasure_request(self, info: strawberry.Info, id: strawberry.ID) -> ErasureRequest | None:
        request_id = str(id).strip()
        if not request_id or len(request_id) > MAX_ID_LENGTH:
            raise BadInputError(f"`id` must be 1 to {MAX_ID_LENGTH} characters")
        found = info.context.erasures.status(request_id)
        return ErasureRequest.from_stored(*found) if found is not None else None

    @strawberry.field(description="The snapshot answering this request.")
    def snapshot(self, info: strawberry.Info) -> SnapshotInfo:
        return SnapshotInfo.from_snapshot(info.context.snapshot)


def _decision_error(exc: Exception) -> ClientError:
    if isinstance(exc, DecisionNotFoundError):
        return NotFoundError(str(exc))
    if isinstance(exc, DecisionUnavailableError):
        return UnavailableError(str(exc))
    return BadInputError(str(exc))


@strawberry.type
class Mutation:
    @strawberry.field(
        description="Decide what a channel shows or sends a customer on a placement, and log "
        "it: every channel asking within the placement's period gets the same decision (id, "
        "theme, items, subject); `send` and `reasons` are the channel's own (consent, caps, "
        "holdout). Asking again from the same channel returns the logged answer.",
        extensions=requires(Scope.DECISIONS_WRITE),
    )
    def decide(
        self,
        info: strawberry.Info,
        customer: CustomerRef,
        channel: str,
        placement: str,
        context: JSON | None = None,
    ) -> Decision:
        ctx: Context = info.context
        if context is not None and not isinstance(context, dict):
            raise BadInputError('`context` must be a JSON object (e.g. {"page": "/home"})')
        row = find_customer(ctx, customer.id, customer.lookup)
        if row is None:
            raise NotFoundError(
                "no customer matches `customer`; check the id or identifier "
                "(`customer(...)` finds the same customers)"
            )
        try:
            decided = ctx.decisions.decide(
                ctx.db,
                ctx.snapshot,
                row["customer_id"],
                channel.strip(),
                placement.strip(),
                context,
            )
        except (DecisionInputError, DecisionNotFoundError, DecisionUnavailableError) as exc:
            raise _decision_error(exc) from exc
        ctx.decisions.observe(decided)
        sales = ctx.decisions.sales(ctx.db, ctx.snapshot, sale_ids([decided]))
        return Decision.from_decision(decided, sales)

    @strawberry.field(
        description="Report what came of a decision on a channel: open, click, visit, purchase "
        "(with revenue), unsubscribe or bounce. An unsubscribe withdraws the customer's consent "
        "on the channel at once. True when recorded, false when this channel already reported "
        "this kind for the decision (the first report counts).",
        extensions=requires(Scope.DECISIONS_WRITE),
    )
    def record_decision_outcome(
        self,
        info: strawberry.Info,
        decision_id: strawberry.ID,
        channel: str,
        kind: str,
        revenue: float | None = None,
    ) -> bool:
        ctx: Context = info.context
        decision = str(decision_id).strip()
        if not decision or len(decision) > MAX_ID_LENGTH:
            raise BadInputError(f"`decisionId` must be 1 to {MAX_ID_LENGTH} characters")
        if revenue is not None and (revenue < 0 or revenue != revenue):
            raise BadInputError("`revenue` must be a non-negative number")
        try:
            outcome = ctx.decisions.record_outcome(
                decision, channel.strip(), kind.strip().lower(), revenue
            )
        except (DecisionInputError, DecisionNotFoundError) as exc:
            raise _decision_error(exc) from exc
        return outcome.is_recorded

    @strawberry.field(
        description="Ask for a person to be erased (admin). The person is found as "
        "`customer(...)` finds them (or in the event log and live profiles) and recorded only "
        "as keyed hashes of their identifiers; at once the intake and ingest drop their data, "
        "and the pipeline removes them from every store within a minute (`erasureRequest` "
        "follows it). An unknown person gives status `nothing_held`; asking again for an "
        "erased person returns the earlier request.",
        extensions=requires(Scope.ADMIN),
    )
    def request_erasure(self, info: strawberry.Info, customer: CustomerRef) -> ErasureRequest:
        ctx: Context = info.context
        if (customer.id is None) == (customer.lookup is None):
            raise BadInputError("give exactly one of `id` or `lookup`")
        try:
            if customer.id is not None:
                person = PersonRef(customer_id=str(customer.id))
            else:
                assert customer.lookup is not None
                person = PersonRef(
                    identifier_type=customer.lookup.type, value=customer.lookup.value
                )
            planned = ctx.erasures.request(person, requested_by=f"api:{ctx.principal.name}")
        except (AccessError, ErasureInputError) as exc:
            raise BadInputError(str(exc)) from exc
        found = ctx.erasures.status(planned.request_id)
        assert found is not None
        return ErasureRequest.from_stored(*found, message=planned.message)


def build_schema(settings: ApiSettings) -> strawberry.Schema:
    """The schema with every personal field protected (``api.graphql.pii``).

    Limits, caches, the request budget and bookkeeping live in ``api.graphql.executor``.
    """
    schema = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(disable_field_suggestions=not settings.api_enable_introspection),
    )
    protect_personal_fields(schema)
    return schema
