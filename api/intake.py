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

Erased persons (:class:`IntakeSuppression`): an event one of whose identifiers is on the
suppression list (``privacy.suppression``) is not written to the log, and input that would be
kept as a failed event is not kept when its raw body names a listed identifier. The sender gets
the answer it would have got otherwise (200 for an event, so it does not retry for ever, and
nothing tells it who was erased); ``cdp_intake_suppressed_total{source, reason="erased_person"}``
counts them. Per request this costs a ``PRAGMA data_version`` (the list is reloaded only when
``privacy.sqlite`` changed) and, with a non-empty list, normalizing and hashing the event's
identifiers (memoized per value).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from api.metrics import ApiMetrics, IntakeMetrics, multiprocess_dir
from api.realtime_metrics import SuppressedMetrics
from api.settings import ApiSettings
from api.snapshot import SnapshotManager
from events.config import IdentifierTypes, RealtimeConfig
from events.intake import BatchParse, parse_batch, parse_single
from events.log import SqliteEventLog
from events.types import AppendResult, FailedEvent, NewEvent
from events.write_keys import WriteKeyStore, basic_username
from identity import IdentitySettings, Normalizer
from privacy.erase_events import event_suppressed
from privacy.keys import PrivacyKeyError
from privacy.suppression import SUPPRESSED_REASON, PrivacyStore, Suppression, SuppressionCache

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


class IntakeSuppression:
    """The suppression list as the intake applies it: events and kept failures of erased
    persons are dropped and counted (see the module docstring)."""

    def __init__(
        self,
        current: Callable[[], Suppression],
        normalizer: Callable[[], Normalizer],
        types: IdentifierTypes,
        metrics: SuppressedMetrics,
    ) -> None:
        self.current = current
        self.normalizer = normalizer
        self.types = types
        self.metrics = metrics

    def listed(self) -> Suppression | None:
        """The list as it is now, or None when it is empty (then nothing is hashed)."""
        found = self.current()
        return found if found else None

    def event(self, listed: Suppression, event: NewEvent) -> bool:
        """Whether an event carries a listed identifier."""
        return event_suppressed(event, listed, self.normalizer(), self.types)

    def failure(self, listed: Suppression, failure: FailedEvent) -> bool:
        """Whether a failed input's raw body names a listed identifier."""
        if not failure.body:
            return False
        text = failure.body.decode("utf-8", errors="replace")
        return listed.text_matches(text, self.normalizer().identifier) > 0

    def count(self, source: str | None, count: int = 1) -> None:
        """Count dropped items of one source."""
        if count:
            self.metrics.count(source, SUPPRESSED_REASON, count)


def intake_suppression(
    settings: ApiSettings, metrics: ApiMetrics, snapshots: SnapshotManager, types: IdentifierTypes
) -> IntakeSuppression | None:
    """The intake's suppression for one app: the list under CDP_HOME, matched with the privacy
    key and the served snapshot's normalizer (identity's defaults before any publish).

    ``cdp serve`` refuses to start without the privacy key; an app made directly without one
    runs without suppression while the list is empty, and refuses to start (PrivacyKeyError)
    when it is not: it could not recognise the persons it must drop.
    """
    try:
        keyring = settings.privacy_keyring(settings.home)
    except PrivacyKeyError as exc:
        if PrivacyStore.at(settings.home).version()[0]:
            raise PrivacyKeyError(
                f"the suppression list of erased persons is not empty but there is no privacy "
                f"key to match it: {exc}"
            ) from exc
        logger.warning("no privacy key: the intake does not check the suppression list")
        return None
    listed = SuppressionCache(settings.home, keyring)
    default = Normalizer(IdentitySettings())

    def normalizer() -> Normalizer:
        current = snapshots.current
        return current.normalizer if current is not None else default

    target = None if multiprocess_dir() else metrics.registry
    return IntakeSuppression(listed.get, normalizer, types, SuppressedMetrics(target))


class Intake:
    """What the intake needs: write keys, limits and identifier types, the log, metrics, and
    the suppression list of erased persons (None: not checked)."""

    def __init__(
        self,
        keys: WriteKeyStore,
        config: RealtimeConfig,
        metrics: IntakeMetrics,
        suppression: IntakeSuppression | None = None,
    ) -> None:
        self.keys = keys
        self.config = config
        self.metrics = metrics
        self.suppression = suppression
        self.log: SqliteEventLog | None = None

    def _listed(self) -> Suppression | None:
        return self.suppression.listed() if self.suppression is not None else None

    def _drop_failure(self, listed: Suppression | None, failure: FailedEvent) -> bool:
        """True (counted) when a failure names an erased person: it is answered, not kept."""
        if listed is None or self.suppression is None:
            return False
        if not self.suppression.failure(listed, failure):
            return False
        self.suppression.count(failure.source)
        return True

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
        listed = self._listed()
        if isinstance(parsed, FailedEvent):
            if not self._drop_failure(listed, parsed):
                await _commit(log, (), (parsed,))
                self.metrics.failure(parsed.reason)
            await _reply(send, 400, _error(parsed.reason, parsed.detail))
            return
        suppression = self.suppression
        if listed is not None and suppression is not None and suppression.event(listed, parsed):
            suppression.count(source)
            await _reply(send, 200, _OK)  # acknowledged as if stored
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
        listed = self._listed()
        if isinstance(parsed, FailedEvent):
            if not self._drop_failure(listed, parsed):
                await _commit(log, (), (parsed,))
                self.metrics.failure(parsed.reason)
            await _reply(send, 400, _error(parsed.reason, parsed.detail))
            return
        indexed, failures, answer = _split(parsed)
        dropped = 0
        if listed is not None and self.suppression is not None:
            # an erased person's events are acknowledged as accepted, not stored; their
            # failures are answered by index as usual, not kept
            suppression = self.suppression
            kept = [(i, e) for i, e in indexed if not suppression.event(listed, e)]
            dropped = len(indexed) - len(kept)
            indexed = kept
            kept_failures = [f for f in failures if not suppression.failure(listed, f)]
            dropped_failures = len(failures) - len(kept_failures)
            failures = kept_failures
            suppression.count(source, dropped + dropped_failures)
        events = [e for _, e in indexed]
        if events or failures:
            result = await _commit(log, events, failures)
        else:
            result = AppendResult(statuses=(), offsets=())
        accepted, duplicate = dropped, 0
        for (index, event), status in zip(indexed, result.statuses, strict=True):
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
                self.metrics.failure("message_id_conflict")
        for failure in failures:  # the kept ones (an erased person's are not kept)
            self.metrics.failure(failure.reason)
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
) -> tuple[list[tuple[int, NewEvent]], list[FailedEvent], list[dict[str, Any]]]:
    """(events with their batch index, failures to keep, the answer's failures by index)."""
    events: list[tuple[int, NewEvent]] = []
    failures: list[FailedEvent] = []
    answer: list[dict[str, Any]] = []
    for index, item in enumerate(parsed.items):
        if isinstance(item, NewEvent):
            events.append((index, item))
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
