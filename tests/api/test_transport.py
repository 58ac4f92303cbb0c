"""Transport limits of ``cdp serve`` (api/transport.py), over raw sockets against a real server.

Slow clients (slowloris headers, stalled or dribbled bodies), oversized heads and the
concurrency limit; each answer is checked on the wire (status, ``connection: close``, nothing
echoed) and the connection must be closed by the server within the configured time plus slack.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import typer
import uvicorn
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from typer.testing import CliRunner

from api.transport import (
    GuardedHttpToolsProtocol,
    TransportSettings,
    protocol_factory,
    register_metrics,
    settings_error,
    transport_metrics,
)
from dagster_project.cli.serve import api_key_app, serve
from dagster_project.lib.publish import publish_snapshot
from tests.support.api_harness import Published, Server, copy_world, start_server, stop_server
from tests.support.api_world import customer_id, email

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
KEEP_ALIVE_TIMEOUT = 3.0
#: Per worker; each test below keeps well under it except the one that exceeds it on purpose.
MAX_CONCURRENCY = 40
#: Allowed lateness of a close on a busy two-core machine.
SLACK = 2.5
LOOKUP = (
    "query Lookup($t: String!, $v: String!) { customer(lookup: {type: $t, value: $v}) "
    "{ customerId } }"
)


@pytest.fixture(scope="module")
def served(
    published: Published, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Published, Server]]:
    """One two-worker server (as ``cdp serve`` runs) with one-second header and body timeouts."""
    tmp_path = tmp_path_factory.mktemp("transport")
    world = copy_world(published, tmp_path / "home")
    w = world.world
    publish_snapshot(w.warehouse, w.serving_dir)
    server = start_server(
        w.home,
        tmp_path,
        workers=2,
        env={
            "CDP_API_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "CDP_API_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "CDP_API_KEEP_ALIVE_TIMEOUT_SECONDS": str(KEEP_ALIVE_TIMEOUT),
            "CDP_API_MAX_CONCURRENCY": str(MAX_CONCURRENCY),
        },
    )
    try:
        yield world, server
    finally:
        stop_server(server)


def connect(server: Server) -> socket.socket:
    address = urlsplit(server.url)
    return socket.create_connection((address.hostname, address.port), timeout=5)


def lookup_request(
    key: str, i: int = 11, *, extra: list[bytes] | None = None, pad: int = 0
) -> bytes:
    """A complete lookup of customer ``i`` as raw HTTP/1.1 (keep-alive); ``pad`` bytes of
    JSON whitespace make the body larger."""
    body = json.dumps({"query": LOOKUP, "variables": {"t": "email", "v": email(i)}}).encode()
    body = body[:-1] + b" " * pad + b"}"
    lines = [
        b"POST /graphql HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Content-Type: application/json",
        b"Authorization: Bearer " + key.encode(),
        b"Content-Length: %d" % len(body),
        *(extra or []),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def read_responses(
    sock: socket.socket, count: int = 1, timeout: float = 10
) -> list[tuple[int, dict[str, str], bytes]]:
    """``count`` responses (status, lower-cased headers, body); each body must have a length."""
    sock.settimeout(timeout)
    data = b""
    responses = []

    def receive() -> None:
        nonlocal data
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a complete response: {data[:200]!r}")
        data += chunk

    while len(responses) < count:
        while b"\r\n\r\n" not in data:
            receive()
        head, _, data = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        while len(data) < length:
            receive()
        responses.append((int(status_line.split()[1]), headers, data[:length]))
        data = data[length:]
    assert data == b"", f"unexpected bytes after {count} response(s): {data[:200]!r}"
    return responses


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (status, lower-cased headers, body)."""
    return read_responses(sock, 1)[0]


def read_until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """Everything the server sends for up to ``seconds``, and whether it closed (EOF or RST)."""
    deadline = time.monotonic() + seconds
    data = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def dribble(sock: socket.socket, payload: bytes, interval: float, seconds: float) -> bytes:
    """Send ``payload`` a byte every ``interval`` s until the server closes or ``seconds`` pass;
    what the server sent back, or raise AssertionError if it never closed."""
    deadline = time.monotonic() + seconds
    received = b""
    for byte in payload:
        if time.monotonic() > deadline:
            break
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return received
        data, closed = read_until_closed(sock, interval)
        received += data
        if closed:
            return received
    raise AssertionError(f"the server kept a dribbling connection open for {seconds} s")


def metrics_text(served: tuple[Published, Server]) -> str:
    world, server = served
    headers = {"Authorization": f"Bearer {world.keys['admin']}"}
    response = httpx.get(server.url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def closed_count(served: tuple[Published, Server], reason: str) -> float:
    text = metrics_text(served)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cdp_api_connections_closed_total" and sample.labels == {
                "reason": reason
            }:
                return sample.value
    return 0.0


@pytest.mark.e2e
def test_headers_dribbled_a_byte_at_a_time_get_408_and_are_closed(
    served: tuple[Published, Server],
) -> None:
    world, server = served
    before = closed_count(served, "header_timeout")
    with connect(server) as sock:
        started = time.monotonic()
        received = dribble(sock, lookup_request(world.keys["profile"]), 0.5, HEADER_TIMEOUT + SLACK)
        elapsed = time.monotonic() - started
    assert HEADER_TIMEOUT * 0.9 <= elapsed <= HEADER_TIMEOUT + SLACK
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert b"connection: close" in received.lower()
    assert closed_count(served, "header_timeout") >= before + 1


@pytest.mark.e2e
def test_a_connection_that_sends_nothing_is_closed_silently(
    served: tuple[Published, Server],
) -> None:
    _, server = served
    with connect(server) as sock:
        started = time.monotonic()
        received, closed = read_until_closed(sock, HEADER_TIMEOUT + SLACK)
        elapsed = time.monotonic() - started
    assert closed, "an idle new connection stayed open"
    assert received == b""  # no 408 to a client that never asked anything
    assert HEADER_TIMEOUT * 0.9 <= elapsed <= HEADER_TIMEOUT + SLACK


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["stalled", "dribbled"])
def test_a_body_that_does_not_arrive_in_time_gets_408_and_is_closed(
    served: tuple[Published, Server], how: str
) -> None:
    world, server = served
    before = closed_count(served, "body_timeout")
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + world.keys["profile"].encode() + b"\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    with connect(server) as sock:
        sock.sendall(head + b'{"query": ')
        started = time.monotonic()
        if how == "stalled":
            received, closed = read_until_closed(sock, BODY_TIMEOUT + SLACK)
            assert closed, "a stalled body kept the connection open"
        else:  # a byte every 0.3 s: never idle, but the whole body is far too late
            received = dribble(sock, b" " * 90, 0.3, BODY_TIMEOUT + SLACK)
        elapsed = time.monotonic() - started
    assert BODY_TIMEOUT * 0.9 <= elapsed <= BODY_TIMEOUT + SLACK
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert closed_count(served, "body_timeout") >= before + 1


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("request_id_20kb", 431),
        ("header_value_100kb", 431),
        ("unfinished_header_100kb", 431),
        ("many_headers_48kb", 431),
        ("url_20kb", 414),
    ],
)
def test_oversized_heads_are_refused_unechoed_and_closed(
    served: tuple[Published, Server], case: str, status: int
) -> None:
    world, server = served
    key = world.keys["profile"]
    marker = b"Zq" * 10_000  # 20 KB, recognizable if echoed
    payload = {
        "request_id_20kb": lookup_request(key, extra=[b"X-Request-Id: " + marker]),
        "header_value_100kb": lookup_request(key, extra=[b"X-Padding: " + marker * 5]),
        "unfinished_header_100kb": b"POST /graphql HTTP/1.1\r\nHost: x\r\nX-Padding: " + marker * 5,
        "many_headers_48kb": lookup_request(
            key, extra=[b"X-Padding-%d: " % n + marker[:4000] for n in range(12)]
        ),
        "url_20kb": b"GET /health?" + marker + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    }[case]
    with connect(server) as sock:
        sock.sendall(payload)
        received, closed = read_until_closed(sock, 5)
    assert received.startswith(b"HTTP/1.1 %d " % status), received[:200]
    assert b"connection: close" in received.lower()
    assert marker[:100] not in received
    assert closed


@pytest.mark.e2e
def test_keep_alive_requests_still_work_and_each_gets_its_own_header_timeout(
    served: tuple[Published, Server],
) -> None:
    world, server = served
    request = lookup_request(world.keys["profile"], 11)
    with connect(server) as sock:
        sock.sendall(request)
        status, headers, body = read_response(sock)
        assert status == 200 and json.loads(body)["data"]["customer"] == {
            "customerId": customer_id(11)
        }
        assert "close" not in headers.get("connection", "")
        # idle longer than the header timeout (keep-alive covers idleness), then a request
        # whose head comes in two pieces: both fine
        time.sleep(HEADER_TIMEOUT * 1.5)
        sock.sendall(request[:40])
        time.sleep(0.3)
        sock.sendall(request[40:])
        status, _, body = read_response(sock)
        assert status == 200 and json.loads(body)["data"]["customer"] is not None
        # two pipelined requests, then one whose 100 KB body arrives with its head: reads far
        # larger than a head limit, yet no head is too large
        sock.sendall(request + lookup_request(world.keys["profile"], 12))
        assert [status for status, _, _ in read_responses(sock, 2)] == [200, 200]
        sock.sendall(lookup_request(world.keys["profile"], 13, pad=100_000))
        status, _, body = read_response(sock)
        assert status == 200 and json.loads(body)["data"]["customer"] == {
            "customerId": customer_id(13)
        }
        # the next request's head stalls: this one is timed out on the same connection
        sock.sendall(request[:40])
        started = time.monotonic()
        received, closed = read_until_closed(sock, HEADER_TIMEOUT + SLACK)
        elapsed = time.monotonic() - started
    assert closed and received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert HEADER_TIMEOUT * 0.9 <= elapsed <= HEADER_TIMEOUT + SLACK


@pytest.mark.e2e
def test_keep_alive_connections_kept_busy_without_a_request_are_closed(
    served: tuple[Published, Server],
) -> None:
    """uvicorn's keep-alive timer stops at any read: empty lines between requests, or the body
    of a request that was answered before its body ended, left the connection open for good."""
    world, server = served
    with connect(server) as sock:  # empty lines after a response, every 0.3 s
        sock.sendall(lookup_request(world.keys["profile"]))
        assert read_response(sock)[0] == 200
        started = time.monotonic()
        received = dribble(sock, b"\r\n" * 50, 0.3, HEADER_TIMEOUT + SLACK)
        elapsed = time.monotonic() - started
    assert received == b"" and elapsed <= HEADER_TIMEOUT + SLACK
    with connect(server) as sock:  # /health answers without reading the body it was sent
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        assert read_response(sock)[0] == 200
        sock.sendall(b"0123456789")
        started = time.monotonic()
        received, closed = read_until_closed(sock, KEEP_ALIVE_TIMEOUT + SLACK)
        elapsed = time.monotonic() - started
    assert closed and received == b""
    assert KEEP_ALIVE_TIMEOUT * 0.9 <= elapsed <= KEEP_ALIVE_TIMEOUT + SLACK


@pytest.mark.e2e
def test_lookups_stay_fast_while_slowloris_connections_are_shed(
    served: tuple[Published, Server],
) -> None:
    world, server = served
    slow = [connect(server) for _ in range(20)]
    started = time.monotonic()
    for sock in slow:
        sock.sendall(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.3):
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(b"X")

    trickler = threading.Thread(target=trickle)
    trickler.start()
    latencies = []
    try:
        with httpx.Client(timeout=10) as client:
            while time.monotonic() - started < HEADER_TIMEOUT * 0.8:
                sent = time.perf_counter()
                response = client.post(
                    server.url + "/graphql",
                    json={"query": LOOKUP, "variables": {"t": "email", "v": email(12)}},
                    headers={"Authorization": f"Bearer {world.keys['profile']}"},
                )
                latencies.append(time.perf_counter() - sent)
                assert response.status_code == 200
                assert response.json()["data"]["customer"]["customerId"] == customer_id(12)
        still_open = []
        for sock in slow:
            left = max(HEADER_TIMEOUT + SLACK - (time.monotonic() - started), 0.01)
            _, closed = read_until_closed(sock, left)
            if not closed:
                still_open.append(sock)
    finally:
        stop.set()
        trickler.join()
        for sock in slow:
            sock.close()
    assert len(latencies) >= 5
    assert max(latencies) < 0.5, latencies
    assert still_open == [], f"{len(still_open)} slowloris connections outlived the timeout"


@pytest.mark.e2e
def test_connections_beyond_the_concurrency_limit_get_503(
    served: tuple[Published, Server],
) -> None:
    world, server = served
    before = closed_count(served, "over_concurrency")
    # more idle connections than both workers together allow (each is closed by the header
    # timeout after a second; the lookups below are sent well before that)
    idle = [connect(server) for _ in range(2 * MAX_CONCURRENCY + 20)]
    statuses = []
    try:
        for _ in range(10):
            with connect(server) as sock:
                sock.sendall(lookup_request(world.keys["profile"]))
                status, headers, _ = read_response(sock)
            statuses.append(status)
            if status == 503:
                assert headers["connection"] == "close"
                break
    finally:
        for sock in idle:
            sock.close()
    assert 503 in statuses, statuses
    assert closed_count(served, "over_concurrency") >= before + 1
    with httpx.Client(timeout=10) as client:  # and the server recovers at once
        response = client.post(
            server.url + "/graphql",
            json={"query": LOOKUP, "variables": {"t": "email", "v": email(13)}},
            headers={"Authorization": f"Bearer {world.keys['profile']}"},
        )
    assert response.status_code == 200


@pytest.mark.e2e
def test_metrics_name_every_reason(served: tuple[Published, Server]) -> None:
    text = metrics_text(served)
    reasons = {
        sample.labels["reason"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "cdp_api_connections_closed_total"
    }
    assert {"header_timeout", "body_timeout", "headers_too_large", "over_concurrency"} <= reasons


def test_settings_default_to_generous_limits_and_refuse_inconsistent_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = TransportSettings()
    assert (settings.header_timeout_seconds, settings.body_timeout_seconds) == (10.0, 10.0)
    assert settings.max_header_line_bytes <= settings.max_header_bytes
    assert settings.max_concurrency > 32  # bench_api's saturation run uses 32 connections
    monkeypatch.setenv("CDP_API_HEADER_TIMEOUT_SECONDS", "0")
    with pytest.raises(ValidationError) as error:
        TransportSettings()
    assert "CDP_API_HEADER_TIMEOUT_SECONDS: Input should be greater than 0" in settings_error(
        error.value
    )
    monkeypatch.delenv("CDP_API_HEADER_TIMEOUT_SECONDS")
    monkeypatch.setenv("CDP_API_MAX_HEADER_LINE_BYTES", "65536")
    with pytest.raises(ValidationError, match="must not exceed max_header_bytes"):
        TransportSettings()


def invoke_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, dict[str, Any]]:
    """``cdp serve`` with uvicorn.run replaced: exit code, output, what uvicorn was given."""
    given: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: given.update(options, app=app))
    app = typer.Typer()
    app.command()(serve)
    app.add_typer(api_key_app, name="api-key")
    result = CliRunner().invoke(
        app, ["serve", "--home", str(tmp_path), "--port", "8765", "--workers", "1"]
    )
    return result.exit_code, " ".join(result.output.split()), given


def test_serve_runs_uvicorn_with_the_guarded_protocol_and_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDP_API_HEADER_TIMEOUT_SECONDS", "4")
    monkeypatch.setenv("CDP_API_MAX_CONCURRENCY", "77")
    exit_code, output, given = invoke_serve(tmp_path, monkeypatch)
    assert exit_code == 0, output
    assert given["http"].func is GuardedHttpToolsProtocol
    assert given["http"].keywords["settings"].header_timeout_seconds == 4
    assert (given["limit_concurrency"], given["backlog"], given["timeout_keep_alive"]) == (
        77,
        2048,
        5.0,
    )
    assert given["ws"] == "none"


def test_serve_refuses_invalid_transport_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDP_API_BODY_TIMEOUT_SECONDS", "soon")
    exit_code, output, given = invoke_serve(tmp_path, monkeypatch)
    assert exit_code == 2 and given == {}
    assert "CDP_API_BODY_TIMEOUT_SECONDS" in output


def test_the_protocol_factory_survives_the_trip_to_a_spawned_worker() -> None:
    settings = TransportSettings(header_timeout_seconds=3, max_concurrency=7)
    factory = pickle.loads(pickle.dumps(protocol_factory(settings)))
    assert factory.func is GuardedHttpToolsProtocol
    assert factory.keywords["settings"] == settings


def test_one_process_exposes_the_counter_through_an_apps_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    registry = CollectorRegistry()
    register_metrics(registry)
    before = registry.get_sample_value(
        "cdp_api_connections_closed_total", {"reason": "body_timeout"}
    )
    transport_metrics().count("body_timeout")
    after = registry.get_sample_value(
        "cdp_api_connections_closed_total", {"reason": "body_timeout"}
    )
    assert after == before + 1
    assert b'cdp_api_connections_closed_total{reason="header_timeout"}' in generate_latest(registry)
