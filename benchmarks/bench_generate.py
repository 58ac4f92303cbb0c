"""Sample-world generator speed: ``generate_world`` at 1,000,000 persons (budget: 5 minutes).

Usage: ``python benchmarks/bench_generate.py [--persons 1000000] [--out DIR] [--keep] [--measure]``

Prints wall seconds, CPU seconds (all threads), peak memory, rows per source and MB written;
with ``--measure``, also the world's figures next to the published ones it is calibrated to
(``dagster_project/lib/generate/calibration.py``; e.g. ``--persons 10000 --measure``).
The machine's load average is printed too: the generator uses both cores, so other work on the
machine slows it in proportion.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from dagster_project.lib.generate import generate_world
from dagster_project.lib.generate.calibration import FIGURES, measure

BUDGET_SECONDS = 300


def main() -> int:
    """Generate once and print the figures; exit 1 when over budget at 1M persons or more."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2025, 6, 1))
    parser.add_argument("--out", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--measure", action="store_true", help="print the calibration figures of the world"
    )
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_generate_"))
    load_before = os.getloadavg()
    steps: dict[str, float] = {}
    started = time.perf_counter()

    def progress(step: str, done: int, total: int) -> None:
        if done == total:
            steps[step] = time.perf_counter() - started

    measured: dict[str, float] = {}
    try:
        report = generate_world(
            out, args.persons, args.seed, end=args.end, progress=progress, overwrite=True
        )
        if args.measure:
            measured = measure(out)
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rows = sum(report.rows.values())

    print(f"generator: {args.persons:,} persons, seed {args.seed}, end {args.end}")
    print(f"  wall      {report.seconds:8.1f} s   (budget {BUDGET_SECONDS} s at 1,000,000 persons)")
    print(
        f"  cpu       {usage.ru_utime + usage.ru_stime:8.1f} s   "
        f"(user {usage.ru_utime:.1f}, system {usage.ru_stime:.1f}; both cores)"
    )
    print(f"  peak RSS  {usage.ru_maxrss / 1024:8.0f} MB")
    print(f"  written   {report.bytes_written / 1e6:8.0f} MB in {len(report.files)} files")
    print(f"  rows      {rows:8,}   ({rows / report.seconds:,.0f} rows/s)")
    load_after = os.getloadavg()
    print(f"  load avg  {load_before[0]:.1f} before, {load_after[0]:.1f} after (2 cores)")
    print("  steps (seconds since start when each finished):")
    for step, at in steps.items():
        print(f"    {step:<24} {at:8.1f}")
    print("  rows per source:")
    for source, count in report.rows.items():
        print(f"    {source:<16} {count:>12,}  ({count / args.persons:.2f} per person)")
    if measured:
        print("  calibration (measured on the landing files; published figure and band):")
        for figure in FIGURES:
            value = measured[figure.name]
            ok = "ok" if figure.low <= value <= figure.high else "OUTSIDE"
            print(
                f"    {figure.name:<28} {value:8.4f}  published {figure.published:.4f} "
                f"[{figure.low}, {figure.high}] {ok}"
            )
    if args.persons >= 1_000_000 and report.seconds > BUDGET_SECONDS:
        print(f"  OVER BUDGET: {report.seconds:.0f}s > {BUDGET_SECONDS}s")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
