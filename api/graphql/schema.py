"""The GraphQL schema: queries, security extensions, caches, and per-operation bookkeeping."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import strawberry
from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from api.graphql.context import Context
from api.graphql.errors import BadInputError, NotFoundError, error_code, is_client_error
from api.graphql.pagination import decode_cursor, encode_cursor, page_size
from api.graphql.permissions import requires
from api.graphql.types.customer import Customer, CustomerConnection, CustomerEdge, strawberry_name
from api.graphql.types.filters import CustomerFilter
from api.graphql.types.identifier import IdentifierLookup
from api.graphql.types.page import PageInfo
from api.graphql.types.segment import Segment
from api.graphql.types.snapshot import SnapshotInfo
from api.lookup import ALIAS_TYPE, normalize_lookup
from api.metrics import ApiMetrics
from api.repositories.customers import (
    TRAIT_OPERATORS,
    TraitCondition,
    count_customers,
    current_ids,
    filter_customers,
    lookup_customer,
)
from api.security import AuditLog, Scope
from api.settings import ApiSettings

logger = logging.getLogger(__name__)

#: Distinct query texts whose parse and validation results are cached per process.
CACHE_SIZE = 512
MAX_ID_LENGTH = 200
INTERNAL_ERROR_MESSAGE = (
    "Internal error; it has been logged. Retry, or report the X-Request-Id response header."
)


def _known(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _segment_or_error(context: Context, name: str) -> dict[str, Any]:
    catalogue = context.segment_catalogue()
    row = catalogue.get(name)
    if row is None:
        raise NotFoundError(
            f"unknown segment '{name[:100]}'; known segments: {_known(sorted(catalogue))}"
        )
    return row


def _trait_conditions(context: Context, filter: CustomerFilter) -> list[TraitCondition]:
    columns = context.snapshot.manifest.columns.get("customer_traits", {})
    numeric = {c: c for c, kind in columns.items() if kind in ("integer", "float")}
    numeric.update({strawberry_name(c): c for c in list(numeric)})
    conditions = []
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


@strawberry.type
class Query:
    @strawberry.field(
        description="One customer by id (an id retired by a merge finds the survivor) or by "
        "any identifier. Null when nobody matches.",
        extensions=requires(Scope.PROFILE_READ),
    )
    async def customer(
        self,
        info: strawberry.Info,
        id: strawberry.ID | None = None,
        lookup: IdentifierLookup | None = None,
    ) -> Customer | None:
        context: Context = info.context
        if (id is None) == (lookup is None):
            raise BadInputError("give exactly one of `id` or `lookup`")
        db = context.snapshot.db
        loaders = context.loaders
        if id is not None:
            customer_id = str(id).strip()
            if not customer_id or len(customer_id) > MAX_ID_LENGTH:
                raise BadInputError(f"`id` must be 1 to {MAX_ID_LENGTH} characters")
            row = await loaders.customer.load(customer_id)
            if row is None:
                survivor = current_ids(db, [customer_id]).get(customer_id)
                row = await loaders.customer.load(survivor) if survivor else None
            return Customer.from_row(row) if row is not None else None
        assert lookup is not None
        kind, value = normalize_lookup(context.snapshot, lookup.type, lookup.value)
        if kind == ALIAS_TYPE:
            survivor = current_ids(db, [value]).get(value)
            row = await loaders.customer.load(survivor) if survivor else None
            return Customer.from_row(row) if row is not None else None
        hit = lookup_customer(db, kind, value)
        if hit is None:
            return None
        loaders.customer.prime(hit.customer["customer_id"], hit.customer)
        return Customer.from_row(hit.customer)

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
            _segment_or_error(context, segment)
        conditions = _trait_conditions(context, filter)
        position = decode_cursor(after, "customer", 1)
        db = context.snapshot.db
        rows = filter_customers(
            db,
            segment=segment,
            conditions=conditions,
            limit=limit + 1,
            after=position[0] if position else None,
        )
        edges = []
        for row in rows[:limit]:
            context.loaders.customer.prime(row["customer_id"], row)
            edges.append(
                CustomerEdge(
                    cursor=encode_cursor("customer", row["customer_id"]),
                    node=Customer.from_row(row),
                )
            )
        return CustomerConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > limit,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            count=lambda: count_customers(db, segment=segment, conditions=conditions),
        )

    @strawberry.field(
        description="Every segment with its description, owner and size.",
        extensions=requires(Scope.SEGMENTS_READ),
    )
    def segments(self, info: strawberry.Info) -> list[Segment]:
        catalogue = info.context.segment_catalogue()
        return [Segment(row=catalogue[name]) for name in sorted(catalogue)]

    @strawberry.field(
        description="One segment by name; an unknown name is an error listing the known ones.",
        extensions=requires(Scope.SEGMENTS_READ),
    )
    def segment(self, info: strawberry.Info, name: str) -> Segment | None:
        return Segment(row=_segment_or_error(info.context, name))

    @strawberry.field(description="The snapshot answering this request.")
    def snapshot(self, info: strawberry.Info) -> SnapshotInfo:
        return SnapshotInfo.from_snapshot(info.context.snapshot)


def _root_fields(execution_context: ExecutionContext) -> str | None:
    document = execution_context.graphql_document
    if document is None:
        return None
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            names = {
                selection.name.value
                for selection in definition.selection_set.selections
                if getattr(selection, "name", None) is not None
            }
            return ",".join(sorted(names)) or None
    return None


def _operation_extension(metrics: ApiMetrics, audit: AuditLog) -> type[SchemaExtension]:
    class OperationBookkeeping(SchemaExtension):
        """Times and counts each operation and writes its PII reads to the audit log.

        Listed last, so it sees errors before MaskErrors replaces the unexpected ones.
        """

        def on_operation(self) -> Iterator[None]:
            started = time.perf_counter()
            yield
            execution = self.execution_context
            result = execution.result
            errors: list[GraphQLError] = list(
                (result.errors if result is not None else None)
                or execution.pre_execution_errors
                or []
            )
            status = "ok" if not errors else error_code(errors[0]).lower()
            operation = metrics.operation_label(execution.operation_name or _root_fields(execution))
            metrics.observe_operation(operation, status, time.perf_counter() - started)
            context = execution.context
            if isinstance(context, Context) and context.pii_reads:
                audit.write(context.audit_entries(operation))

    return OperationBookkeeping


class _MaskErrors(MaskErrors):
    """MaskErrors without its per-request ``isinstance`` against a runtime Protocol.

    That check alone cost about 7% of a lookup's CPU; a plain attribute test is equivalent for
    the results this schema produces. If strawberry renames the hook, the stock (slower)
    behaviour applies, so masking never depends on this override.
    """

    def _process_result(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]


class CdpSchema(strawberry.Schema):
    """Logs unexpected errors with their traceback, client errors as one line."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Called with the original errors, before MaskErrors hides internal ones."""
        context = execution_context.context if execution_context is not None else None
        request_id = getattr(context, "request_id", "-")
        for error in errors:
            if is_client_error(error):
                logger.info("graphql client error (request %s): %s", request_id, error.message)
            else:
                logger.error(
                    "graphql internal error (request %s) at %s: %s",
                    request_id,
                    error.path,
                    error.message,
                    exc_info=error.original_error,
                )


def build_schema(settings: ApiSettings, metrics: ApiMetrics, audit: AuditLog) -> CdpSchema:
    """The schema with limits, caches, error masking and bookkeeping from the settings."""
    # Validation rule classes are built once: the validation cache keys on them, and a limiter
    # constructed per request would mint new classes and never hit the cache.
    rules: list[Any] = [
        *QueryDepthLimiter(max_depth=settings.api_max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.api_max_aliases).validation_rules,
    ]
    if not settings.api_enable_introspection:
        rules += DisableIntrospection().validation_rules
    max_tokens = settings.api_max_tokens

    def mask(error: GraphQLError) -> bool:
        return not is_client_error(error)

    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        lambda: _MaskErrors(should_mask_error=mask, error_message=INTERNAL_ERROR_MESSAGE),
        _operation_extension(metrics, audit),
    ]
    return CdpSchema(
        query=Query,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=not settings.api_enable_introspection),
    )
