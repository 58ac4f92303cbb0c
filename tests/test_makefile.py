"""The two commands' Makefile: what `make demo` exposes, read from make's own dry run."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def dry_run(*args: str, tmp_path: Path) -> str:
    return subprocess.run(
        ["make", "-n", "-C", str(REPO), *args, f"CDP_HOME={tmp_path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_demo_services_listen_on_localhost_unless_told(tmp_path: Path) -> None:
    plan = dry_run("ui", tmp_path=tmp_path)
    assert "cdp serve --host 127.0.0.1" in plan
    assert "dagster dev -m dagster_project.definitions -h 127.0.0.1" in plan
    assert "0.0.0.0" not in plan.replace("DEMO_HOST=0.0.0.0", "")
    shared = dry_run("ui", "DEMO_HOST=0.0.0.0", tmp_path=tmp_path)
    assert "cdp serve --host 0.0.0.0" in shared
