"""Prometheus metrics: request counts and latencies, and which snapshot is served.

With several uvicorn workers each process counts on its own, so ``cdp serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` aggregates every worker's files. The snapshot id
and age are computed at scrape time from the answering process (all workers follow the same
CURRENT pointer, within a poll interval).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.snapshot import Snapshot, SnapshotManager
from api.transport import register_metrics

LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
#: Distinct operation labels kept per process before new names are counted as "other".
MAX_OPERATION_LABELS: Final[int] = 200
#: Distinct decision reasons kept per process before new ones are counted as "other".
MAX_REASON_LABELS: Final[int] = 200
_LABEL: Final[re.Pattern[str]] = re.compile(r"^[A-Za-z_][A-Za-z0-9_,]{0,99}$")
#: The intake's Segment endpoints (api/intake.py), counted by path like the others.
INTAKE_PATHS: Final[frozenset[str]] = frozenset(
    {
        "/v1/track",
        "/v1/identify",
        "/v1/page",
        "/v1/screen",
        "/v1/alias",
        "/v1/group",
        "/v1/batch",
        "/v1/import",
    }
)
KNOWN_PATHS: Final[frozenset[str]] = frozenset({"/graphql", "/health", "/metrics"}) | INTAKE_PATHS
#: Commits group appends (requests); buckets for how many one commit acknowledges.
GROUP_SIZE_BUCKETS: Final[tuple[float, ...]] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)
#: Most distinct sources (write key names) labelled per process; more are counted as "other".
MAX_SOURCE_LABELS: Final[int] = 100


def multiprocess_dir() -> str | None:
    """The shared metrics folder when running several workers, else None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class SnapshotCollector(Collector):
    """cdp_api_snapshot_info{snapshot_id} and cdp_api_snapshot_age_seconds, live."""

    def __init__(self, manager: SnapshotManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        """Called per scrape."""
        snapshot: Snapshot | None = self.manager.current
        info = GaugeMetricFamily(
            "cdp_api_snapshot_info",
            "The snapshot this process serves (value 1), labelled by id and as-of date.",
            labels=["snapshot_id", "as_of"],
        )
        loaded = GaugeMetricFamily(
            "cdp_api_snapshot_loaded", "1 when a snapshot is loaded (health is ready)."
        )
        loaded.add_metric([], 1.0 if snapshot is not None else 0.0)
        if snapshot is not None:
            as_of = snapshot.manifest.as_of.isoformat() if snapshot.manifest.as_of else ""
            info.add_metric([snapshot.id, as_of], 1.0)
        yield info
        yield loaded
        if snapshot is not None:
            age = GaugeMetricFamily(
                "cdp_api_snapshot_age_seconds", "Seconds since the served snapshot was published."
            )
            age.add_metric([], snapshot.age_seconds())
            yield age


class IntakeMetrics:
    """The event intake's instruments: accepted, duplicate and failed events, refused requests,
    and the log's grouped commits (latency and appends per commit)."""

    def __init__(self, target: CollectorRegistry | None) -> None:
        self.events = Counter(
            "cdp_intake_events",
            "Events accepted into the event log, by source (write key name) and kind.",
            ["source", "kind"],
            registry=target,
        )
        self.duplicates = Counter(
            "cdp_intake_duplicates",
            "Events acknowledged as duplicates (messageId already logged with that payload).",
            ["source"],
            registry=target,
        )
        self.failed = Counter(
            "cdp_intake_failed_events",
            "Input kept as failed events, by reason (invalid_json, event_too_large, ...).",
            ["reason"],
            registry=target,
        )
        self.unauthorized = Counter(
            "cdp_intake_unauthorized_requests",
            "Intake requests refused for a missing, wrong or revoked write key.",
            registry=target,
        )
        self.commit_latency = Histogram(
            "cdp_intake_commit_duration_seconds",
            "Time of one grouped commit of the event log (BEGIN IMMEDIATE to durable COMMIT).",
            buckets=LATENCY_BUCKETS,
            registry=target,
        )
        self.group_size = Histogram(
            "cdp_intake_commit_group_size",
            "Appends (requests) acknowledged by one commit of the event log.",
            buckets=GROUP_SIZE_BUCKETS,
            registry=target,
        )
        self._event_children: dict[tuple[str, str], Any] = {}
        self._duplicate_children: dict[str, Any] = {}
        self._failed_children: dict[str, Any] = {}
        self._sources: set[str] = set()

    def _source(self, source: str) -> str:
        if source in self._sources:
            return source
        if len(self._sources) >= MAX_SOURCE_LABELS:
            return "other"
        self._sources.add(source)
        return source

    def accepted(self, source: str, kind: str, count: int = 1) -> None:
        """Count events stored."""
        child = self._event_children.get((source, kind))
        if child is None:
            child = self.events.labels(self._source(source), kind)
            self._event_children[(source, kind)] = child
        child.inc(count)

    def duplicate(self, source: str, count: int = 1) -> None:
        """Count events acknowledged as duplicates."""
        child = self._duplicate_children.get(source)
        if child is None:
            child = self.duplicates.labels(self._source(source))
            self._duplicate_children[source] = child
        child.inc(count)

    def failure(self, reason: str, count: int = 1) -> None:
        """Count kept failed events (reasons are a fixed vocabulary, events.intake.REASONS)."""
        child = self._failed_children.get(reason)
        if child is None:
            child = self.failed.labels(reason[:64])
            self._failed_children[reason] = child
        child.inc(count)

    def observe_commit(self, appends: int, _events: int, seconds: float) -> None:
        """The event log's commit observer (called from its writer thread)."""
        self.commit_latency.observe(seconds)
        self.group_size.observe(appends)


class ApiMetrics:
    """The API's instruments, in a registry of its own (one per app, tests make several)."""

    def __init__(self) -> None:
        disable_created_metrics()  # *_created series only add noise to every scrape
        self.registry = CollectorRegistry()
        self._multiprocess = multiprocess_dir()
        target = None if self._multiprocess else self.registry
        self.http_requests = Counter(
            "cdp_api_http_requests",
            "HTTP requests by path and status code.",
            ["path", "status_code"],
            registry=target,
        )
        self.http_latency = Histogram(
            "cdp_api_http_request_duration_seconds",
            "HTTP request latency by path.",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=target,
        )
        self.operations = Counter(
            "cdp_api_graphql_operations",
            "GraphQL operations by operation name (or root fields) and status.",
            ["operation", "status"],
            registry=target,
        )
        self.operation_latency = Histogram(
            "cdp_api_graphql_operation_duration_seconds",
            "GraphQL operation latency (parse, validate, execute) by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=target,
        )
        self.decisions = Counter(
            "cdp_api_decisions",
            "Decisions answered by placement, channel and whether the message is sent.",
            ["placement", "channel", "sent"],
            registry=target,
        )
        self.decision_reasons = Counter(
            "cdp_api_decision_reasons",
            "Reasons given with decisions (consent:missing:email, cap:email_daily, holdout, ...).",
            ["reason"],
            registry=target,
        )
        self.snapshot_switches = Counter(
            "cdp_api_snapshot_switches",
            "Times this process switched to a newly published snapshot.",
            registry=target,
        )
        self.intake = IntakeMetrics(target)
        # the connections cdp serve's transport closed (api/transport.py), single process
        register_metrics(self.registry)
        self._labels: set[str] = set()
        # Labelled children by label values: ``labels()`` hashes and locks on every call.
        # Bounded: paths and operation labels are, status codes and statuses are few.
        self._operation_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._http_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        # Placements and channels are validated against the policy before a decision is
        # counted; reasons are bounded like operation names.
        self._decision_children: dict[tuple[str, str, bool], Any] = {}
        self._reason_children: dict[str, Any] = {}
        self._labels_lock = threading.Lock()
        self._manager: SnapshotManager | None = None
        self._extra: list[Collector] = []

    def watch(self, manager: SnapshotManager) -> None:
        """Report the manager's snapshot id and age."""
        self._manager = manager
        if not self._multiprocess:
            self.registry.register(SnapshotCollector(manager))

    def add_collector(self, collector: Collector) -> None:
        """Report ``collector`` at every scrape (one that reads shared files, such as the
        real-time path's state, so every worker reports the same figures)."""
        self._extra.append(collector)
        if not self._multiprocess:
            self.registry.register(collector)

    def snapshot_switched(self, _snapshot: Snapshot) -> None:
        """Count a switch (the manager's on_switch callback)."""
        self.snapshot_switches.inc()

    def operation_label(self, name: str | None) -> str:
        """A bounded-cardinality label for an operation name."""
        if not name or not _LABEL.match(name):
            return "invalid" if name else "anonymous"
        if name in self._labels:
            return name
        with self._labels_lock:
            if len(self._labels) >= MAX_OPERATION_LABELS:
                return "other"
            self._labels.add(name)
        return name

    def observe_operation(self, operation: str, status: str, seconds: float) -> None:
        """Count and time one GraphQL operation."""
        children = self._operation_children.get((operation, status))
        if children is None:
            children = (
                self.operations.labels(operation, status),
                self.operation_latency.labels(operation),
            )
            self._operation_children[(operation, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_decision(self, placement: str, channel: str, sent: bool, reasons: Any) -> None:
        """Count one decision answered and each of its reasons."""
        key = (placement, channel, sent)
        child = self._decision_children.get(key)
        if child is None:
            child = self.decisions.labels(placement, channel, "true" if sent else "false")
            self._decision_children[key] = child
        child.inc()
        for reason in reasons:
            counter = self._reason_children.get(reason)
            if counter is None:
                label = reason if len(self._reason_children) < MAX_REASON_LABELS else "other"
                counter = self.decision_reasons.labels(label[:100])
                if label == reason:
                    self._reason_children[reason] = counter
            counter.inc()

    def observe_http(self, path: str, status_code: int, seconds: float) -> None:
        """Count and time one HTTP request."""
        label = path if path in KNOWN_PATHS else "other"
        children = self._http_children.get((label, status_code))
        if children is None:
            children = (
                self.http_requests.labels(label, str(status_code)),
                self.http_latency.labels(label),
            )
            self._http_children[(label, status_code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if self._multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self._multiprocess)
            if self._manager is not None:
                registry.register(SnapshotCollector(self._manager))
            for collector in self._extra:
                registry.register(collector)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request (no per-request task overhead)."""

    def __init__(self, app: Callable[..., Any], metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        """Wrap ``send`` to catch the status code."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe_http(scope.get("path", ""), status, time.perf_counter() - started)
