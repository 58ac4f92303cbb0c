"""The decision service as one API process runs it: policy, decision log, clock and snapshot.

The library (``decisions``) decides; this module only wires it to what the API owns. The policy
is read once, at start, from the ``decisions:`` key of cdp.yml (``CDP_CONFIG``, default
``CDP_HOME/cdp.yml``; no file means the default policy) and checked against the served
snapshot's segments and trait columns before the first request, so a policy naming a segment
that does not exist stops the server with the key named instead of silently admitting nobody.
Each worker process opens the decision log (``CDP_HOME/decisions/decisions.sqlite``) itself;
SQLite's write lock serialises the workers' deliveries, so caps hold across them.

Calls are synchronous on the event loop: one decide is a few indexed reads of the snapshot and
one short write transaction (~0.2 ms, measured in ``decisions/store.py``); handing it to a
thread would cost more than it saves at that size.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from api.metrics import ApiMetrics
from api.repositories.database import RequestDatabase
from api.repositories.decisions import load_customer_facts, load_running_sales, sales_by_id
from api.repositories.segments import all_segments
from api.settings import ApiSettings
from api.snapshot import Snapshot
from decisions.facts import FACT_TABLES, SnapshotFactsError
from decisions.policy import (
    KNOWN_CHANNELS,
    DecisionsPolicy,
    PolicyError,
    check_references,
    load_policy,
)
from decisions.service import DecisionRequestError, DecisionService
from decisions.store import DecisionStore, UnknownDecisionError, default_store_path
from decisions.types import Decision, Sale

logger = logging.getLogger(__name__)

#: Sales running "now" are read once per snapshot and minute (sales start and end on the hour).
SALES_CACHE_SECONDS: Final[int] = 60


class DecisionUnavailableError(RuntimeError):
    """The decision service cannot answer (the snapshot lacks what decisions read)."""


class DecisionInputError(ValueError):
    """A request the caller can fix: unknown placement, channel, outcome kind or decision."""


class DecisionNotFoundError(LookupError):
    """An outcome names a decision id the log does not hold."""


def read_policy(settings: ApiSettings) -> DecisionsPolicy:
    """The policy of ``settings.config_path``; the default policy when the file is absent.

    Raises PolicyError (file, key and problem) for an invalid one: the app does not start.
    """
    path = settings.config_path
    if not path.is_file():
        logger.info("no %s: serving the default decision policy", path)
        return DecisionsPolicy()
    return load_policy(path)


def check_policy(policy: DecisionsPolicy, snapshot: Snapshot, source: str) -> None:
    """PolicyError naming the key when the policy refers to a segment or trait the snapshot
    does not have."""
    segments = {row["segment"] for row in all_segments(snapshot.db)}
    traits = set(snapshot.manifest.columns.get("customer_traits", {}))
    check_references(policy, segments, traits, source)


@dataclass(frozen=True)
class Outcome:
    """What ``recordDecisionOutcome`` did."""

    is_recorded: bool


class DecisionRuntime:
    """One process's decision service; ``app.state.cdp.decisions``."""

    def __init__(
        self, settings: ApiSettings, policy: DecisionsPolicy, metrics: ApiMetrics | None = None
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.metrics = metrics
        self.source = str(settings.config_path)
        self._store: DecisionStore | None = None
        self._service: DecisionService | None = None
        self._lock = threading.Lock()
        self._checked: set[str] = set()

    @classmethod
    def from_settings(
        cls, settings: ApiSettings, metrics: ApiMetrics | None = None
    ) -> DecisionRuntime:
        """Read the policy (PolicyError when invalid); the log opens on first use."""
        return cls(settings, read_policy(settings), metrics)

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        """Open the decision log (in the worker process that serves requests)."""
        with self._lock:
            if self._store is None:
                store = DecisionStore.open(default_store_path(self.settings.home))
                self._service = DecisionService(self.policy, store, store.assignment_key())
                self._store = store

    def close(self) -> None:
        """Close the decision log."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
                self._service = None

    def check(self, snapshot: Snapshot) -> None:
        """Check the policy's references against ``snapshot`` once (PolicyError if invalid)."""
        if snapshot.id in self._checked:
            return
        missing = [t for t in FACT_TABLES if t not in snapshot.manifest.tables]
        if missing:
            # profiles still serve; decide answers with what to do
            logger.warning(
                "snapshot %s cannot serve decisions: it lacks %s (publish one with `cdp run`)",
                snapshot.id,
                ", ".join(missing),
            )
        check_policy(self.policy, snapshot, self.source)
        self._checked.add(snapshot.id)

    def check_switched(self, snapshot: Snapshot) -> None:
        """On a newly published snapshot: an invalid reference is logged, serving goes on (the
        engine admits nobody to a rule on a missing segment) until the policy is fixed. The
        snapshot loaded at start is checked by the lifespan instead, where a failure stops it."""
        if self._store is None:
            return
        try:
            self.check(snapshot)
        except PolicyError as exc:
            self._checked.add(snapshot.id)
            logger.error("snapshot %s no longer matches the decision policy: %s", snapshot.id, exc)

    @property
    def store(self) -> DecisionStore:
        """The decision log (opened on first use)."""
        if self._store is None:
            self.open()
        assert self._store is not None
        return self._store

    @property
    def service(self) -> DecisionService:
        """The library's service over this process's log."""
        if self._service is None:
            self.open()
        assert self._service is not None
        return self._service

    def now(self) -> datetime:
        """The clock decisions use: ``CDP_API_NOW`` when set (demos, tests), else UTC now."""
        fixed = self.settings.api_now
        if fixed is None:
            return datetime.now(UTC)
        return fixed if fixed.tzinfo is not None else fixed.replace(tzinfo=UTC)

    # -- requests -----------------------------------------------------------------------------

    def running_sales(self, db: RequestDatabase, snapshot: Snapshot, now: datetime) -> list[Sale]:
        """Sales running at ``now`` (cached per snapshot and minute)."""
        minute = int(now.timestamp()) // SALES_CACHE_SECONDS
        cached = snapshot.cache.get("decision_sales")
        if cached is not None and cached[0] == minute:
            return cached[1]  # type: ignore[no-any-return]
        sales = load_running_sales(db, now)
        if cached is not None and [s.sale_id for s in cached[1]] == [s.sale_id for s in sales]:
            sales = cached[1]  # the same list: the service keeps its compiled engine for it
        snapshot.cache["decision_sales"] = (minute, sales)
        index: dict[str, Sale] = snapshot.cache.setdefault("decision_sales_by_id", {})
        index.update({sale.sale_id: sale for sale in sales})
        return sales

    def sales(self, db: RequestDatabase, snapshot: Snapshot, ids: Sequence[str]) -> dict[str, Sale]:
        """Sales by id, running or not (a logged decision may name an ended sale)."""
        index: dict[str, Sale] = snapshot.cache.setdefault("decision_sales_by_id", {})
        missing = [i for i in dict.fromkeys(ids) if i not in index]
        if missing:
            index.update(sales_by_id(db, missing))
        return {i: index[i] for i in ids if i in index}

    def decide(
        self,
        db: RequestDatabase,
        snapshot: Snapshot,
        customer_id: str,
        channel: str,
        placement: str,
        context: Mapping[str, Any] | None,
    ) -> Decision:
        """Decide (or recall this period's decision) for a customer on a channel, logged.

        DecisionInputError for an unknown placement or channel (naming the known ones).
        """
        self.check(snapshot)
        now = self.now()
        try:
            facts = load_customer_facts(db, [customer_id]).get(customer_id)
            sales = self.running_sales(db, snapshot, now)
        except SnapshotFactsError as exc:
            raise DecisionUnavailableError(str(exc)) from exc
        if facts is None:
            raise DecisionInputError(f"customer '{customer_id[:100]}' has no profile to decide on")
        try:
            return self.service.decide(
                facts, channel, placement, now, context=dict(context or {}), sales=sales
            )
        except DecisionRequestError as exc:
            raise DecisionInputError(str(exc)) from exc

    def observe(self, decision: Decision) -> None:
        """Count a decision answered (metrics)."""
        if self.metrics is not None:
            self.metrics.observe_decision(
                decision.placement, decision.channel, decision.send, decision.reasons
            )

    def record_outcome(
        self, decision_id: str, channel: str, kind: str, revenue: float | None
    ) -> Outcome:
        """Log an outcome (an unsubscribe withdraws consent at once); False when a repeat."""
        if channel not in KNOWN_CHANNELS:
            raise DecisionInputError(
                f"unknown channel '{channel[:40]}' (known: {', '.join(sorted(KNOWN_CHANNELS))})"
            )
        try:
            recorded = self.store.record_outcome(decision_id, channel, kind, self.now(), revenue)
        except UnknownDecisionError as exc:
            raise DecisionNotFoundError(str(exc)) from exc
        except ValueError as exc:
            raise DecisionInputError(str(exc)) from exc
        return Outcome(is_recorded=recorded)

    def recent(self, customer_ids: Sequence[str], last: int) -> list[Decision]:
        """The person's last deliveries, newest first (all of their ids)."""
        return self.store.recent(customer_ids, last)
