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
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    parse,
    specified_rules,
)
from graphql.utilities import get_operation_ast
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.extensions import DisableIntrospection, MaxAliasesLimiter, QueryDepthLimiter
from strawberry.schema import BaseSchema
from strawberry.schema.schema import validate_document

from api.graphql.context import Context
from api.graphql.errors import error_code, is_client_error
from api.metrics import ApiMetrics
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


class RequestError(Exception):
    """The request cannot be run as a GraphQL query at all: an HTTP 400 with this reason."""


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A parsed query text and what validating it found (both cached together)."""

    document: DocumentNode | None
    errors: tuple[GraphQLError, ...]


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
        self._strawberry_schema = schema
        self._schema = schema._schema
        self._max_tokens = settings.api_max_tokens
        rules: list[Any] = [
            *specified_rules,  # strawberry's default; validate_document adds its own two
            *QueryDepthLimiter(max_depth=settings.api_max_depth).validation_rules,
            *MaxAliasesLimiter(max_alias_count=settings.api_max_aliases).validation_rules,
        ]
        if not settings.api_enable_introspection:
            rules += DisableIntrospection().validation_rules
        self._rules = tuple(rules)
        self._metrics = metrics
        self._audit = audit
        # Used from the event loop thread only, so no lock.
        self._cache: OrderedDict[str, PreparedDocument] = OrderedDict()
        self.cache_hits = 0
        self.cache_misses = 0

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
        errors = validate_document(self._schema, document, self._rules)
        if self._strawberry_schema.config.disable_field_suggestions:
            # "Did you mean ...?" would reveal field names while introspection is off.
            for error in errors:
                self._strawberry_schema.remove_field_suggestion(error)
        return PreparedDocument(document, tuple(errors))

    async def run(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
    ) -> dict[str, Any]:
        """The response payload of one query; raises RequestError for what cannot be run."""
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
                    else f'Unknown operation named "{operation_name}".'
                )
            if operation.operation is not OperationType.QUERY:
                raise RequestError("this API is read-only: only queries are accepted")
        if prepared.errors:
            errors = list(prepared.errors)
        else:
            result = execute(
                self._schema,
                document,  # type: ignore[arg-type]
                context_value=context,
                variable_values=variables,
                operation_name=operation_name,
                is_awaitable=optimized_is_awaitable,
            )
            if optimized_is_awaitable(result):
                result = await result  # type: ignore[misc]
            data, errors = result.data, list(result.errors or ())  # type: ignore[union-attr]
        label = self._metrics.operation_label(_operation_label(operation, operation_name))
        status = "ok"
        payload: dict[str, Any] = {"data": data}
        if errors:
            status = error_code(errors[0]).lower()
            self._log(errors, context.request_id)
            payload["errors"] = [self._mask(error).formatted for error in errors]
        self._metrics.observe_operation(label, status, time.perf_counter() - started)
        if context.pii_reads:
            self._audit.write(context.audit_entries(label))
        return payload

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

    @staticmethod
    def _mask(error: GraphQLError) -> GraphQLError:
        """Client errors as they are; anything unexpected as one opaque message."""
        if is_client_error(error):
            return error
        return GraphQLError(
            INTERNAL_ERROR_MESSAGE,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
        )
