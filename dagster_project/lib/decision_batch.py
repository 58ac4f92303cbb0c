"""The daily batch of message decisions and the export a sending platform loads.

Why the batch lives here and not in ``decisions``: the decision library decides and logs; what
a sending platform needs (a file per placement and day, with the recipient's address, written
so that a reader never sees half of it) is a platform concern, next to ingest and publish.

- Every customer of the published snapshot is decided for (``decisions.facts.iter_all_facts``,
  in chunks, through ``DecisionService.decide_many``), so the counts by outcome add up to the
  snapshot's customers; only sends are exported. Customers e-mail cannot reach (no address,
  no consent, a withdrawal) are refused before ranking and not logged (``decide_many``): they
  are counted by reason here, and as ``refused_unlogged``.
- A decision is per (customer, placement, period): a second batch in the same period gets the
  stored decisions back (same ids, nothing counted twice) and rewrites the same file.
- The export is named by the period's first day (``exports/<placement>/<YYYY-MM-DD>.parquet``
  and ``.csv``); both are written to temporary names and renamed into place, and are readable
  by their owner only (they hold e-mail addresses).
- What Dagster shows of it never holds personal data: the sample rows carry the masked
  subject (``Decision.subject_masked``) and ``***`` for the address.
"""

from __future__ import annotations

import contextlib
import csv
import os
import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from dagster_project.lib.config import ConfigError, LoadedConfig
from decisions import DecisionService, DecisionsPolicy, PolicyError, load_policy, period_bounds
from decisions.facts import MAX_IDS_PER_QUERY, iter_all_facts, load_sales
from decisions.types import Decision

#: Folder under CDP_HOME for files other systems load.
EXPORTS_FOLDER: Final[str] = "exports"
#: The channel the batch decides for (the export carries e-mail addresses).
BATCH_CHANNEL: Final[str] = "email"
#: Customers decided per ``decide_many`` call (facts of one chunk in memory at a time).
BATCH_CHUNK: Final[int] = 5_000
#: Reasons that stop a message, by precedence (the first found names a decision's outcome).
_BLOCKING_PREFIXES: Final[tuple[str, ...]] = (
    "no_address:",
    "holdout",
    "no_eligible_items",
    "consent:",
    "cap:",
)
#: Reasons ``DecisionService.decide_many`` refuses with before ranking (and does not log).
_REFUSAL_PREFIXES: Final[tuple[str, ...]] = ("no_address:", "consent:")
SENT: Final[str] = "sent"

EXPORT_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("email", pa.string()),
        pa.field("subject", pa.string()),
        pa.field("theme", pa.string()),
        pa.field("product_ids", pa.list_(pa.string())),
        pa.field("sale_ids", pa.list_(pa.string())),
        pa.field("experiment", pa.string()),
        pa.field("arm", pa.string()),
        pa.field("policy_version", pa.string(), nullable=False),
        pa.field("expires_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def load_decisions_policy(loaded: LoadedConfig) -> DecisionsPolicy:
    """The ``decisions:`` policy of cdp.yml (the default policy when the section is absent);
    ConfigError naming the file and key when it is invalid."""
    policy = getattr(loaded.config, "decisions", None)
    if isinstance(policy, DecisionsPolicy):
        return policy
    try:
        return load_policy(loaded.path)
    except PolicyError as exc:
        raise ConfigError(str(exc)) from exc


def batch_placements(policy: DecisionsPolicy) -> list[str]:
    """Message placements an e-mail may carry: the batch decides each for every customer."""
    return sorted(
        name
        for name, placement in policy.placements.items()
        if placement.kind == "message" and BATCH_CHANNEL in placement.channels
    )


def outcome_of(decision: Decision) -> str:
    """``sent``, or the reason that stopped the message (holdout, consent:missing:email, ...)."""
    if decision.send:
        return SENT
    for reason in decision.reasons:
        if reason.startswith(_BLOCKING_PREFIXES):
            return reason
    return "not_sent"


def refused_before_ranking(decision: Decision) -> bool:
    """A ``decide_many`` refusal from the facts or a withdrawal: no items, that one reason.

    A ranked decision always names why it has no items (``no_eligible_items``) and an adopted
    choice keeps its items, so only the unlogged refusals look like this.
    """
    return (
        not decision.send
        and not decision.items
        and len(decision.reasons) == 1
        and decision.reasons[0].startswith(_REFUSAL_PREFIXES)
    )


def arm_of(decision: Decision) -> str:
    """holdout, personalized, or ``<experiment>/<arm>`` (the mart's ``arm``)."""
    if decision.is_holdout:
        return "holdout"
    if decision.experiment is not None:
        return f"{decision.experiment.experiment}/{decision.experiment.arm}"
    return "personalized"


@dataclass
class BatchResult:
    """What one placement's batch decided and wrote."""

    placement: str
    channel: str
    now: datetime
    period_start: datetime
    customers: int = 0
    by_outcome: Counter[str] = field(default_factory=Counter)
    by_arm: Counter[str] = field(default_factory=Counter)
    sales: int = 0
    #: refusals known before ranking (no address, consent): counted, not in the decision log
    refused_unlogged: int = 0
    #: sends whose customer has no address in the snapshot: none while facts say who is
    #: reachable (``no_address:email``); a guard, counted and warned about, never silent
    sent_without_address: int = 0
    rows: int = 0
    parquet_path: Path | None = None
    csv_path: Path | None = None
    decide_seconds: float = 0.0
    seconds: float = 0.0
    sample: list[dict[str, Any]] = field(default_factory=list)


def export_folder(home: Path, placement: str) -> Path:
    """``CDP_HOME/exports/<placement>/``."""
    return home / EXPORTS_FOLDER / placement


def _emails(conn: sqlite3.Connection, customer_ids: Sequence[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for start in range(0, len(customer_ids), MAX_IDS_PER_QUERY):
        chunk = customer_ids[start : start + MAX_IDS_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        found.update(
            conn.execute(
                f"select customer_id, email from customers where customer_id in ({marks})", chunk
            ).fetchall()
        )
    return found


def _chunks(conn: sqlite3.Connection, size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for facts in iter_all_facts(conn, chunk=size):
        chunk.append(facts)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def decide_batch(
    service: DecisionService,
    conn: sqlite3.Connection,
    placement: str,
    now: datetime,
    *,
    channel: str = BATCH_CHANNEL,
    chunk: int = BATCH_CHUNK,
) -> tuple[BatchResult, list[Decision]]:
    """Decide ``placement`` on ``channel`` for every customer of the snapshot at ``now``.

    Returns the counts and the decisions that were sent (in customer id order).
    """
    started = time.perf_counter()
    spec = service.policy.placement(placement)
    period_start, _ = period_bounds(now, spec, service.policy.period_start_hour)
    result = BatchResult(placement, channel, now, period_start)
    sales = load_sales(conn, now)
    result.sales = len(sales)
    sent: list[Decision] = []
    for customers in _chunks(conn, chunk):
        decisions = service.decide_many(customers, channel, placement, now, sales=sales)
        result.customers += len(decisions)
        for decision in decisions:
            result.by_outcome[outcome_of(decision)] += 1
            result.by_arm[arm_of(decision)] += 1
            if decision.send:
                sent.append(decision)
            elif refused_before_ranking(decision):
                result.refused_unlogged += 1
    result.decide_seconds = time.perf_counter() - started
    return result, sent


def export_table(decisions: Sequence[Decision], emails: dict[str, str | None]) -> pa.Table:
    """One row per sent decision, in the export's schema."""
    columns: dict[str, list[Any]] = {f.name: [] for f in EXPORT_SCHEMA}
    for d in decisions:
        columns["decision_id"].append(d.decision_id)
        columns["customer_id"].append(d.customer_id)
        columns["email"].append(emails.get(d.customer_id))
        columns["subject"].append(d.subject)
        columns["theme"].append(d.theme)
        columns["product_ids"].append([item.product_id for item in d.items])
        columns["sale_ids"].append([item.sale_id for item in d.items if item.sale_id])
        columns["experiment"].append(d.experiment.experiment if d.experiment else None)
        columns["arm"].append(arm_of(d))
        columns["policy_version"].append(d.policy_version)
        columns["expires_at"].append(d.expires_at)
    return pa.Table.from_pydict(columns, schema=EXPORT_SCHEMA)


def _private_temp(folder: Path, name: str) -> Path:
    path = folder / f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def write_export(table: pa.Table, folder: Path, day: str) -> tuple[Path, Path]:
    """Write ``<day>.parquet`` and ``<day>.csv`` atomically (temporary names, then renames)."""
    folder.mkdir(parents=True, exist_ok=True)
    parquet_path, csv_path = folder / f"{day}.parquet", folder / f"{day}.csv"
    temps = [_private_temp(folder, parquet_path.name), _private_temp(folder, csv_path.name)]
    try:
        pq.write_table(table, temps[0], compression="zstd")
        with temps[1].open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.column_names)
            for row in table.to_pylist():
                row["product_ids"] = " ".join(row["product_ids"] or [])
                row["sale_ids"] = " ".join(row["sale_ids"] or [])
                row["expires_at"] = row["expires_at"].isoformat()
                writer.writerow(["" if value is None else value for value in row.values()])
        os.replace(temps[0], parquet_path)
        os.replace(temps[1], csv_path)
    finally:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
    return parquet_path, csv_path


def masked_sample(decisions: Sequence[Decision], rows: int = 5) -> list[dict[str, Any]]:
    """A few export rows fit for metadata: the masked subject, themes and products. No address
    and no customer or decision id: Dagster's run storage keeps metadata for ever, beyond an
    erasure's reach, and a decision id is a hash of the customer id (it names the person)."""
    return [
        {
            "subject": d.subject_masked,
            "theme": d.theme,
            "product_ids": " ".join(item.product_id for item in d.items),
            "arm": arm_of(d),
        }
        for d in decisions[:rows]
    ]


def run_batch(
    service: DecisionService,
    conn: sqlite3.Connection,
    home: Path,
    placement: str,
    now: datetime,
    *,
    chunk: int = BATCH_CHUNK,
) -> BatchResult:
    """Decide, then export the sends of ``placement`` under ``CDP_HOME/exports/``."""
    started = time.perf_counter()
    result, sent = decide_batch(service, conn, placement, now, chunk=chunk)
    emails = _emails(conn, [d.customer_id for d in sent])
    # The service refuses customers without an address (``no_address:email``), so every send
    # has one; a row that has none anyway (the snapshot and facts disagree: a bug) cannot be
    # loaded by a sending platform, so it is left out of the file, counted and warned about.
    addressed = [d for d in sent if (emails.get(d.customer_id) or "").strip()]
    result.sent_without_address = len(sent) - len(addressed)
    table = export_table(addressed, emails)
    day = result.period_start.date().isoformat()
    result.parquet_path, result.csv_path = write_export(table, export_folder(home, placement), day)
    result.rows = table.num_rows
    result.sample = masked_sample(addressed)
    result.seconds = time.perf_counter() - started
    return result
