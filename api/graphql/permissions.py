"""Scope checks as strawberry permission classes; a missing scope is an error naming it."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from api.graphql.errors import ForbiddenError
from api.security import Scope


def scope_message(scope: Scope) -> str:
    """The error for a key without ``scope``."""
    return (
        f"this field needs the scope '{scope.value}', which the API key does not have; "
        "ask an administrator for a key with it"
    )


class ScopePermission(BasePermission):
    """Grants a field when the caller's key has ``scope`` (or ``admin``)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.message = scope_message(scope)

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        """Checked before the resolver runs."""
        return info.context.principal.has(self.scope)

    def on_unauthorized(self) -> None:
        """Raise a client error (shown, not masked) that names the scope."""
        raise ForbiddenError(self.message or "", requiredScope=self.scope.value)


def requires(scope: Scope) -> list[FieldExtension]:
    """Field extensions that enforce ``scope``; a fresh list per field."""
    return [PermissionExtension(permissions=[ScopePermission(scope)], use_directives=False)]
