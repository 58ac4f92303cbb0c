"""Errors a client causes: shown with their message and a code; everything else is masked."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError


class ClientError(Exception):
    """An error the caller can fix; its message is returned as is."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class BadInputError(ClientError):
    """Malformed or out-of-range input (a bad email, an oversize page, a foreign cursor)."""


class NotFoundError(ClientError):
    """A name that does not exist where one is required (an unknown segment)."""

    code = "NOT_FOUND"


class UnavailableError(ClientError):
    """The service cannot answer this field now, for a reason the message says (e.g. the
    served snapshot predates decisions); safe to show, retry after the operator acts."""

    code = "SERVICE_UNAVAILABLE"


class ForbiddenError(ClientError):
    """The key lacks a scope the field needs."""

    code = "FORBIDDEN"


def is_client_error(error: GraphQLError) -> bool:
    """Errors whose message is safe to show: client errors and GraphQL's own validation."""
    original = error.original_error
    if original is None:
        return True  # syntax, validation, limits, variable coercion: messages about the query
    if isinstance(original, ClientError):
        return True
    return isinstance(original, GraphQLError) and original.original_error is None


def error_code(error: GraphQLError) -> str:
    """A short code for metrics: the client error's code, else validation or internal."""
    if error.extensions and "code" in error.extensions:
        return str(error.extensions["code"])
    return "GRAPHQL_VALIDATION_FAILED" if error.original_error is None else "INTERNAL"
