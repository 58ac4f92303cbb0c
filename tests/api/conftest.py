"""API fixtures: a constructed warehouse published once, keys per scope, clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from dagster_project.lib.publish import publish_snapshot
from tests.support.api_harness import Api, Published, api_settings, copy_world, make_keys
from tests.support.api_world import build_world


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """The constructed world, published once for the session."""
    world = build_world(tmp_path_factory.mktemp("api_world"))
    publish_snapshot(world.warehouse, world.serving_dir)
    return Published(world=world, keys=make_keys(world.home))


@pytest.fixture
def fresh_world(tmp_path: Path, published: Published) -> Published:
    """A private copy of the world for one test."""
    return copy_world(published, tmp_path / "home")


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Factory: an in-process app over a home (lifespan running) with the test keys."""
    clients: list[TestClient] = []

    def _make(world: Published, **overrides: Any) -> Api:
        client = TestClient(create_app(api_settings(world.home, tmp_path, **overrides)))
        client.__enter__()
        clients.append(client)
        return Api(client, world.keys)

    yield _make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Callable[..., Api], published: Published) -> Api:
    """An in-process app over the session's published world."""
    return make_api(published)
