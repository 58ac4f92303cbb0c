"""Run every benchmark in turn and print its figures (``make bench``).

Each benchmark is a standalone script so it can also be run alone with its own arguments;
``BENCH_QUICK=1`` shrinks the sizes for a smoke run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = os.environ.get("BENCH_QUICK") == "1"

# (script, full-size arguments, quick arguments)
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("bench_generate.py", ["--persons", "1000000"], ["--persons", "20000"]),
    ("bench_ingest.py", [], ["--events", "100000", "--people", "20000"]),
    ("bench_identity.py", ["quality", "--persons", "10000"], ["quality", "--persons", "2000"]),
    ("bench_identity.py", ["scale", "--records", "1000000"], ["scale", "--records", "50000"]),
    ("bench_model.py", ["--records", "1000000"], ["--records", "50000"]),
    ("bench_pipeline.py", ["--persons", "10000"], ["--persons", "2000"]),
    ("bench_pipeline.py", ["--persons", "100000"], ["--persons", "5000"]),
    (
        "bench_recommendations.py",
        ["quality", "--persons", "10000"],
        ["quality", "--persons", "2000"],
    ),
    (
        "bench_recommendations.py",
        ["quality", "--persons", "100000"],
        ["quality", "--persons", "5000"],
    ),
    ("bench_recommendations.py", ["scale"], ["scale", "--customers", "50000"]),
    ("bench_models.py", ["--persons", "10000"], ["--persons", "2000"]),
    ("bench_models.py", ["--persons", "100000"], ["--persons", "5000"]),
    ("bench_snapshot.py", [], ["--persons", "20000", "--lookups", "2000"]),
    ("bench_api.py", [], ["--persons", "20000", "--duration", "10"]),
    (
        "bench_decisions.py",
        ["simulate", "--persons", "10000"],
        ["simulate", "--persons", "2000"],
    ),
    ("bench_decisions.py", ["batch", "--persons", "100000"], ["batch", "--persons", "5000"]),
    ("bench_decide.py", [], ["--persons", "20000", "--duration", "10", "--repeats", "2"]),
    ("bench_startup.py", [], ["--repeats", "3"]),
    ("bench_intake.py", [], ["--duration", "5"]),
    ("bench_erasure.py", [], ["--persons", "5000"]),
    ("bench_realtime.py", [], ["--duration", "5", "--price-drops", "20", "--carts", "10"]),
]


def main() -> int:
    """Run the benchmarks that exist; a failing one is reported and the rest still run."""
    failures = 0
    for script, full, quick in BENCHMARKS:
        path = HERE / script
        if not path.exists():
            continue
        args = quick if QUICK else full
        print(f"\n=== {script} {' '.join(args)}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(path), *args])
        print(f"=== {script}: exit {code} after {time.perf_counter() - started:.1f}s", flush=True)
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
