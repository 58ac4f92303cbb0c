"""Data-quality noise: typos, nicknames, case, phone formats, junk values, missing fields.

Each function takes the clean values and a random generator and returns the noisy view; the
share of rows touched is decided by the caller, so sources can be messier or cleaner.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dagster_project.lib.generate import vocab
from dagster_project.lib.generate.common import join, padded, strings, take

_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    """Letters adjacent on a QWERTY keyboard: the most common substitution typos."""
    pos = {ch: (r, c) for r, row in enumerate(_KEYBOARD_ROWS) for c, ch in enumerate(row)}
    out: dict[str, str] = {}
    for ch, (r, c) in pos.items():
        near = [
            other
            for other, (r2, c2) in pos.items()
            if other != ch and abs(r2 - r) <= 1 and abs(c2 - c) <= 1
        ]
        out[ch] = "".join(sorted(near))
    return out


NEIGHBOURS = _keyboard_neighbours()

PHONE_STYLES = (
    "(617) 555-0123",
    "617.555.0123",
    "+1 617 555 0123",
    "6175550123",
    "617-555-0123",
    "+16175550123",
)


def _typo_one(text: str, op: int, pos_draw: float, pick_draw: float) -> str:
    if len(text) < 3:
        return text
    # A random position, moved to the next letter (typos in house numbers look different).
    i = min(int(pos_draw * len(text)), len(text) - 1)
    for _ in range(len(text)):
        if text[i].isalpha():
            break
        i = (i + 1) % len(text)
    else:
        return text
    ch = text[i]
    if op == 0:  # neighbouring key
        near = NEIGHBOURS.get(ch.lower(), "")
        if not near:
            return text[:i] + text[i + 1 :]
        sub = near[min(int(pick_draw * len(near)), len(near) - 1)]
        return text[:i] + (sub.upper() if ch.isupper() else sub) + text[i + 1 :]
    if op == 1:  # dropped letter
        return text[:i] + text[i + 1 :]
    if op == 2 and i + 1 < len(text):  # swapped neighbours
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + ch + text[i:]  # doubled letter


def typos(values: pa.Array, mask: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """One or two keyboard-style edits in the masked values."""
    rows = np.flatnonzero(mask)
    if len(rows) == 0:
        return values
    originals = pc.take(values, pa.array(rows)).to_pylist()
    edits = rng.integers(1, 3, len(rows))
    ops = rng.integers(0, 4, (len(rows), 2))
    draws = rng.random((len(rows), 2, 2))
    changed: list[str | None] = []
    for k, text in enumerate(originals):
        if text is None:
            changed.append(None)
            continue
        out = text
        for e in range(int(edits[k])):
            out = _typo_one(out, int(ops[k, e]), float(draws[k, e, 0]), float(draws[k, e, 1]))
        changed.append(out)
    return pc.replace_with_mask(values, pa.array(mask), pa.array(changed, type=pa.string()))


def nicknames(
    first_names: pa.Array, share: float, rng: np.random.Generator
) -> tuple[pa.Array, np.ndarray]:
    """Replace a share of formal first names that have a nickname (Robert -> Bob)."""
    formal = sorted({f for f, _ in vocab.NICKNAME_PAIRS})
    options = {f: [n for f2, n in vocab.NICKNAME_PAIRS if f2 == f] for f in formal}
    code = pc.index_in(first_names, value_set=strings(formal)).to_numpy(zero_copy_only=False)
    has = ~np.isnan(code.astype(np.float64))
    use = has & (rng.random(len(first_names)) < share)
    if not use.any():
        return first_names, use
    code_int = np.nan_to_num(code.astype(np.float64), nan=0).astype(np.int64)
    pick = rng.random(len(first_names))
    flat = [nick for f in formal for nick in options[f]]
    offsets = np.cumsum([0] + [len(options[f]) for f in formal])
    counts = np.diff(offsets)
    within = np.minimum((pick * counts[code_int]).astype(np.int64), counts[code_int] - 1)
    chosen = offsets[code_int] + within
    replaced = take(strings(flat), np.where(use, chosen, -1))
    return pc.coalesce(replaced, first_names), use


def case_noise(values: pa.Array, mode: np.ndarray) -> pa.Array:
    """Mode 1 upper-cases, mode 2 lower-cases, mode 3 title-cases; 0 leaves as is."""
    out = values
    for m, fn in ((1, pc.utf8_upper), (2, pc.utf8_lower), (3, pc.utf8_title)):
        mask = mode == m
        if mask.any():
            out = pc.if_else(pa.array(mask), fn(values), out)
    return out


def phone_text(
    area: np.ndarray, exchange: np.ndarray, line: np.ndarray, style: np.ndarray
) -> pa.Array:
    """US numbers written in one of :data:`PHONE_STYLES` per row."""
    a, e, ln = padded(area, 3), padded(exchange, 3), padded(line, 4)
    variants = [
        join(join("(", a, ") ", e), ln, sep="-"),
        join(a, e, ln, sep="."),
        join("+1", a, e, ln, sep=" "),
        join(a, e, ln),
        join(a, e, ln, sep="-"),
        join("+1", a, e, ln),
    ]
    return pc.choose(pa.array(style.astype(np.int8)), *variants)


def junk(
    values: pa.Array, mask: np.ndarray, pool: tuple[str, ...], rng: np.random.Generator
) -> pa.Array:
    """Replace masked values with placeholder junk (``test@example.com``, ``0000000000``)."""
    if not mask.any():
        return values
    picked = take(strings(pool), np.where(mask, rng.integers(0, len(pool), len(mask)), -1))
    return pc.if_else(pa.array(mask), picked, values)


def blank(values: pa.Array, mask: np.ndarray) -> pa.Array:
    """Missing values where masked."""
    return pc.if_else(pa.array(mask), pa.scalar(None, values.type), values)


def padded_spaces(values: pa.Array, mask: np.ndarray) -> pa.Array:
    """Stray leading/trailing spaces, as copied from a form."""
    return pc.if_else(pa.array(mask), join(" ", values, " "), values)


def email_domain_typo(emails: pa.Array) -> pa.Array:
    """``gmail.com`` -> ``gmial.com`` and friends: addresses that bounce."""
    out = emails
    for good, bad in vocab.EMAIL_DOMAIN_TYPOS.items():
        out = pc.replace_substring(out, "@" + good, "@" + bad)
    return out
