"""A reference webhook receiver: what a channel does with the platform's deliveries.

This is a demo receiver (``cdp webhook-receiver``; ``make demo`` starts one so a user sees the
messages the triggers send). A real channel (an e-mail service, a push gateway) replaces it and
should do the same three things, in this order:

1. verify ``X-CDP-Signature`` over the raw body with the channel's secret (``cdp outbox secret
   CHANNEL``) and refuse a bad one (401) or a malformed one (400) before parsing anything;
2. dedupe on ``Idempotency-Key``: delivery is at-least-once, so a message may come again after
   a crash or a lost reply; a key already seen is acknowledged (200) and not acted on twice;
3. answer 2xx only once the message is safely kept (here: appended as a JSON line to a file
   and fsynced), because a 2xx is what makes the platform stop retrying.

Stdlib ``http.server`` only (the ``events`` library imports no web framework); a thread per
connection is plenty for a demo. The keys already seen are read back from the output file at
start, so a restarted receiver still dedupes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Final

import orjson

from events.signing import DEFAULT_TOLERANCE_SECONDS, SIGNATURE_HEADER, SignatureError, verify

logger = logging.getLogger(__name__)

MAX_BODY_BYTES: Final[int] = 1024 * 1024
#: Signature problems that mean "not proven to be from the platform" (401), not "malformed".
_UNAUTHORIZED: Final[frozenset[str]] = frozenset({"too_old", "too_new", "mismatch"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # a sender that hangs up mid-request (a killed worker) resends later: not an error here
        logger.debug("connection from %s ended abruptly", client_address, exc_info=True)


class WebhookReceiver:
    """Accepts signed deliveries for one channel and appends each new one to ``out``."""

    def __init__(
        self,
        secret: str | Sequence[str],
        out: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8025,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.secrets = [secret] if isinstance(secret, str) else list(secret)
        if not self.secrets or not all(self.secrets):
            raise ValueError("WebhookReceiver: a non-empty secret is needed")
        self.out = Path(out)
        self.tolerance_seconds = tolerance_seconds
        self.max_body_bytes = max_body_bytes
        self.accepted = 0
        self.duplicates = 0
        self.refused = 0
        self._lock = threading.Lock()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._seen = self._read_seen()
        self._server = _Server((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The receiver's base URL (any path is accepted)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _read_seen(self) -> set[str]:
        seen: set[str] = set()
        if not self.out.exists():
            return seen
        with self.out.open("rb") as handle:
            for line in handle:
                try:
                    key = orjson.loads(line).get("idempotency_key")
                except (orjson.JSONDecodeError, AttributeError):
                    continue  # a torn last line from a crash: that message was not acknowledged
                if isinstance(key, str):
                    seen.add(key)
        return seen

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        """Check and keep one delivery; returns the status and the JSON answer."""
        try:
            verify(
                self.secrets, headers.get(SIGNATURE_HEADER.lower()), body, self.tolerance_seconds
            )
        except SignatureError as exc:
            self.refused += 1
            status = (
                HTTPStatus.UNAUTHORIZED if exc.reason in _UNAUTHORIZED else HTTPStatus.BAD_REQUEST
            )
            return status, {"error": exc.reason, "detail": str(exc)}
        key = headers.get("idempotency-key", "").strip()
        if not key:
            self.refused += 1
            return HTTPStatus.BAD_REQUEST, {"error": "missing_idempotency_key"}
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.refused += 1
            return HTTPStatus.BAD_REQUEST, {"error": "invalid_json"}
        with self._lock:
            if key in self._seen:
                self.duplicates += 1
                return HTTPStatus.OK, {"status": "duplicate"}
            line = {
                "received_at": datetime.now(UTC).isoformat(),
                "idempotency_key": key,
                "message_id": headers.get("x-cdp-message-id"),
                "attempt": headers.get("x-cdp-attempt"),
                "channel": headers.get("x-cdp-channel"),
                "trigger": headers.get("x-cdp-trigger"),
                "payload": payload,
            }
            with self.out.open("ab") as handle:
                handle.write(orjson.dumps(line) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            self._seen.add(key)
            self.accepted += 1
        logger.info("accepted %s (%s)", key, headers.get("x-cdp-trigger"))
        return HTTPStatus.OK, {"status": "accepted"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "cdp-demo-receiver"

            def _answer(self, status: int, answer: dict[str, str]) -> None:
                data = orjson.dumps(answer)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/health":
                    self._answer(HTTPStatus.OK, {"status": "ok"})
                else:
                    self._answer(HTTPStatus.NOT_FOUND, {"error": "POST deliveries to any path"})

            def do_POST(self) -> None:
                length_text = self.headers.get("Content-Length")
                if length_text is None or not length_text.isdigit():
                    self.close_connection = True
                    self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": "length_required"})
                    return
                length = int(length_text)
                if length > receiver.max_body_bytes:
                    self.close_connection = True
                    self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "too_large"})
                    return
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer = receiver.handle(headers, body)
                self._answer(status, answer)

            def log_message(self, format: str, *args: object) -> None:
                logger.debug("%s " + format, self.address_string(), *args)

        return Handler

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`shutdown`."""
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> WebhookReceiver:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
