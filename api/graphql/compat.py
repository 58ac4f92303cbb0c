"""Every strawberry internal the API relies on, in one place, with the version it was tested with.

The executor (``api.graphql.executor``) runs operations on the graphql-core schema strawberry
builds instead of through ``strawberry.Schema.execute``, and ``api.graphql.pii`` /
``api.graphql.budget`` read strawberry's field definitions off that schema. Those are
strawberry internals: not documented, free to move between releases. Importing them here and
nowhere else means an upgrade is reviewed in one file, an internal that moved fails at import
(at start, naming it) rather than in a request, and ``tests/api/test_executor_parity.py`` proves
the executor still answers as ``schema.execute`` would.

A version other than :data:`TESTED_STRAWBERRY_VERSION` logs a warning at start rather than
failing: ``pyproject.toml`` already bounds what pip installs (``>=0.315.7,<0.328``), and an error
would block a patch release (a security fix) until someone edits this file. CI fails instead
(``test_the_installed_strawberry_is_the_tested_one``), so an upgrade lands only after the parity
test passed on it and this constant was moved.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

from graphql import ASTValidationRule, GraphQLInterfaceType, GraphQLObjectType, GraphQLSchema
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.extensions import (
    DisableIntrospection,
    FieldExtension,
    MaxAliasesLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.permission import PermissionExtension
from strawberry.schema import BaseSchema
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, validate_document
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

logger = logging.getLogger(__name__)

#: The strawberry-graphql release the executor, pii.py and budget.py were tested with.
TESTED_STRAWBERRY_VERSION: Final[str] = "0.327.7"
#: Key of graphql-core's ``extensions`` under which strawberry keeps its own definition.
DEFINITION_BACKREF: Final[str] = GraphQLCoreConverter.DEFINITION_BACKREF

__all__ = [
    "DEFINITION_BACKREF",
    "TESTED_STRAWBERRY_VERSION",
    "FieldExtension",
    "PermissionExtension",
    "StrawberryField",
    "check_strawberry_version",
    "field_definitions",
    "graphql_schema",
    "installed_strawberry_version",
    "limiter_rules",
    "optimized_is_awaitable",
    "runner_only_features",
    "strawberry_definition",
    "validate_document",
]


def installed_strawberry_version() -> str:
    """The installed strawberry-graphql version ("unknown" if its metadata is missing)."""
    try:
        return version("strawberry-graphql")
    except PackageNotFoundError:
        return "unknown"


def check_strawberry_version() -> bool:
    """Warn (once per call) when the installed strawberry is not the tested one; True if it is."""
    installed = installed_strawberry_version()
    if installed == TESTED_STRAWBERRY_VERSION:
        return True
    logger.warning(
        "strawberry-graphql %s is installed, but the API's executor was tested with %s "
        "(api/graphql/compat.py): it relies on strawberry internals. Run "
        "tests/api/test_executor_parity.py with this version, then update "
        "TESTED_STRAWBERRY_VERSION, or install %s.",
        installed,
        TESTED_STRAWBERRY_VERSION,
        TESTED_STRAWBERRY_VERSION,
    )
    return False


def graphql_schema(schema: BaseSchema) -> GraphQLSchema:
    """The graphql-core schema a strawberry schema built (``schema._schema``)."""
    return schema._schema  # type: ignore[attr-defined,no-any-return]


def strawberry_definition(graphql_object: Any) -> Any:
    """Strawberry's definition behind a graphql-core type or field (None if it has none)."""
    return (graphql_object.extensions or {}).get(DEFINITION_BACKREF)


def field_definitions(
    schema: GraphQLSchema,
) -> Iterator[tuple[str, str, StrawberryField]]:
    """(type name, field name, strawberry field) of every object and interface field."""
    for type_name, graphql_type in schema.type_map.items():
        if type_name.startswith("__"):
            continue
        if not isinstance(graphql_type, GraphQLObjectType | GraphQLInterfaceType):
            continue
        for field_name, field in graphql_type.fields.items():
            definition = strawberry_definition(field)
            if isinstance(definition, StrawberryField):
                yield type_name, field_name, definition


def limiter_rules(
    *, max_depth: int, max_aliases: int, disable_introspection: bool
) -> tuple[type[ASTValidationRule], ...]:
    """The validation rules of strawberry's depth, alias and introspection limiters."""
    rules: list[type[ASTValidationRule]] = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]
    if disable_introspection:
        rules += DisableIntrospection().validation_rules
    return tuple(rules)


def _name(thing: Any) -> str:
    return str(getattr(thing, "__qualname__", None) or type(thing).__qualname__)


def _extension_name(extension: Any) -> str:
    """A schema extension's class name, whether given as a class, an instance or a factory."""
    if isinstance(extension, type):
        return extension.__qualname__
    if isinstance(extension, SchemaExtension):
        return type(extension).__qualname__
    try:  # a factory (strawberry calls it once per request; once more here is harmless)
        return type(extension()).__qualname__
    except Exception:  # only for the message
        return _name(extension)


def runner_only_features(schema: BaseSchema) -> list[str]:
    """What on this schema only strawberry's per-request extension runner would run.

    These are skipped by an executor that calls graphql-core directly: schema extensions
    (every hook, including ``resolve`` middleware), operation directives with resolvers (run
    by ``DirectivesExtension``, which ``get_extensions`` adds), a custom execution context
    class, incremental delivery (``@defer``/``@stream``) and an overridden ``process_errors``.
    Field extensions are not listed here: they run inside the field's resolver.
    """
    found: list[str] = []
    for extension in getattr(schema, "extensions", ()) or ():
        found.append(
            f"schema extension {_extension_name(extension)} (strawberry.Schema(extensions=...))"
        )
    for directive in getattr(schema, "directives", ()) or ():
        found.append(
            f"operation directive @{getattr(directive, 'python_name', _name(directive))} "
            "(strawberry.Schema(directives=...); its resolver runs in DirectivesExtension)"
        )
    context_class = getattr(schema, "execution_context_class", None)
    if context_class not in (None, StrawberryGraphQLCoreExecutionContext):
        found.append(f"execution_context_class {_name(context_class)}")
    config: StrawberryConfig | None = getattr(schema, "config", None)
    if config is not None and getattr(config, "enable_experimental_incremental_execution", False):
        found.append("StrawberryConfig(enable_experimental_incremental_execution=True)")
    if type(schema).process_errors is not BaseSchema.process_errors:
        found.append(f"{_name(type(schema))}.process_errors (an override)")
    return found
