"""Personal data in the schema: declared once per field, masked and audited by the type layer.

A field that can carry personal data says so where it is defined::

    email: str | None = strawberry.field(metadata=personal(Pii.VALUE))

and ``protect_personal_fields`` (run once when the schema is built) wraps the resolver of every
such field in graphql-core's schema, so no resolver masks or audits anything by hand, and a new
field is protected by its declaration alone. What a key without ``pii:read`` sees depends on the
kind of data:

* ``VALUE`` (a name, an address, a birth date): ``***``;
* ``IDENTIFIER`` (an email or phone used as a key, an identifier value, a record or event id):
  a keyed token (``api.sealing``): opaque, but equal values give equal tokens, so it still
  works as a handle;
* ``TEXT`` (free text such as a search query or a link URL, where anything personal may be
  embedded): ``***``;
* ``DETAILS`` (structured evidence): numbers, booleans and the model's level labels kept,
  every other string ``***``;
* ``RENDERED`` (a message rendered from a template with personal variables, such as a decision's
  subject ``Hi Ada, ...``): the same template rendered with those variables at their fallbacks
  (``Hi there, ...``), which the owning type holds as ``<field>_masked``; a reveal is audited
  only when the rendering differs from the masked one (a subject without a name reveals nothing).

A key with ``pii:read`` sees the value, and the read is recorded against the customer who owns
it: every type holding a personal field implements ``pii_owner()`` (the owning customer's id),
checked when the schema is built, so a value of another customer shown inside this customer's
explanation is audited against that other customer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any, Final

from graphql import GraphQLObjectType, GraphQLResolveInfo
from strawberry.schema import BaseSchema

from api.graphql.compat import (
    DEFINITION_BACKREF,
    StrawberryField,
    graphql_schema,
    optimized_is_awaitable,
)

#: What a key without pii:read sees instead of a personal value (null stays null).
MASK: Final[str] = "***"
#: The metadata key of the declaration on a strawberry field.
PII_METADATA: Final[str] = "cdp_pii"
#: Keys inside evidence details whose string values are labels, not data.
SAFE_DETAIL_KEYS: Final[frozenset[str]] = frozenset({"level"})


class Pii(StrEnum):
    """The kind of personal data a field carries, which decides how it is masked."""

    VALUE = "value"
    IDENTIFIER = "identifier"
    TEXT = "text"
    DETAILS = "details"
    RENDERED = "rendered"


class SchemaDeclarationError(TypeError):
    """A type holds a personal field but cannot say whose data it is."""


def personal(kind: Pii) -> dict[str, Pii]:
    """Field metadata declaring the field personal data of ``kind``."""
    return {PII_METADATA: kind}


def personal_fields(cls: type) -> list[StrawberryField]:
    """The fields of a strawberry type declared personal, in definition order."""
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    return [f for f in definition.fields if (f.metadata or {}).get(PII_METADATA) is not None]


def _mask_details(value: Any, key: str | None = None) -> Any:
    if isinstance(value, Mapping):
        return {k: _mask_details(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_details(v, key) for v in value]
    if isinstance(value, str):
        return value if key in SAFE_DETAIL_KEYS else MASK
    return value


def _masker(kind: Pii) -> Callable[[Any, Any], Any]:
    """(value, context) -> what a key without pii:read sees."""
    if kind is Pii.IDENTIFIER:
        return lambda value, context: context.sealer.token(str(value))
    if kind is Pii.DETAILS:
        return lambda value, _context: _mask_details(value)
    return lambda _value, _context: MASK


def masked_attribute(python_name: str) -> str:
    """The attribute holding a RENDERED field's masked rendering."""
    return f"{python_name}_masked"


def _rendered_guard(python_name: str, label: str) -> Callable[[Any, Any, Any], Any]:
    masked_name = masked_attribute(python_name)

    def guard(value: Any, source: Any, context: Any) -> Any:
        masked = getattr(source, masked_name)
        if value is None:
            return masked
        if context.principal.can_read_pii:
            if value != masked:
                context.reveal(source.pii_owner(), label)
            return value
        return masked

    return guard


def _guard(kind: Pii, label: str) -> Callable[[Any, Any, Any], Any]:
    mask = _masker(kind)

    def guard(value: Any, source: Any, context: Any) -> Any:
        if value is None:
            return None
        if context.principal.can_read_pii:
            context.reveal(source.pii_owner(), label)
            return value
        if isinstance(value, list):
            return [None if v is None else mask(v, context) for v in value]
        return mask(value, context)

    return guard


def _protect(
    resolve: Callable[..., Any], guard: Callable[[Any, Any, Any], Any]
) -> Callable[..., Any]:
    async def finish(pending: Awaitable[Any], source: Any, context: Any) -> Any:
        return guard(await pending, source, context)

    def resolve_personal(source: Any, info: GraphQLResolveInfo, **kwargs: Any) -> Any:
        value = resolve(source, info, **kwargs)
        if optimized_is_awaitable(value):
            return finish(value, source, info.context)
        return guard(value, source, info.context)

    return resolve_personal


def protect_personal_fields(schema: BaseSchema) -> dict[str, Pii]:
    """Wrap every declared field's resolver; returns ``{"Type.field": kind}`` for the record.

    Raises SchemaDeclarationError if a type with a personal field has no ``pii_owner``.
    """
    protected: dict[str, Pii] = {}
    for type_name, graphql_type in graphql_schema(schema).type_map.items():
        if not isinstance(graphql_type, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for field_name, field in graphql_type.fields.items():
            definition = field.extensions.get(DEFINITION_BACKREF)
            if not isinstance(definition, StrawberryField):
                continue
            kind = (definition.metadata or {}).get(PII_METADATA)
            if kind is None:
                continue
            type_definition = graphql_type.extensions.get(DEFINITION_BACKREF)
            owner_type = getattr(type_definition, "origin", None)
            if not isinstance(owner_type, type) or not callable(
                getattr(owner_type, "pii_owner", None)
            ):
                raise SchemaDeclarationError(
                    f"{type_name}.{field_name} is declared personal data, but {type_name} has "
                    "no pii_owner() saying whose data it is (needed for the audit log)"
                )
            if field.resolve is None:
                raise SchemaDeclarationError(f"{type_name}.{field_name} has no resolver to wrap")
            label = f"{type_name}.{field_name}"
            if Pii(kind) is Pii.RENDERED:
                masked_name = masked_attribute(definition.python_name)
                if masked_name not in getattr(owner_type, "__dataclass_fields__", {}):
                    raise SchemaDeclarationError(
                        f"{label} is declared a rendered message, but {type_name} has no "
                        f"'{masked_name}' (the rendering a key without pii:read sees)"
                    )
                guard = _rendered_guard(definition.python_name, label)
            else:
                guard = _guard(Pii(kind), label)
            field.resolve = _protect(field.resolve, guard)
            protected[label] = Pii(kind)
    return protected
