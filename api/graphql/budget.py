"""A request's cost, bounded before it runs.

Limits, cheapest first:

1. **Shape, before validation.** graphql-core's ``OverlappingFieldsCanBeMerged`` compares every
   pair of fields with the same response name in a selection set, so 400 copies of one field
   (a 1.6 KB document, under the token limit) take most of a second to validate. A document may
   hold at most ``max_selections`` field selections (fragments expanded) and repeat one response
   name at most ``max_repeats`` times in a selection set (fragments merged in). The walk stops as
   soon as a limit is passed, so nested fragments cannot make it exponential.
2. **Estimated nodes, before execution.** Each selected field costs the product of the list
   sizes above it. A paged field's list (``edges``) has its ``first`` argument as its size (the
   default page size when absent); any other list of objects has the bound declared on the field
   with ``list_size(n)`` (``DEFAULT_LIST_SIZE`` if none). The estimate is an upper bound in
   practice (real lists are shorter), and is what the client is told when it is refused.
3. **At run time** (``api.graphql.executor``): a time limit per operation (statements are
   interrupted at the deadline) and a cap on the size of the response.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)

from api.graphql.compat import DEFINITION_BACKREF, StrawberryField

#: Error code of every refusal for cost (clients can branch on it).
BUDGET_CODE: Final[str] = "BUDGET_EXCEEDED"
#: Size assumed for a list of objects that declares no bound.
DEFAULT_LIST_SIZE: Final[int] = 20
#: The metadata key of a declared list bound.
LIST_SIZE_METADATA: Final[str] = "cdp_list_size"
LIST_SIZE_ARGUMENT_METADATA: Final[str] = "cdp_list_size_argument"
#: The argument that sizes a page.
PAGE_ARGUMENT: Final[str] = "first"


def list_size(bound: int, argument: str | None = None) -> dict[str, Any]:
    """Field metadata: this list holds at most about ``bound`` items (for the cost estimate).

    With ``argument`` (e.g. ``last`` of ``decisions(last: 5)``), the list holds as many as that
    argument asks (its default when absent), at most ``bound``.
    """
    if argument is None:
        return {LIST_SIZE_METADATA: bound}
    return {LIST_SIZE_METADATA: bound, LIST_SIZE_ARGUMENT_METADATA: argument}


def budget_error(message: str, budget: str, **figures: int | float) -> GraphQLError:
    """A refusal naming the budget, shown to the client as it is."""
    return GraphQLError(message, extensions={"code": BUDGET_CODE, "budget": budget, **figures})


class _Refused(Exception):
    def __init__(self, error: GraphQLError) -> None:
        self.error = error


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


@dataclass
class _ShapeWalk:
    fragments: Mapping[str, FragmentDefinitionNode]
    max_selections: int
    max_repeats: int
    selections: int = 0

    def fields(self, selection_set: SelectionSetNode, visiting: frozenset[str]) -> list[FieldNode]:
        """The fields of a selection set with fragments merged in (as validation sees them)."""
        found: list[FieldNode] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                self.selections += 1
                if self.selections > self.max_selections:
                    raise _Refused(
                        budget_error(
                            f"the document selects more than {self.max_selections} fields "
                            "(fragments expanded); split it into smaller queries",
                            "selections",
                            limit=self.max_selections,
                        )
                    )
                found.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                found += self.fields(selection.selection_set, visiting)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in visiting:
                    found += self.fields(fragment.selection_set, visiting | {name})
        return found

    def check(self, selection_set: SelectionSetNode, visiting: frozenset[str]) -> None:
        fields = self.fields(selection_set, visiting)
        repeats = Counter((f.alias or f.name).value for f in fields)
        name, count = repeats.most_common(1)[0] if repeats else ("", 0)
        if count > self.max_repeats:
            raise _Refused(
                budget_error(
                    f"'{name[:64]}' is selected {count} times in one selection set; at most "
                    f"{self.max_repeats} are allowed (select a field once)",
                    "repeats",
                    limit=self.max_repeats,
                )
            )
        for field in fields:
            if field.selection_set is not None:
                self.check(field.selection_set, visiting)


def check_shape(
    document: DocumentNode, max_selections: int, max_repeats: int
) -> GraphQLError | None:
    """A budget error if the document is too large to validate cheaply, else None."""
    walk = _ShapeWalk(_fragments(document), max_selections, max_repeats)
    try:
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
                walk.check(definition.selection_set, frozenset())
    except _Refused as refused:
        return refused.error
    return None


def _declared_list_size(field: Any) -> tuple[int | None, str | None]:
    """The field's declared bound and the argument that sizes it, if any."""
    definition = field.extensions.get(DEFINITION_BACKREF)
    if isinstance(definition, StrawberryField):
        metadata = definition.metadata or {}
        bound = metadata.get(LIST_SIZE_METADATA)
        if isinstance(bound, int):
            return bound, metadata.get(LIST_SIZE_ARGUMENT_METADATA)
    return None, None


def _is_object_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if not isinstance(type_, GraphQLList):
        return False
    return hasattr(get_named_type(type_), "fields")


@dataclass
class CostEstimate:
    """The estimated node count and whether it depends on the request's variables."""

    nodes: int
    uses_variables: bool


@dataclass
class _CostWalk:
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    default_page: int
    max_page: int
    cap: int
    nodes: int = 0
    uses_variables: bool = False

    def page(self, field: FieldNode) -> int | None:
        for argument in field.arguments:
            if argument.name.value != PAGE_ARGUMENT:
                continue
            value = argument.value
            if isinstance(value, VariableNode):
                self.uses_variables = True
                given = self.variables.get(value.name.value)
            elif isinstance(value, IntValueNode):
                given = int(value.value)
            else:
                given = None
            if given is None:
                return self.default_page
            if isinstance(given, int) and not isinstance(given, bool):
                return max(1, min(given, self.max_page))
            return self.max_page  # coercion will refuse it; assume the worst until then
        return None

    def sized(self, field: FieldNode, definition: Any, argument: str, bound: int) -> int:
        """The size a list-sizing argument asks for (its default when absent), 1..bound."""
        given: Any = definition.default_value
        for node in field.arguments:
            if node.name.value != argument:
                continue
            value = node.value
            if isinstance(value, VariableNode):
                self.uses_variables = True
                given = self.variables.get(value.name.value, given)
            elif isinstance(value, IntValueNode):
                given = int(value.value)
        if isinstance(given, int) and not isinstance(given, bool):
            return max(1, min(given, bound))
        return bound

    def walk(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType,
        multiplier: int,
        page: int | None,
        visiting: frozenset[str],
    ) -> None:
        fields = getattr(parent, "fields", None)
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                self.nodes += multiplier
                if self.nodes > self.cap:
                    return
                if selection.selection_set is None or fields is None:
                    continue
                field = fields.get(selection.name.value)
                if field is None:
                    continue  # introspection or an unknown field: validation decides
                size = 1
                if _is_object_list(field.type):
                    declared, argument = _declared_list_size(field)
                    if declared is not None and argument in field.args:
                        declared = self.sized(selection, field.args[argument], argument, declared)
                    size = page or declared or DEFAULT_LIST_SIZE
                own_page = self.page(selection) if PAGE_ARGUMENT in field.args else None
                self.walk(
                    selection.selection_set,
                    get_named_type(field.type),
                    multiplier * size,
                    own_page,
                    visiting,
                )
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = (
                    self.schema.get_type(condition.name.value) if condition is not None else parent
                )
                self.walk(selection.selection_set, target or parent, multiplier, page, visiting)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in visiting:
                    continue
                target = self.schema.get_type(fragment.type_condition.name.value) or parent
                self.walk(fragment.selection_set, target, multiplier, page, visiting | {name})
            if self.nodes > self.cap:
                return


def estimate_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
    *,
    default_page: int,
    max_page: int,
    cap: int,
) -> CostEstimate:
    """Estimated nodes of one operation (stops counting a little past ``cap``)."""
    root = (
        schema.mutation_type if operation.operation is OperationType.MUTATION else schema.query_type
    )
    walk = _CostWalk(schema, _fragments(document), variables or {}, default_page, max_page, cap)
    if root is not None:
        walk.walk(operation.selection_set, root, 1, None, frozenset())
    return CostEstimate(nodes=walk.nodes, uses_variables=walk.uses_variables)
