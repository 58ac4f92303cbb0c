"""The Segment HTTP tracking API: ``/v1/track|identify|page|screen|alias|group|batch|import``.

A plain ASGI handler in front of FastAPI's routing (as ``/graphql`` is): intake requests are
small and many, and the routing and dependency machinery would cost more than the work. Per
request: authenticate the write key (a dict lookup), read the body within the batch limit,
parse it (``events.intake``), hand it to the log's writer thread and await the grouped commit
without blocking the event loop; the reply is sent only once the events are durable.

Answers: 200 ``{"success": true}`` (a batch adds accepted/duplicate/failed counts and the
failures by index); 400 ``{"success": false, "error": {"reason", "detail"}}`` for a refused
single event or an unreadable batch (kept as a failed event); 401 for a missing, wrong or
revoked write key (counted, not kept: anyone can send those); 413 for a body over
``max_batch_bytes`` (kept as ``batch_too_large`` when the key was valid); 405 for a method
other than POST.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from api.metrics import IntakeMetrics
from events.config import RealtimeConfig
from events.intake import BatchParse, parse_batch, parse_single
from events.log import SqliteEventLog
from events.types import AppendResult, FailedEvent, NewEvent
from events.write_keys import WriteKeyStore, basic_username

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

#: Path -> the Segment type of a single-event endpoint, or "batch".
ROUTES: Final[dict[str, str]] = {
    "/v1/track": "track",
    "/v1/identify": "identify",
    "/v1/page": "page",
    "/v1/screen": "screen",
    "/v1/alias": "alias",
    "/v1/group": "group",
    "/v1/batch": "batch",
    "/v1/import": "batch",
}
_JSON_HEADERS: Final[list[tuple[bytes, bytes]]] = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
]
_OK: Final[bytes] = b'{"success":true}'
_UNAUTHORIZED: Final[bytes] = orjson.dumps(
    {
        "success": False,
        "error": {
            "reason": "unauthorized",
            "detail": "send the source's write key as the HTTP Basic username (empty password) "
            "or as writeKey in the body; create one with `cdp write-key create --name NAME`",
        },
    }
)


class _TooLarge(Exception):
    """The body went over the batch limit while being read."""


class _Disconnected(Exception):
    """The client left before its body arrived."""


class Intake:
    """What the intake needs: write keys, limits and identifier types, the log, metrics."""

    def __init__(self, keys: WriteKeyStore, config: RealtimeConfig, metrics: IntakeMetrics) -> None:
        self.keys = keys
        self.config = config
        self.metrics = metrics
        self.log: SqliteEventLog | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ``/v1/*`` request."""
        route = ROUTES.get(scope["path"].rstrip("/"))
        if route is None:
            await _reply(send, 404, _error("not_found", "intake endpoints are /v1/track, ..."))
            return
        if scope["method"] != "POST":
            await _reply(send, 405, _error("method_not_allowed", "send events with POST"))
            return
        received_at = datetime.now(UTC)
        authorization = encoding = None
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"content-encoding":
                encoding = value.decode("latin-1").strip().lower()
        source = self.keys.authenticate(basic_username(authorization))
        if authorization is not None and source is None:
            self.metrics.unauthorized.inc()
            await _reply(send, 401, _UNAUTHORIZED, basic=True)
            return
        limit = self.config.intake.max_batch_bytes
        try:
            if declared is not None and declared > limit:
                raise _TooLarge
            body = await _read_body(receive, limit)
            if encoding == "gzip":
                body = _gunzip(body, limit)
        except _Disconnected:
            return
        except _TooLarge:
            await self._too_large(send, source, received_at)
            return
        except zlib.error:
            body = b""
            encoding = "invalid"
        if source is None:
            source = self.keys.authenticate(_body_write_key(body))
            if source is None:
                self.metrics.unauthorized.inc()
                await _reply(send, 401, _UNAUTHORIZED, basic=True)
                return
        log = self.log
        if log is None:  # outside the lifespan (never in a served app)
            await _reply(send, 503, _error("unavailable", "the event log is not open"))
            return
        if encoding == "invalid":
            failure = FailedEvent(
                source=source,
                reason="invalid_json",
                detail="Content-Encoding is gzip but the body is not valid gzip",
                received_at=received_at,
            )
            await _commit(log, (), (failure,))
            self.metrics.failure(failure.reason)
            await _reply(send, 400, _error(failure.reason, failure.detail))
            return
        if route == "batch":
            await self._batch(send, log, body, source, received_at)
        else:
            await self._single(send, log, body, route, source, received_at)

    async def _single(
        self,
        send: Send,
        log: SqliteEventLog,
        body: bytes,
        segment_type: str,
        source: str,
        received_at: datetime,
    ) -> None:
        parsed = parse_single(
            body, segment_type, source=source, received_at=received_at, config=self.config
        )
        if isinstance(parsed, FailedEvent):
            await _commit(log, (), (parsed,))
            self.metrics.failure(parsed.reason)
            await _reply(send, 400, _error(parsed.reason, parsed.detail))
            return
        result = await _commit(log, (parsed,), ())
        status = result.statuses[0]
        if status == "accepted":
            self.metrics.accepted(source, parsed.kind)
        elif status == "duplicate":
            self.metrics.duplicate(source)
        else:
            self.metrics.failure("message_id_conflict")
            await _reply(send, 400, _error("message_id_conflict", _CONFLICT))
            return
        await _reply(send, 200, _OK)

    async def _batch(
        self, send: Send, log: SqliteEventLog, body: bytes, source: str, received_at: datetime
    ) -> None:
        parsed = parse_batch(body, source=source, received_at=received_at, config=self.config)
        if isinstance(parsed, FailedEvent):
            await _commit(log, (), (parsed,))
            self.metrics.failure(parsed.reason)
            await _reply(send, 400, _error(parsed.reason, parsed.detail))
            return
        events, failures, answer = _split(parsed)
        result = await _commit(log, events, failures)
        accepted = duplicate = 0
        for (index, event), status in zip(
            ((i, e) for i, e in enumerate(parsed.items) if isinstance(e, NewEvent)),
            result.statuses,
            strict=True,
        ):
            if status == "accepted":
                accepted += 1
                self.metrics.accepted(source, event.kind)
            elif status == "duplicate":
                duplicate += 1
                self.metrics.duplicate(source)
            else:
                answer.append(
                    {"index": index, "reason": "message_id_conflict", "detail": _CONFLICT}
                )
        for failure in answer:
            self.metrics.failure(failure["reason"])
        answer.sort(key=lambda f: f["index"])
        await _reply(
            send,
            200,
            orjson.dumps(
                {
                    "success": True,
                    "accepted": accepted,
                    "duplicate": duplicate,
                    "failed": len(answer),
                    "failures": answer,
                }
            ),
        )

    async def _too_large(self, send: Send, source: str | None, received_at: datetime) -> None:
        limit = self.config.intake.max_batch_bytes
        detail = (
            f"the request body is over the limit of {limit} bytes; send smaller batches "
            "(Segment's SDKs flush at 500 KB)"
        )
        if source is not None and self.log is not None:
            failure = FailedEvent(
                source=source, reason="batch_too_large", detail=detail, received_at=received_at
            )
            await _commit(self.log, (), (failure,))
            self.metrics.failure("batch_too_large")
        await _reply(send, 413, _error("batch_too_large", detail), close=True)


_CONFLICT: Final[str] = (
    "messageId was already used for a different payload; give every distinct event its own "
    "messageId"
)


def _split(
    parsed: BatchParse,
) -> tuple[list[NewEvent], list[FailedEvent], list[dict[str, Any]]]:
    events: list[NewEvent] = []
    failures: list[FailedEvent] = []
    answer: list[dict[str, Any]] = []
    for index, item in enumerate(parsed.items):
        if isinstance(item, NewEvent):
            events.append(item)
        else:
            failures.append(item)
            answer.append({"index": index, "reason": item.reason, "detail": item.detail})
    return events, failures, answer


async def _commit(
    log: SqliteEventLog, events: Sequence[NewEvent], failures: Sequence[FailedEvent]
) -> AppendResult:
    """Await the grouped commit on the event loop without blocking it."""
    return await asyncio.wrap_future(log.submit(events, failures))


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress at most ``limit`` bytes (a small gzip bomb cannot fill the memory)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = inflater.decompress(body, limit + 1)
    if len(data) > limit or inflater.unconsumed_tail:
        raise _TooLarge
    return data


def _body_write_key(body: bytes) -> str | None:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    key = raw.get("writeKey") if isinstance(raw, dict) else None
    return key if isinstance(key, str) else None


def _error(reason: str, detail: str) -> bytes:
    return orjson.dumps({"success": False, "error": {"reason": reason, "detail": detail}})


async def _reply(
    send: Send, status: int, body: bytes, *, basic: bool = False, close: bool = False
) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if basic:
        headers.append((b"www-authenticate", b'Basic realm="cdp intake"'))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class IntakeDispatch:
    """ASGI middleware sending ``/v1/...`` to the intake, everything else on."""

    def __init__(self, app: Any, intake: Intake) -> None:
        self.app = app
        self.intake = intake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route by path prefix."""
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            try:
                await self.intake(scope, receive, send)
            except Exception:  # log with context; the client sees a plain 500, no trace
                logger.exception("intake request %s failed", scope["path"])
                raise
        else:
            await self.app(scope, receive, send)
