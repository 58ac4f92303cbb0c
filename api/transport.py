"""HTTP transport limits for ``cdp serve``: slow clients, oversized request heads, concurrency.

uvicorn bounds only idle keep-alive connections (``timeout_keep_alive``), and any read stops
that timer. A client that sends its request head or body a byte at a time keeps a connection,
and once the head is in a running request, for as long as it likes (slowloris); and httptools
buffers a header line of any length before the protocol sees it. ``GuardedHttpToolsProtocol``
is uvicorn's httptools protocol plus:

- a head deadline: complete request headers within ``header_timeout_seconds`` of connecting, or
  of the first byte of a later request on a keep-alive connection (the idle time before that
  byte is uvicorn's keep-alive timeout). Late: 408 when part of a request arrived, then close;
  a connection that sent nothing, or only empty lines, is closed without an answer.
- a body deadline: the whole body within ``body_timeout_seconds`` of the head, whether it
  stalls or trickles. Late: 408 if the request has no response yet, then close; the running
  request reads ``http.disconnect``, so whatever it holds for the body is released. A body that
  ends after its request was answered re-arms the keep-alive timer its reads stopped.
- head size: a request line longer than ``max_header_line_bytes`` gets 414; a header field
  longer than that, a head larger than ``max_header_bytes`` or with more than
  ``max_header_fields`` fields gets 431, before the app sees it (nothing of it is logged or
  echoed). While a head is incomplete its size is bounded by the bytes of the reads since it
  began, so an unterminated line cannot grow past ``max_header_bytes`` either (with pipelined
  requests that bound includes the tail of the previous request in the same read). A complete
  head is measured field by field only when its reads exceed one line's limit: a smaller head
  fits every limit, so ordinary requests pay nothing for the check.

Every refusal says ``connection: close`` and closes lingering: the write side is shut after the
answer and input is read and dropped for up to ``LINGER_SECONDS``, so a client still sending
reads the status instead of a connection reset. Each is counted in
``cdp_api_connections_closed_total{reason}``, as are uvicorn's 503s beyond ``max_concurrency``.

The deadlines are timers armed only when needed: the first request's head deadline is one timer
per connection, later ones are armed only when a read ends with a head or a body incomplete, so
a request that arrives in one read (every benchmark request) arms none. Measured on uvicorn's
parsing path with a no-op app: about 1 µs more per such request, 2.5 µs when the body comes in a
read of its own (against ~0.6-0.9 ms of server CPU per lookup).

``cdp serve`` passes ``protocol_factory(settings)`` to uvicorn as its ``http`` class; workers
are spawned processes, and the factory (a ``functools.partial`` of this class and the settings)
pickles. ``uvicorn --http api.transport:GuardedHttpToolsProtocol`` works too and reads
``TransportSettings`` from the environment. uvicorn's h11 protocol is not guarded.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, Final

import httptools
from prometheus_client import CollectorRegistry, Counter
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

#: How long a refused connection keeps reading (and dropping) input after its answer.
LINGER_SECONDS: Final[float] = 2.0
#: Why a connection was closed: the ``reason`` label of ``cdp_api_connections_closed_total``.
CLOSE_REASONS: Final[tuple[str, ...]] = (
    "header_timeout",
    "body_timeout",
    "headers_too_large",
    "url_too_long",
    "over_concurrency",
    "invalid_request",
)

# Where a connection is in its current request.
_IDLE: Final[int] = 0  # no byte of a request yet (new connection, or between requests)
_HEAD: Final[int] = 1  # a request has begun, its head is incomplete
_BODY: Final[int] = 2  # the head is complete, the body is not


class TransportSettings(BaseSettings):
    """How ``cdp serve`` bounds connections, from ``CDP_API_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CDP_API_", env_file=".env", extra="ignore")

    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="complete request headers within this long of connecting (or of a "
        "keep-alive request's first byte), else 408 and close",
    )
    body_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="complete request body within this long of its headers, else 408 and close",
    )
    keep_alive_timeout_seconds: float = Field(
        default=5.0, gt=0, le=300, description="close a keep-alive connection idle this long"
    )
    max_header_bytes: int = Field(
        default=32 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="largest request head (request line and all header fields), else 431",
    )
    max_header_line_bytes: int = Field(
        default=8 * 1024,
        ge=256,
        le=1024 * 1024,
        description="longest request line (else 414) or header field (else 431)",
    )
    max_header_fields: int = Field(
        default=100, ge=8, le=10_000, description="most header fields in a request, else 431"
    )
    max_concurrency: int = Field(
        default=512,
        ge=1,
        description="per worker: open connections (or running requests) beyond which uvicorn "
        "answers 503 and closes",
    )
    backlog: int = Field(
        default=2048, ge=16, le=65_535, description="pending connections the kernel queues"
    )

    @model_validator(mode="after")
    def _line_fits_in_head(self) -> TransportSettings:
        if self.max_header_line_bytes > self.max_header_bytes:
            raise ValueError(
                "max_header_line_bytes must not exceed max_header_bytes "
                f"({self.max_header_line_bytes} > {self.max_header_bytes})"
            )
        return self


def settings_error(exc: ValidationError) -> str:
    """A start-up message naming each invalid ``CDP_API_*`` variable and what is wrong."""
    problems = []
    for error in exc.errors():
        names = [str(part) for part in error["loc"]]
        where = ", ".join(f"CDP_API_{name.upper()}" for name in names) or "CDP_API_* settings"
        problems.append(f"{where}: {error['msg']}")
    return "invalid transport settings: " + "; ".join(problems)


class TransportMetrics:
    """``cdp_api_connections_closed_total{reason}``, one child per reason made up front."""

    def __init__(self) -> None:
        # Not in any registry: with several workers (PROMETHEUS_MULTIPROC_DIR) the values go to
        # the shared files /metrics aggregates; with one, ``register_metrics`` exposes it.
        self.closed = Counter(
            "cdp_api_connections_closed",
            "Connections the server closed by reason: header_timeout, body_timeout, "
            "headers_too_large, url_too_long, over_concurrency (uvicorn's 503), "
            "invalid_request (unparsable HTTP).",
            ["reason"],
            registry=None,
        )
        self._children = {reason: self.closed.labels(reason) for reason in CLOSE_REASONS}

    def count(self, reason: str) -> None:
        """Count one connection closed for ``reason`` (one of CLOSE_REASONS)."""
        self._children[reason].inc()


@functools.cache
def transport_metrics() -> TransportMetrics:
    """This process's transport counters (made on first use, in the worker)."""
    return TransportMetrics()


def register_metrics(registry: CollectorRegistry) -> None:
    """Expose the transport counters in an app's registry when running a single process."""
    from api.metrics import multiprocess_dir  # here: api.metrics loads the identity library

    if multiprocess_dir() is None:
        registry.register(transport_metrics().closed)


@functools.cache
def _environment_settings() -> TransportSettings:
    return TransportSettings()


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a head that is refused."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head and body deadlines and head size limits."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        settings: TransportSettings | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = settings if settings is not None else _environment_settings()
        self._header_timeout = settings.header_timeout_seconds
        self._body_timeout = settings.body_timeout_seconds
        self._max_head = settings.max_header_bytes
        self._max_line = settings.max_header_line_bytes
        self._max_fields = settings.max_header_fields
        self._metrics = transport_metrics()
        self._phase = _IDLE
        self._read_size = 0  # size of the read being parsed
        self._head_bound = 0  # at most the bytes of the current head received so far
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None
        self._discarding = False

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the first request's head deadline."""
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self._header_timeout, self._header_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop this connection's timers."""
        for timer in (self._header_timer, self._body_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = self._linger_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, plus the head size bound and the deadlines a partial read leaves open."""
        if self._discarding:
            return
        self._unset_keepalive_if_required()
        self._read_size = size = len(data)
        if self._phase == _HEAD:
            self._head_bound += size
        elif self._phase == _IDLE:
            self._head_bound = 0  # stays 0 unless a request begins in this read
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self._metrics.count("invalid_request")
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
                return
            self._unsupported_upgrade_warning()
        phase = self._phase
        if phase == _BODY:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self._body_timeout, self._body_timed_out)
        elif phase == _HEAD:
            if self._head_bound > self._max_head:  # an unfinished head may not grow either
                if len(self.url) > self._max_line:
                    self._refuse(414, "url_too_long", "Request line too long.")
                else:
                    self._refuse(431, "headers_too_large", "Request header fields too large.")
            elif self._header_timer is None:
                self._header_timer = self.loop.call_later(
                    self._header_timeout, self._header_timed_out
                )
        elif self._head_bound == 0 and self._header_timer is None:
            # Only empty lines (which the parser skips): no request began, but the read
            # cancelled the keep-alive timer; the head deadline bounds this connection instead.
            self._header_timer = self.loop.call_later(self._header_timeout, self._header_timed_out)

    # Parser callbacks

    def on_message_begin(self) -> None:
        """A request's first byte: its head is now being read."""
        super().on_message_begin()
        self._phase = _HEAD
        # An upper bound of the head's bytes so far: this whole read (later reads add theirs).
        self._head_bound = self._read_size

    def on_headers_complete(self) -> None:
        """The head is in: its deadline ends, the body's starts (if a read ends inside it)."""
        if self._head_bound > self._max_line:  # a head no larger than one line fits every limit
            self._check_head()
        self._phase = _BODY
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        limit = self.limit_concurrency
        if limit is not None and (
            len(self.connections) >= limit or len(self.tasks) >= limit
        ):  # uvicorn answers this request 503 and closes
            self._metrics.count("over_concurrency")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The body is in: its deadline ends."""
        self._phase = _IDLE
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()
        cycle = self.cycle
        if (
            cycle is not None
            and cycle.response_complete
            and self.timeout_keep_alive_task is None
            and not self.transport.is_closing()
        ):
            # Answered before its body ended (e.g. 413, or /health with a body): the body's
            # reads cancelled the keep-alive timer the response armed; the connection is idle
            # from now, so arm it again (uvicorn would leave it open for good).
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    # Limits

    def _check_head(self) -> None:
        """The exact limits on a complete head (only heads that may exceed one are checked)."""
        if len(self.url) > self._max_line:
            self._refuse_head(414, "url_too_long", "Request line too long.")
        if len(self.headers) > self._max_fields:
            self._refuse_head(431, "headers_too_large", "Too many request header fields.")
        total = len(self.url)
        for name, value in self.headers:
            size = len(name) + len(value)
            if size > self._max_line:
                self._refuse_head(431, "headers_too_large", "Request header field too large.")
            total += size + 4  # ": " and CRLF
        if total > self._max_head:
            self._refuse_head(431, "headers_too_large", "Request header fields too large.")

    def _refuse_head(self, status: int, reason: str, message: str) -> None:
        self._refusal = (status, reason, message)
        raise _HeadRefused(message)  # httptools stops and raises HttpParserCallbackError

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._phase == _BODY or self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server stopped reading (pipelining): not the client
            self._header_timer = self.loop.call_later(self._header_timeout, self._header_timed_out)
            return
        # _IDLE: no request began (nothing, or only empty lines, was sent): close unanswered.
        self._refuse(
            408 if self._phase == _HEAD else None,
            "header_timeout",
            "Request headers not received in time.",
        )

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self._phase != _BODY or self.transport.is_closing():
            return
        if self.flow.read_paused:  # the app has not read the body it buffered: not the client
            self._body_timer = self.loop.call_later(self._body_timeout, self._body_timed_out)
            return
        self._refuse(408, "body_timeout", "Request body not received in time.")

    def _refuse(self, status: int | None, reason: str, message: str) -> None:
        """Answer ``status`` (None: no answer) unless a response is under way, then close."""
        self._refusal = None
        self._metrics.count(reason)
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None
        self._unset_keepalive_if_required()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if self._phase != _BODY or cycle.response_started:
                # A response is under way (this request's, or the one before a pipelined head):
                # let it finish, then uvicorn closes; ignore the rest of the input.
                cycle.keep_alive = False
                self._discarding = True
                return
            # The request waits for this body: it now reads http.disconnect and its sends are
            # dropped, so the only answer on the wire is ours.
            cycle.disconnected = True
            cycle.message_event.set()
        elif self._phase == _BODY:
            status = None  # the request was answered (before reading its body): say no more
        if status is not None:
            self.transport.write(self._answer(status, message))
        self._close_lingering()

    def _answer(self, status: int, message: str) -> bytes:
        body = message.encode("ascii")
        parts = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            parts += [name, b": ", value, b"\r\n"]
        parts += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
        return b"".join(parts)

    def _close_lingering(self) -> None:
        """Send what is written, shut the write side, drop input for a while, then close:
        closing with unread input would reset the connection and lose the answer."""
        self._discarding = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


def protocol_factory(settings: TransportSettings) -> Callable[..., asyncio.Protocol]:
    """uvicorn's ``http`` argument: the guarded protocol bound to ``settings`` (picklable)."""
    return functools.partial(GuardedHttpToolsProtocol, settings=settings)
