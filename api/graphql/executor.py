"""Runs one GraphQL operation: cached parse and validation, execution, error masking, bookkeeping.

Why not ``strawberry.Schema.execute``: measured in ``benchmarks/bench_api.py``, its per-request
extension runner (a context manager built per hook, per extension, per request) was about a
third of a lookup's CPU. At channel traffic (a request every few ms per worker) the CPU caches
go cold between requests, so a lookup's latency grows with how much memory it touches and that
overhead cost twice over. Strawberry still defines the schema, the types, the
resolvers and their field extensions (scopes); this module runs the operation on strawberry's
graphql-core schema with the same validation rules strawberry adds, and does what the schema
extensions did, in one pass: a per-process LRU of parsed and validated documents keyed by the
query text (the role of strawberry's ``ParserCache`` and ``ValidationCache``), the token limit
on parsing, the depth, alias and introspection rules, masking of unexpected errors, and the
per-operation metrics and PII audit.

Queries and mutations run (the mutations are the decision service's two writes, ``decide`` and
``recordDecisionOutcome``; graphql-core runs a mutation's root fields one after another) under
the same limits and budget; a subscription is refused as a request error.

It also holds every request to a budget (``api.graphql.budget``): the document's shape is
checked before validation (validation is quadratic in repeated fields), a text missed by the
cache is looked up again by its normalized form (so a random trailing comment costs a parse,
never a validation), the estimated node count is checked before execution, execution stops at
the request's deadline, and a response over the size cap is replaced by an error (and nothing in
it is audited, since nothing was revealed).

Because strawberry's extension runner is not used, whatever only it would run is refused when
the executor is built (so ``create_app`` fails at start) rather than silently skipped: schema
extensions, operation directives with resolvers, a custom execution context, ``@defer``, an
overridden ``process_errors`` (``api.graphql.compat.runner_only_features``), and field extensions
not in :data:`SUPPORTED_FIELD_EXTENSIONS`. Field extensions do run here: strawberry chains their
``resolve`` into the field's resolver (``GraphQLCoreConverter.from_resolver``), calls ``apply``
when the schema is built and ``map_arguments`` while converting arguments. They are still
admitted one class at a time, after the parity test (``tests/api/test_executor_parity.py``) has
run them, because a field extension may rely on a schema extension's state.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    parse,
    print_ast,
    specified_rules,
)
from graphql.utilities import get_operation_ast
from strawberry.schema import BaseSchema

from api.graphql.budget import budget_error, check_shape, estimate_cost
from api.graphql.compat import (
    FieldExtension,
    PermissionExtension,
    check_strawberry_version,
    field_definitions,
    graphql_schema,
    limiter_rules,
    optimized_is_awaitable,
    runner_only_features,
    validate_document,
)
from api.graphql.context import Context
from api.graphql.errors import error_code, is_client_error
from api.metrics import ApiMetrics
from api.repositories.database import OperationTimeout
from api.security import AuditLog
from api.settings import ApiSettings

logger = logging.getLogger(__name__)

#: Distinct query texts whose parse and validation results are kept per process.
CACHE_SIZE: Final[int] = 512
#: Longer query texts are prepared every time rather than held in the cache.
MAX_CACHED_QUERY_CHARS: Final[int] = 32_768
INTERNAL_ERROR_MESSAGE: Final[str] = (
    "Internal error; it has been logged. Retry, or report the X-Request-Id response header."
)
#: Field extensions the executor runs (in the resolver), by exact class: ``PermissionExtension``
#: is how ``api.graphql.permissions.requires`` enforces scopes.
SUPPORTED_FIELD_EXTENSIONS: Final[tuple[type[FieldExtension], ...]] = (PermissionExtension,)
#: "Did you mean ...?" names fields, arguments, types and input fields: off with introspection.
_SUGGESTION: Final[re.Pattern[str]] = re.compile(r"\s*Did you mean [^?]*\?")


class RequestError(Exception):
    """The request cannot be run as a GraphQL query at all: an HTTP 400 with this reason."""


class UnsupportedSchemaError(TypeError):
    """The schema uses strawberry machinery this executor would silently skip."""


def unsupported_features(schema: BaseSchema) -> list[str]:
    """What the executor would skip on ``schema``, one line per feature, naming where it is."""
    problems = runner_only_features(schema)
    for type_name, field_name, definition in field_definitions(graphql_schema(schema)):
        for extension in definition.extensions:
            if type(extension) not in SUPPORTED_FIELD_EXTENSIONS:
                problems.append(
                    f"{type_name}.{field_name}: field extension {type(extension).__qualname__}"
                )
    return problems


def check_schema(schema: BaseSchema) -> None:
    """Raise UnsupportedSchemaError naming everything the executor would not run."""
    problems = unsupported_features(schema)
    if problems:
        supported = ", ".join(e.__name__ for e in SUPPORTED_FIELD_EXTENSIONS)
        raise UnsupportedSchemaError(
            "api/graphql/executor.py runs operations without strawberry's extension runner, "
            "so these would be silently skipped: "
            + "; ".join(problems)
            + f". Do that work in the executor, or use a supported field extension ({supported})"
            " after adding it to SUPPORTED_FIELD_EXTENSIONS with a parity test."
        )


@dataclass(frozen=True)
class PreparedDocument:
    """A parsed query text and what validating it found (both cached together)."""

    document: DocumentNode | None
    errors: tuple[GraphQLError, ...]
    #: Estimated nodes per operation name, for operations whose estimate has no variables.
    costs: dict[str | None, int] = field(default_factory=dict, compare=False)


def _operation_label(operation: OperationDefinitionNode | None, given: str | None) -> str | None:
    """The operation's name, else its root fields (``customer``, ``segments,segment``)."""
    if given:
        return given
    if operation is None:
        return None
    if operation.name is not None:
        return operation.name.value
    names = {
        selection.name.value
        for selection in operation.selection_set.selections
        if getattr(selection, "name", None) is not None
    }
    return ",".join(sorted(names)) or None


class OperationExecutor:
    """Prepares, runs and accounts for operations on one schema; one per app."""

    def __init__(
        self, schema: BaseSchema, settings: ApiSettings, metrics: ApiMetrics, audit: AuditLog
    ) -> None:
        check_schema(schema)
        check_strawberry_version()
        self._schema = graphql_schema(schema)
        self._max_tokens = settings.api_max_tokens
        self._max_selections = settings.api_max_selections
        self._max_repeats = settings.api_max_repeated_fields
        self._max_nodes = settings.api_max_nodes
        self._max_response_bytes = settings.api_max_response_bytes
        self._time_limit = settings.api_operation_timeout_seconds
        self._default_page = settings.api_default_page_size
        self._max_page = settings.api_max_page_size
        self._hide_suggestions = not settings.api_enable_introspection
        self._rules: tuple[Any, ...] = (
            *specified_rules,  # strawberry's default; validate_document adds its own two
            *limiter_rules(
                max_depth=settings.api_max_depth,
                max_aliases=settings.api_max_aliases,
                disable_introspection=not settings.api_enable_introspection,
            ),
        )
        self._metrics = metrics
        self._audit = audit
        # Used from the event loop thread only, so no lock.
        self._cache: OrderedDict[str, PreparedDocument] = OrderedDict()
        self._normalized: OrderedDict[str, PreparedDocument] = OrderedDict()
        self.cache_hits = 0
        self.cache_misses = 0
        self.normalized_hits = 0

    def prepare(self, query: str) -> PreparedDocument:
        """Parse (within the token limit) and validate a query text, from the cache if seen."""
        cached = self._cache.get(query)
        if cached is not None:
            self._cache.move_to_end(query)
            self.cache_hits += 1
            return cached
        self.cache_misses += 1
        prepared = self._prepare(query)
        if prepared.document is not None and len(query) <= MAX_CACHED_QUERY_CHARS:
            self._cache[query] = prepared
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)  # the least recently used
        return prepared

    def _prepare(self, query: str) -> PreparedDocument:
        try:
            document = parse(query, max_tokens=self._max_tokens)
        except GraphQLError as error:
            return PreparedDocument(None, (error,))
        refused = check_shape(document, self._max_selections, self._max_repeats)
        if refused is not None:
            return PreparedDocument(document, (refused,))
        normalized = print_ast(document)
        known = self._normalized.get(normalized)
        if known is not None:
            self._normalized.move_to_end(normalized)
            self.normalized_hits += 1
            return known
        errors = validate_document(self._schema, document, self._rules)
        if self._hide_suggestions:
            for error in errors:
                self._strip_suggestions(error)
        prepared = PreparedDocument(document, tuple(errors))
        if not errors:  # errors carry positions in this text, so only valid ones are shared
            self._normalized[normalized] = prepared
            if len(self._normalized) > CACHE_SIZE:
                self._normalized.popitem(last=False)
        return prepared

    @staticmethod
    def _strip_suggestions(error: GraphQLError) -> None:
        """Drop "Did you mean ...?" (it names schema members while introspection is off)."""
        if "Did you mean" in error.message:
            error.message = _SUGGESTION.sub("", error.message)

    def _cost(
        self,
        prepared: PreparedDocument,
        operation: OperationDefinitionNode,
        operation_name: str | None,
        variables: dict[str, Any] | None,
    ) -> int:
        cached = prepared.costs.get(operation_name)
        if cached is not None:
            return cached
        estimate = estimate_cost(
            self._schema,
            prepared.document,  # type: ignore[arg-type]
            operation,
            variables,
            default_page=self._default_page,
            max_page=self._max_page,
            cap=self._max_nodes,
        )
        if not estimate.uses_variables:
            prepared.costs[operation_name] = estimate.nodes
        return estimate.nodes

    async def run(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
    ) -> bytes:
        """The JSON response of one query; raises RequestError for what cannot be run."""
        started = time.perf_counter()
        prepared = self.prepare(query)
        document = prepared.document
        operation = None
        errors: list[GraphQLError]
        data: dict[str, Any] | None = None
        if document is not None:
            operation = get_operation_ast(document, operation_name)
            if operation is None:
                raise RequestError(
                    "Can't get GraphQL operation type"
                    if operation_name is None
                    else f'Unknown operation named "{operation_name[:100]}".'
                )
            if operation.operation is OperationType.SUBSCRIPTION:
                raise RequestError("subscriptions are not offered: send a query or a mutation")
        if prepared.errors:
            errors = list(prepared.errors)
        else:
            assert operation is not None
            nodes = self._cost(prepared, operation, operation_name, variables)
            if nodes > self._max_nodes:
                errors = [self._over_nodes(nodes)]
            else:
                data, errors = await self._execute(document, variables, operation_name, context)
        label = self._metrics.operation_label(_operation_label(operation, operation_name))
        status = "ok"
        payload: dict[str, Any] = {"data": data}
        if errors:
            status = error_code(errors[0]).lower()
            self._log(errors, context.request_id)
            payload["errors"] = [self._mask(error).formatted for error in errors]
        body = orjson.dumps(payload)
        if len(body) > self._max_response_bytes:
            status = "budget_exceeded"
            body = orjson.dumps({"data": None, "errors": [self._over_size(len(body)).formatted]})
            context.pii_reads.clear()  # nothing was sent, so nothing was revealed
        self._metrics.observe_operation(label, status, time.perf_counter() - started)
        if context.pii_reads:
            self._audit.write(context.audit_entries(label))
        return body

    async def _execute(
        self,
        document: DocumentNode | None,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
    ) -> tuple[dict[str, Any] | None, list[GraphQLError]]:
        result = execute(
            self._schema,
            document,  # type: ignore[arg-type]
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
            is_awaitable=optimized_is_awaitable,
        )
        if optimized_is_awaitable(result):
            remaining = context.deadline - time.monotonic()
            try:
                result = await asyncio.wait_for(result, timeout=max(remaining, 0.0))  # type: ignore[arg-type]
            except TimeoutError:
                context.pii_reads.clear()  # the partial result is dropped unsent
                return None, [self._over_time()]
        errors = [
            self._over_time(error) if isinstance(error.original_error, OperationTimeout) else error
            for error in result.errors or ()  # type: ignore[union-attr]
        ]
        return result.data, errors  # type: ignore[union-attr]

    def _over_nodes(self, nodes: int) -> GraphQLError:
        shown = f"{nodes:,}" if nodes <= self._max_nodes * 10 else f"more than {nodes:,}"
        return budget_error(
            f"the query's estimated cost is {shown} nodes (page sizes multiplied along each "
            f"path), over the budget of {self._max_nodes:,}: ask for smaller pages (`first`) "
            "or fewer nested lists, and page with `after`",
            "nodes",
            estimated=nodes,
            limit=self._max_nodes,
        )

    def _over_time(self, error: GraphQLError | None = None) -> GraphQLError:
        refused = budget_error(
            f"the operation ran longer than its time limit of {self._time_limit:g} s and was "
            "stopped: ask for smaller pages or fewer nested lists",
            "time",
            limit=self._time_limit,
        )
        if error is not None:
            refused.path, refused.nodes = error.path, error.nodes
            refused.locations = error.locations
        return refused

    def _over_size(self, size: int) -> GraphQLError:
        return budget_error(
            f"the response would be {size:,} bytes, over the budget of "
            f"{self._max_response_bytes:,}: ask for smaller pages or fewer fields",
            "response_bytes",
            size=size,
            limit=self._max_response_bytes,
        )

    @staticmethod
    def _log(errors: list[GraphQLError], request_id: str) -> None:
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

    def _mask(self, error: GraphQLError) -> GraphQLError:
        """Client errors as they are; anything unexpected as one opaque message."""
        if is_client_error(error):
            if self._hide_suggestions:
                self._strip_suggestions(error)  # variable coercion suggests input fields too
            return error
        return GraphQLError(
            INTERNAL_ERROR_MESSAGE,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
        )
