"""Time to erase one person from every store of a built world (issue 15), and the scan after.

Usage: ``python benchmarks/bench_erasure.py [--persons 100000] [--home DIR] [--keep]``

Without ``--home`` it generates a world of ``--persons`` and runs the whole pipeline on it
first (about 5 minutes at 100k; not timed). Then it erases three people found by email, one
after the other (each ``cdp privacy erase`` as a user runs it: every store rewritten, verified),
and prints per store the seconds and rows removed, then the time of the erasure check over the
whole suppression list (what ``privacy/erasure_scan`` costs each run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from dagster_project.lib.erasure.registry import build_erasers
from dagster_project.lib.generate import generate_world
from dagster_project.lib.settings import PlatformSettings
from dagster_project.runner import run_pipeline
from privacy.access import PersonRef
from privacy.erasure import erase
from privacy.keys import KEY_VARIABLE, PrivacyKey, load_keyring
from privacy.suppression import PrivacyStore
from snapshots import DATABASE_FILE, read_current, snapshot_folder

END = date(2026, 10, 31)


def _people(home: Path, count: int) -> list[str]:
    """Emails of customers known by email, account and cookie (the most spread out)."""
    serving = home / "serving"
    folder = snapshot_folder(serving, read_current(serving))
    conn = sqlite3.connect(f"file:{folder / DATABASE_FILE}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "select min(e.identifier_value) from customer_identifiers e "
            "join customer_identifiers a on a.customer_id = e.customer_id "
            "and a.identifier_type = 'account_id' "
            "join customer_identifiers c on c.customer_id = e.customer_id "
            "and c.identifier_type = 'cookie_id' "
            "where e.identifier_type = 'email' group by e.customer_id "
            "order by e.customer_id limit ?",
            (count * 37,),
        ).fetchall()
    finally:
        conn.close()
    return [str(r[0]) for r in rows[::37]][:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--home", type=Path, help="a built CDP_HOME to work on (it is changed)")
    parser.add_argument("--people", type=int, default=3, help="people to erase, one by one")
    parser.add_argument("--keep", action="store_true", help="keep the generated world")
    args = parser.parse_args()
    os.environ.setdefault(KEY_VARIABLE, PrivacyKey.generate().secret.hex())

    made = None
    if args.home is None:
        made = Path(tempfile.mkdtemp(prefix="bench_erasure_"))
        home = made
        began = time.perf_counter()
        generate_world(home, args.persons, args.seed, end=END)
        outcome = run_pipeline(PlatformSettings(home=home, as_of=END))
        if not outcome.success:
            print("the pipeline failed:", outcome.failures)
            return 1
        print(f"built a {args.persons:,}-person world in {time.perf_counter() - began:.0f} s")
    else:
        home = args.home
    try:
        keyring = load_keyring(home, os.environ[KEY_VARIABLE])
        erasers = build_erasers(home, home / "cdp.yml")
        totals: list[float] = []
        for email in _people(home, args.people):
            result = erase(
                home,
                PersonRef(identifier_type="email", value=email),
                keyring,
                erasers,
                requested_by="bench",
            )
            totals.append(result.seconds)
            print(
                f"\nerased one person ({result.customer_ids} customer id(s), "
                f"{result.identifiers} identifier(s)): {result.status} in {result.seconds:.1f} s, "
                f"{result.removed:,} row(s) removed or pseudonymized"
            )
            for step in result.steps:
                print(
                    f"  {step.store:<10} {step.seconds:6.2f} s  {step.erased.total:>8,} removed  "
                    f"{step.scan.remaining} left  {step.status}"
                )
        if totals:
            print(
                f"\nerase one person: median {statistics.median(totals):.1f} s "
                f"(min {min(totals):.1f}, max {max(totals):.1f}) over {len(totals)}"
            )
        suppression = PrivacyStore.at(home).suppression(keyring)
        began = time.perf_counter()
        left = 0
        for eraser in erasers:
            started = time.perf_counter()
            found = eraser.scan(suppression).remaining
            left += found
            print(f"  scan {eraser.name:<10} {time.perf_counter() - started:6.2f} s  {found} left")
        print(
            f"erasure check over {len(suppression)} list entries: "
            f"{time.perf_counter() - began:.1f} s, {left} match(es) left"
        )
    finally:
        if made is not None and not args.keep:
            shutil.rmtree(made, ignore_errors=True)
        elif made is not None:
            print(f"world kept in {made}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
