"""Shared fixtures: a temporary CDP_HOME and a small generated world built once per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from dagster_project.lib.settings import PlatformSettings

WORLD_END = date(2026, 10, 31)
WORLD_PERSONS = 400
WORLD_SEED = 7
#: The privacy key every test runs under (the platform refuses to start without one); the
#: subprocesses tests start (`cdp run`, `cdp serve`, `cdp stream`) inherit it. Tests of the
#: key itself unset it.
TEST_PRIVACY_KEY = "7e57" * 16


def pytest_configure(config: pytest.Config) -> None:
    """The test privacy key for the whole process: module- and session-scoped fixtures (and
    the servers they start) run before any function-scoped fixture could set it."""
    del config
    os.environ["CDP_PRIVACY_KEY"] = TEST_PRIVACY_KEY
    os.environ.pop("CDP_PRIVACY_KEY_FILE", None)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test may touch the developer's ./.cdp or Dagster instance."""
    monkeypatch.setenv("CDP_HOME", str(tmp_path / "cdp_home_default"))
    monkeypatch.delenv("CDP_CONFIG", raising=False)
    monkeypatch.delenv("CDP_AS_OF", raising=False)
    monkeypatch.setenv("CDP_PRIVACY_KEY", TEST_PRIVACY_KEY)
    monkeypatch.delenv("CDP_PRIVACY_KEY_FILE", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home_default"))
    (tmp_path / "dagster_home_default").mkdir()
    yield


@pytest.fixture(scope="session")
def world_end() -> date:
    """The last day of the sample world's activity (its natural as-of date)."""
    return WORLD_END


@pytest.fixture(scope="session")
def sample_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated world (landing/, cdp.yml, ground_truth/); treat as read-only."""
    from dagster_project.lib.generate import generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(out, WORLD_PERSONS, WORLD_SEED, end=WORLD_END)
    return out


@pytest.fixture
def cdp_home(sample_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh CDP_HOME holding a copy of the sample world's landing files and cdp.yml."""
    home = tmp_path / "cdp_home"
    home.mkdir()
    shutil.copytree(sample_world / "landing", home / "landing")
    shutil.copy(sample_world / "cdp.yml", home / "cdp.yml")
    monkeypatch.setenv("CDP_HOME", str(home))
    return home


@pytest.fixture
def settings(cdp_home: Path) -> PlatformSettings:
    """Settings pointing at the temporary CDP_HOME."""
    return PlatformSettings(home=cdp_home)
