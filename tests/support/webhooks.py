"""A fake channel webhook for tests: a real HTTP server in a thread that records every request.

It answers 200 unless told to fail: the first ``fail_first`` requests, until a moment
(``fail_until``, ``time.monotonic()``), or always (``always_fail``); ``delay_seconds`` makes it
slow, so a worker can be killed while requests are in flight. It checks nothing itself: tests
verify signatures and idempotency keys on what it recorded, with the platform's own
``events.signing``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import orjson


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the fake received it, and what it answered."""

    received_at: float  # time.time() when the body had arrived
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int

    @property
    def key(self) -> str | None:
        """The ``Idempotency-Key`` header."""
        return self.headers.get("idempotency-key")

    @property
    def message_id(self) -> str | None:
        """The ``X-CDP-Message-Id`` header."""
        return self.headers.get("x-cdp-message-id")

    @property
    def json(self) -> object:
        """The body, parsed."""
        return orjson.loads(self.body)


class _QuietServer(ThreadingHTTPServer):
    """Clients that vanish mid-request (a killed worker) are expected here, not errors."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        return


class FakeWebhook:
    """A channel endpoint on ``127.0.0.1`` (a free port); use as a context manager."""

    def __init__(
        self,
        *,
        fail_first: int = 0,
        fail_until: float | None = None,
        always_fail: bool = False,
        fail_status: int = 503,
        delay_seconds: float = 0.0,
    ) -> None:
        self.fail_first = fail_first
        self.fail_until = fail_until
        self.always_fail = always_fail
        self.fail_status = fail_status
        self.delay_seconds = delay_seconds
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The endpoint (any path is accepted; this one names the channel)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/email"

    @property
    def port(self) -> int:
        """The listening port."""
        return int(self._server.server_address[1])

    def _status(self) -> int:
        with self._lock:
            seen = len(self.requests)
        if self.always_fail or seen < self.fail_first:
            return self.fail_status
        if self.fail_until is not None and time.monotonic() < self.fail_until:
            return self.fail_status
        return 200

    def _record(self, request: ReceivedRequest) -> None:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                received = time.time()
                if fake.delay_seconds:
                    time.sleep(fake.delay_seconds)
                status = fake._status()
                fake._record(
                    ReceivedRequest(
                        received_at=received,
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        status=status,
                    )
                )
                answer = b'{"ok":true}' if status == 200 else b'{"error":"unavailable"}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client went away (a killed worker): the request still counts

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    def accepted(self) -> list[ReceivedRequest]:
        """Requests answered 200."""
        with self._lock:
            return [r for r in self.requests if r.status == 200]

    def wait_for(
        self, predicate: Callable[[list[ReceivedRequest]], bool], timeout: float = 10.0
    ) -> bool:
        """Wait until ``predicate(requests)`` holds (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self.requests)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
            return True

    def __enter__(self) -> FakeWebhook:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
