"""Benchmark of the Splink identity model: training, batch prediction and real-time scoring.

Usage::

    .venv/bin/python benchmarks/bench_model.py --records 1000000

Builds a synthetic *normalized* record frame (the contract's columns) with known truth:
people with one to four records each, typos, nicknames, swapped names, changed emails,
missing fields, households that share an address, a last name and a landline, twins, and many
people with the same common name. Prints training and prediction seconds, comparisons per
blocking rule, edges, pairwise precision/recall of the edges, peak RSS and the real-time
scorer's p50/p99 latency.
"""

from __future__ import annotations

import argparse
import functools
import logging
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dagster_project.lib.generate.vocab import (
    FIRST_NAMES_FEMALE,
    FIRST_NAMES_MALE,
    NICKNAME_PAIRS,
)
from dagster_project.lib.generate.vocab import LAST_NAMES as VOCAB_LAST_NAMES
from identity import ModelSettings, train_model

print = functools.partial(print, flush=True)

#: Names from the sample world's vocabulary (one home for synthetic names), lower-cased.
FORMAL_NAMES: dict[str, list[str]] = {}
for _formal, _nick in NICKNAME_PAIRS:
    FORMAL_NAMES.setdefault(_formal.lower(), []).append(_nick.lower())
PLAIN_FIRST = [
    n.lower()
    for n in (*FIRST_NAMES_FEMALE[:40], *FIRST_NAMES_MALE[:40])
    if n.lower() not in FORMAL_NAMES
]
COMMON_LAST = [n.lower() for n in VOCAB_LAST_NAMES[:45]]
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "ne",
    "to",
    "su",
    "bel",
    "dor",
    "an",
    "vi",
    "gar",
    "son",
    "ley",
    "mar",
    "tin",
    "ber",
    "wick",
    "ham",
    "ford",
    "ell",
    "ing",
    "ton",
    "ros",
    "al",
    "ven",
    "dra",
    "ko",
    "pe",
    "sha",
    "lin",
    "vo",
    "ru",
    "den",
    "fi",
    "bro",
    "cla",
    "mo",
    "ze",
    "tha",
    "ly",
]
STREETS = [
    "main",
    "oak",
    "pine",
    "maple",
    "cedar",
    "elm",
    "washington",
    "lake",
    "hill",
    "park",
    "sunset",
    "river",
    "church",
    "mill",
    "spring",
    "ridge",
    "forest",
    "highland",
]
SUFFIXES = ["st", "ave", "rd", "blvd", "ln", "dr", "ct"]
DOMAINS = ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com"]
LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def _zipf_choice(rng: np.random.Generator, values: list[str], size: int, a: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, len(values) + 1) ** a
    return rng.choice(np.array(values, dtype=object), size=size, p=weights / weights.sum())


def _rare_words(rng: np.random.Generator, count: int, syllables: int) -> list[str]:
    parts = rng.choice(SYLLABLES, size=(count, syllables + 1))
    cut = rng.integers(syllables - 1, syllables + 1, count)
    return sorted({"".join(p[: c + 1]) for p, c in zip(parts, cut, strict=True)})


def _typo(rng: np.random.Generator, word: object) -> object:
    if not isinstance(word, str) or len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 1))
    kind = rng.integers(0, 3)
    if kind == 0:
        return word[:i] + str(rng.choice(LETTERS)) + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


def make_people(n_records: int, seed: int = 7) -> pd.DataFrame:
    """A normalized record frame with a hidden ``person_id`` for evaluation."""
    rng = np.random.default_rng(seed)
    n_persons = max(2, int(n_records / 1.8))
    rare_first = _rare_words(rng, max(200, n_persons // 40), 2)
    rare_last = _rare_words(rng, max(500, n_persons // 4), 3)
    formal = list(FORMAL_NAMES)
    first_pool = formal + PLAIN_FIRST
    first = np.where(
        rng.random(n_persons) < 0.7,
        _zipf_choice(rng, first_pool, n_persons, 0.6),
        rng.choice(np.array(rare_first, dtype=object), n_persons),
    )
    last = np.where(
        rng.random(n_persons) < 0.25,
        _zipf_choice(rng, COMMON_LAST, n_persons, 0.7),
        rng.choice(np.array(rare_last, dtype=object), n_persons),
    )
    start = np.datetime64("1940-01-01")
    birth = start + rng.integers(0, 66 * 365, n_persons).astype("timedelta64[D]")
    # Households: a person joins the previous person's household with probability 0.35.
    joins = rng.random(n_persons) < 0.35
    joins[0] = False
    household = np.cumsum(~joins) - 1
    n_households = int(household[-1]) + 1
    head = np.flatnonzero(~joins)
    last = last[head][household]  # members share the head's last name
    twins = joins & (rng.random(n_persons) < 0.01)
    birth[twins] = birth[np.flatnonzero(twins) - 1]
    street = np.array(
        [
            f"{n} {s} {x}"
            for n, s, x in zip(
                rng.integers(1, 9999, n_households),
                rng.choice(STREETS + _rare_words(rng, 3000, 2), n_households),
                rng.choice(SUFFIXES, n_households),
                strict=True,
            )
        ],
        dtype=object,
    )[household]
    zips = np.char.zfill(rng.integers(1000, 99999, max(50, n_households // 30)).astype(str), 5)
    zip_of_household = rng.choice(zips, n_households)
    postal = zip_of_household[household].astype(object)
    cities = np.array(_rare_words(rng, max(50, len(zips) // 3), 2), dtype=object)
    city = cities[np.searchsorted(np.sort(zips), zip_of_household) % len(cities)][household]
    landline = np.array(
        [f"+1{x}" for x in rng.integers(2_000_000_000, 9_999_999_999, n_households)], dtype=object
    )
    mobile = np.array(
        [f"+1{x}" for x in rng.integers(2_000_000_000, 9_999_999_999, n_persons)], dtype=object
    )
    email = np.array(
        [
            # A mailbox belongs to one person: the person number keeps addresses unique.
            f"{f}.{ln}{k}@{d}" if k % 3 else f"{f[0]}{ln}{k}@{d}"
            for f, ln, k, d in zip(
                first, last, np.arange(n_persons), rng.choice(DOMAINS, n_persons), strict=True
            )
        ],
        dtype=object,
    )

    per_person = np.clip(1 + rng.poisson(0.8, n_persons), 1, 4)
    pid = np.repeat(np.arange(n_persons), per_person)
    pid = (
        pid[:n_records]
        if len(pid) >= n_records
        else np.concatenate([pid, rng.integers(0, n_persons, n_records - len(pid))])
    )
    n = len(pid)
    r = rng.random((n, 7 + 7))

    first_r = first[pid].copy()
    nick = (r[:, 0] < 0.15) & np.isin(first_r, formal)
    first_r[nick] = [rng.choice(FORMAL_NAMES[f]) for f in first_r[nick]]
    canonical_lookup = {nk: f for f, nks in FORMAL_NAMES.items() for nk in nks}
    first_r = np.array(
        [_typo(rng, w) if t else w for w, t in zip(first_r, r[:, 1] < 0.05, strict=True)],
        dtype=object,
    )
    last_r = np.array(
        [_typo(rng, w) if t else w for w, t in zip(last[pid], r[:, 2] < 0.04, strict=True)],
        dtype=object,
    )
    swap = r[:, 3] < 0.01
    first_r[swap], last_r[swap] = last_r[swap], first_r[swap]
    canonical = np.array([canonical_lookup.get(w, w) for w in first_r], dtype=object)

    birth_r = pd.Series(birth[pid]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    bad_birth = r[:, 4] < 0.02
    shifted = birth[pid][bad_birth] + rng.choice([-1, 1, 10, -10], bad_birth.sum()).astype(
        "timedelta64[D]"
    )
    birth_r[bad_birth] = pd.Series(shifted).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)

    email_r = email[pid].copy()
    changed = r[:, 5] < 0.1
    email_r[changed] = [
        f"{e.split('@')[0]}{k}@{d}"
        for e, k, d in zip(
            email_r[changed],
            rng.integers(1, 99, changed.sum()),
            rng.choice(DOMAINS, changed.sum()),
            strict=True,
        )
    ]
    phone_r = np.where(r[:, 6] < 0.25, landline[household[pid]], mobile[pid])
    # Some family members give the household head's email address.
    family_email = joins[pid] & (r[:, 5] > 0.97)
    email_r[family_email] = email[head[household[pid[family_email]]]]

    frame = pd.DataFrame(
        {
            "record_uid": [f"src{p % 3}:{i:08d}" for i, p in enumerate(pid)],
            "person_id": pid,
            "first_name": first_r,
            "first_name_canonical": canonical,
            "last_name": last_r,
            "birth_date": birth_r,
            "email": email_r,
            "phone": phone_r,
            "street_address": street[pid],
            "postal_code": postal[pid],
            "city": city[pid],
        }
    )
    missing = {
        "birth_date": 0.15,
        "email": 0.2,
        "phone": 0.3,
        "street_address": 0.2,
        "postal_code": 0.15,
        "city": 0.15,
        "first_name": 0.02,
    }
    for i, (column, share) in enumerate(missing.items()):
        frame.loc[r[:, 7 + i] < share, column] = None
    frame.loc[frame["first_name"].isna(), "first_name_canonical"] = None
    frame["email_user"] = frame["email"].str.split("@").str[0]
    frame["email_domain"] = frame["email"].str.split("@").str[1]
    return frame


def pairwise_quality(edges: pd.DataFrame, records: pd.DataFrame) -> tuple[float, float]:
    """Precision and recall of the edges against the person ids (pairs, not clusters)."""
    person = records.set_index("record_uid")["person_id"]
    same = (
        person.loc[edges["record_uid_l"]].to_numpy() == person.loc[edges["record_uid_r"]].to_numpy()
    )
    sizes = records.groupby("person_id").size()
    true_pairs = int((sizes * (sizes - 1) // 2).sum())
    precision = float(same.mean()) if len(same) else 1.0
    recall = float(same.sum() / true_pairs) if true_pairs else 1.0
    return precision, recall


def cpu_seconds() -> float:
    """CPU time of this process (user + system): a load-independent view of the cost."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_gb() -> float:
    """Peak resident memory of this process in GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--queries", type=int, default=2000, help="real-time score calls")
    parser.add_argument("--save", type=Path, default=None, help="write the model JSON here")
    parser.add_argument(
        "--normalized",
        type=Path,
        default=None,
        help="use this normalized record frame (e.g. a run's identity_records.parquet) instead "
        "of synthetic records; a person_id column enables the precision/recall figures",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    t0 = time.perf_counter()
    if args.normalized:
        records = pd.read_parquet(args.normalized)
    else:
        records = make_people(args.records, seed=args.seed)
    persons = records["person_id"].nunique() if "person_id" in records else "?"
    print(
        f"records                 {len(records):>12,}   (loaded in "
        f"{time.perf_counter() - t0:.1f} s, {persons:,} persons)"
        if persons != "?"
        else f"records                 {len(records):>12,}"
    )
    features = records.drop(columns=["person_id"], errors="ignore")

    settings = ModelSettings()
    t0, c0 = time.perf_counter(), cpu_seconds()
    model = train_model(features, settings)
    train_s = time.perf_counter() - t0
    print(
        f"training seconds        {train_s:>12.1f}   (cpu {cpu_seconds() - c0:.1f} s; "
        f"stages {model.training['stage_seconds']})"
    )
    if model.training["untrained_comparisons"]:
        print(f"  untrained comparisons: {model.training['untrained_comparisons']}")
    if args.save:
        model.save(args.save)

    t0 = time.perf_counter()
    counts = model.count_comparisons(features)
    count_s = time.perf_counter() - t0
    for rule, count in counts.items():
        print(f"  comparisons {rule:<28} {count:>12,}")
    print(f"comparisons (total)     {sum(counts.values()):>12,}   ({count_s:.1f} s to count)")

    t0, c0 = time.perf_counter(), cpu_seconds()
    edges = model.predict(features)
    predict_s = time.perf_counter() - t0
    predict_cpu = cpu_seconds() - c0
    print(f"prediction seconds      {predict_s:>12.1f}   (cpu {predict_cpu:.1f} s)")
    print(f"edges >= {model.settings.match_threshold:<14} {len(edges):>12,}")
    if "person_id" in records:
        precision, recall = pairwise_quality(edges, records)
        print(f"edge precision          {precision:>12.4f}")
        print(f"edge recall             {recall:>12.4f}   (pairs, before transitive closure)")

    t0, c0 = time.perf_counter(), cpu_seconds()
    scorer = model.scorer(features)
    print(
        f"scorer build seconds    {time.perf_counter() - t0:>12.1f}   "
        f"(cpu {cpu_seconds() - c0:.1f} s)"
    )
    rng = np.random.default_rng(args.seed)
    sample = features.iloc[rng.integers(0, len(features), args.queries)]
    queries = [
        {k: v for k, v in row.items() if k != "record_uid" and isinstance(v, str)}
        for row in sample.to_dict("records")
    ]
    for record in queries[:20]:  # warm-up
        scorer.score(record)
    latencies, cpu_latencies, candidates = [], [], []
    for record in queries:
        t, c = time.perf_counter(), time.thread_time()
        scored = scorer.score(record)
        cpu_latencies.append((time.thread_time() - c) * 1000)
        latencies.append((time.perf_counter() - t) * 1000)
        candidates.append(len(scored))
    p50, p99 = np.percentile(latencies, [50, 99])
    cpu50, cpu99 = np.percentile(cpu_latencies, [50, 99])
    print(f"scorer p50 ms           {p50:>12.2f}   (cpu {cpu50:.2f} ms)")
    print(
        f"scorer p99 ms           {p99:>12.2f}   (cpu {cpu99:.2f} ms; mean candidates "
        f"{np.mean(candidates):.1f}, max {max(candidates)})"
    )
    print(f"peak RSS GB             {peak_rss_gb():>12.2f}")


if __name__ == "__main__":
    main()
