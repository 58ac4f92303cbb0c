"""The /graphql endpoint: authenticate, hold a snapshot for the request, run the operation.

A JSON POST is handled here directly on the ASGI scope: key check, context, one run of
``api.graphql.executor``, orjson out, snapshot released. Measured in ``benchmarks/bench_api.py``,
FastAPI's ``GraphQLRouter`` and strawberry's generic HTTP view (dependency resolution, content
types parsed with ``email.message``, multipart, batching and streaming support) were about a
third of a lookup's CPU. ``GraphQLDispatch`` hands ``/graphql`` to this view ahead of FastAPI's
routing (errors still reach FastAPI's outermost handler). GET (the IDE page, when enabled) is
strawberry's own handling.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Final

import orjson
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.schema import BaseSchema

from api.decisioning import DecisionRuntime
from api.graphql.context import Context, Limits
from api.graphql.executor import OperationExecutor, RequestError
from api.privacy import ErasureRuntime
from api.repositories.live import LiveState
from api.sealing import Sealer
from api.security import KeyStore, presented_key
from api.snapshot import SnapshotManager

MAX_BODY_BYTES: Final[int] = 256 * 1024
#: A client's X-Request-Id is kept only if it looks like an id (it goes into logs and audit).
REQUEST_ID_PATTERN: Final[re.Pattern[str]] = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
#: Every response: profiles must never sit in a shared or browser cache.
NO_STORE: Final[dict[str, str]] = {"Cache-Control": "no-store"}


def request_id(given: str | None) -> str:
    """The client's request id if it is a plausible id, else a new one."""
    if given and REQUEST_ID_PATTERN.match(given):
        return given
    return uuid.uuid4().hex


class _BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    """The request body, refusing to buffer more than MAX_BODY_BYTES."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class GraphQLView(GraphQL[Context | None, None]):
    """POST runs an operation for a valid key on the current snapshot; GET serves the IDE if on."""

    def __init__(
        self,
        schema: BaseSchema,
        *,
        executor: OperationExecutor,
        keys: KeyStore,
        snapshots: SnapshotManager,
        limits: Limits,
        sealer: Sealer,
        time_limit: float,
        graphiql: bool,
        decisions: DecisionRuntime | None = None,
        live: LiveState | None = None,
        erasures: ErasureRuntime | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            allow_queries_via_get=False,
        )
        self.executor = executor
        self.keys = keys
        self.snapshots = snapshots
        self.limits = limits
        self.sealer = sealer
        self.time_limit = time_limit
        self.decisions = decisions
        #: the live profiles (``create_app`` passes them; None serves the snapshot only)
        self.live = live
        #: erasure requests (``create_app`` passes them; None: the mutation is unavailable)
        self.erasures = erasures

    def encode_json(self, data: object) -> bytes:  # type: ignore[override]
        """orjson, for the responses strawberry's own path still builds."""
        return orjson.dumps(data)

    def _unauthorized(self, presented: str | None) -> Response:
        if self.keys.is_empty:
            detail = "no API keys are configured; create one with `cdp api-key create`"
        elif presented is None:
            detail = "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
        else:
            detail = "invalid API key"
        return JSONResponse(
            {"detail": detail},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer", **NO_STORE},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request (subscriptions over websockets are not offered)."""
        if scope["type"] != "http":
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        if scope["method"] != "POST":
            await super().__call__(scope, receive, send)  # GraphiQL page, or 404 / 405
            return
        response = await self._respond(Headers(scope=scope), receive)
        await response(scope, receive, send)

    async def _respond(self, headers: Headers, receive: Receive) -> Response:
        rid = request_id(headers.get("x-request-id"))
        response = await self._authorized(headers, receive, rid)
        response.headers["X-Request-Id"] = rid
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _authorized(self, headers: Headers, receive: Receive, rid: str) -> Response:
        presented = presented_key(headers)
        principal = self.keys.authenticate(presented)
        if principal is None:
            return self._unauthorized(presented)
        content_type = headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            return PlainTextResponse(
                "send the operation as JSON (Content-Type: application/json)", status_code=415
            )
        # The whole body first: a slow client must not hold a snapshot open while it sends.
        try:
            body = await _read_body(receive)
        except _BodyTooLarge:
            return PlainTextResponse(
                f"request body larger than {MAX_BODY_BYTES} bytes", status_code=413
            )
        try:
            payload: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return PlainTextResponse("Unable to parse request body as JSON", status_code=400)
        if not isinstance(payload, dict):
            return PlainTextResponse(
                "send one operation as a JSON object (batches are not accepted)", status_code=400
            )
        query = payload.get("query")
        variables = payload.get("variables")
        operation_name = payload.get("operationName")
        if not isinstance(query, str) or not query.strip():
            return PlainTextResponse("No GraphQL query found in the request", status_code=400)
        if variables is not None and not isinstance(variables, dict):
            return PlainTextResponse("`variables` must be a JSON object", status_code=400)
        if operation_name is not None and not isinstance(operation_name, str):
            return PlainTextResponse("`operationName` must be a string", status_code=400)
        snapshot = self.snapshots.acquire()
        if snapshot is None:
            return JSONResponse(
                {"detail": self.snapshots.unavailable_reason() or "not ready"}, status_code=503
            )
        try:
            context = Context(
                snapshot=snapshot,
                principal=principal,
                limits=self.limits,
                request_id=rid,
                sealer=self.sealer,
                deadline=time.monotonic() + self.time_limit,
                decisions=self.decisions,
                live=self.live,
                erasures=self.erasures,
            )
            try:
                result = await self.executor.run(query, variables, operation_name, context)
            except RequestError as exc:
                return PlainTextResponse(str(exc), status_code=400)
            return Response(result, media_type="application/json")
        finally:
            self.snapshots.release(snapshot)


class GraphQLDispatch:
    """ASGI middleware sending ``/graphql`` straight to the view, everything else on."""

    def __init__(self, app: Any, view: GraphQLView) -> None:
        self.app = app
        self.view = view

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route by exact path."""
        if scope["type"] == "http" and scope["path"] in ("/graphql", "/graphql/"):
            await self.view(scope, receive, send)
        else:
            await self.app(scope, receive, send)
