"""The API test harness: a published constructed world, keys per scope, clients, a server.

Shared by the API tests' fixtures (``tests/api/conftest.py``) and by any test that needs a
running API; importable as ``tests.support.api_harness``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from api.security import create_key
from api.settings import ApiSettings
from tests.support.api_world import ApiWorld

#: Key name -> scopes; tests address keys by name.
KEY_SCOPES: dict[str, list[str]] = {
    "admin": ["admin"],
    "profile": ["profile:read"],
    "pii": ["profile:read", "pii:read"],
    "segments": ["segments:read"],
    "web": ["profile:read", "segments:read"],
    # a channel team's key (email platform, website): decides and reads decisions, masked
    "channel": ["profile:read", "segments:read", "decisions:write", "decisions:read"],
}


@dataclass
class Published:
    """A world with a published snapshot and keys; treat as read-only."""

    world: ApiWorld
    keys: dict[str, str]

    @property
    def home(self) -> Path:
        return self.world.home


def make_keys(home: Path) -> dict[str, str]:
    """Create every key of KEY_SCOPES in ``home``'s keys file; returns name -> secret."""
    return {
        name: create_key(home / "api_keys.yml", name, scopes) for name, scopes in KEY_SCOPES.items()
    }


def copy_world(published: Published, home: Path) -> Published:
    """A private copy of the world in ``home`` (warehouse, identity, keys; nothing published)."""
    home.mkdir()
    shutil.copy(published.world.warehouse, home / "warehouse.duckdb")
    shutil.copytree(published.world.identity_dir, home / "lake" / "identity")
    shutil.copy(published.home / "api_keys.yml", home / "api_keys.yml")
    world = ApiWorld(home=home, persons=published.world.persons, tables=published.world.tables)
    return Published(world=world, keys=published.keys)


def api_settings(home: Path, tmp_path: Path, **overrides: Any) -> ApiSettings:
    """Settings for a test app: audit log in the test's tmp dir, small pages, fast polls."""
    values: dict[str, Any] = {
        "home": home,
        "api_audit_dir": tmp_path / "audit",
        "api_max_page_size": 100,
        "api_snapshot_poll_seconds": 0.1,
    }
    values.update(overrides)
    return ApiSettings(**values)


class Api:
    """A TestClient with a helper that posts GraphQL as one of the test keys."""

    def __init__(self, client: TestClient, keys: dict[str, str]) -> None:
        self.client = client
        self.keys = keys

    @property
    def state(self) -> Any:
        return self.client.app.state.cdp

    def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        key: str | None = "admin",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {self.keys[key]}"
        return self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=sent
        )

    def auth(self, key: str) -> dict[str, str]:
        """The Authorization header of a test key."""
        return {"Authorization": f"Bearer {self.keys[key]}"}

    def metrics_text(self) -> str:
        """/metrics as the admin key sees it."""
        response = self.client.get("/metrics", headers=self.auth("admin"))
        assert response.status_code == 200, response.text
        return response.text

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, key: str = "admin"
    ) -> dict[str, Any]:
        response = self.post(query, variables, key=key)
        assert response.status_code == 200, response.text
        return response.json()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A real uvicorn server in a subprocess."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_server(
    home: Path, tmp_path: Path, *, workers: int = 1, env: dict[str, str] | None = None
) -> Server:
    """Start ``cdp serve``'s uvicorn on a free port and wait until it listens."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    environment = {
        **os.environ,
        "CDP_HOME": str(home),
        "CDP_API_AUDIT_DIR": str(tmp_path / "audit"),
        "CDP_API_SNAPSHOT_POLL_SECONDS": "0.2",
        **(env or {}),
    }
    command = [
        sys.executable,
        "-c",
        "from dagster_project.cli.serve import serve; import sys; "
        f"serve(host='127.0.0.1', port={port}, workers={workers}, home=None, "
        "log_level='warning', access_log=False)",
    ]
    with open(log, "wb") as handle:
        # its own process group, so stopping it also stops the uvicorn workers it spawns
        process = subprocess.Popen(
            command,
            env=environment,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    # The API imports the identity library (pandas, splink, ...): allow a slow, busy machine.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stop_server(Server(url=url, process=process, log=log))
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            httpx.get(url + "/health", timeout=1)
            return Server(url=url, process=process, log=log)
        except httpx.TransportError:
            time.sleep(0.1)
    stop_server(Server(url=url, process=process, log=log))
    raise RuntimeError(f"server did not start: {log.read_text()}")


def stop_server(server: Server) -> None:
    """Stop the server started by ``start_server``: its process group (parent and workers)."""
    group = server.process.pid  # the group id of a session leader is its pid
    try:
        os.killpg(group, signal.SIGTERM)
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        server.process.wait()
    except ProcessLookupError:
        server.process.wait()
