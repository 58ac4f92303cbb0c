"""API start-up: how long an API worker takes to import and to serve its first /health.

Usage::

    python benchmarks/bench_startup.py [--repeats 5] [--persons 2000]

Builds a small synthetic published snapshot (the same builder as ``bench_api.py``), then
``--repeats`` times: times ``python -c "import api.main"`` in a fresh interpreter, and starts
``cdp serve --workers 1`` and times the first 200 from ``/health`` (imports, app creation, the
snapshot opened). Prints the median and the range; the target is a worker ready in under 2 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import build_synthetic_home

from dagster_project.lib.publish import publish_snapshot

TARGET_SECONDS = 2.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def import_seconds() -> float:
    """A fresh interpreter importing the API application module."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import api.main"], check=True)
    return time.perf_counter() - started


def ready_seconds(home: Path) -> float:
    """From starting `cdp serve` (one worker) to its first 200 on /health."""
    port = _free_port()
    env = {**os.environ, "CDP_HOME": str(home), "CDP_API_AUDIT_DIR": str(home / "audit")}
    command = [
        sys.executable,
        "-c",
        "from dagster_project.cli.serve import serve; "
        f"serve(host='127.0.0.1', port={port}, workers=1, home=None, "
        "log_level='warning', access_log=False)",
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise RuntimeError("the server exited during start-up")
            if time.perf_counter() - started > 60:
                raise RuntimeError("the server did not become ready in 60 s")
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def main() -> int:
    """Print import and ready times; exit 1 if the median ready time misses the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--persons", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        build_synthetic_home(home, args.persons)
        publish_snapshot(home / "warehouse.duckdb", home / "serving")
        imports = [import_seconds() for _ in range(args.repeats)]
        ready = [ready_seconds(home) for _ in range(args.repeats)]
    print(
        f"import api.main        median {statistics.median(imports):.2f} s "
        f"(runs {', '.join(f'{s:.2f}' for s in imports)})"
    )
    print(
        f"API worker ready       median {statistics.median(ready):.2f} s "
        f"(runs {', '.join(f'{s:.2f}' for s in ready)}); target < {TARGET_SECONDS:.0f} s"
    )
    return 0 if statistics.median(ready) < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
