"""The FastAPI application: ``/graphql``, the event intake ``/v1/*``, ``/health``, ``/metrics``.

``create_app`` builds everything from settings (no globals), so tests make as many apps as they
like and ``uvicorn --factory api.main:create_app`` gives each worker its own. The lifespan loads
the current snapshot, checks the decision policy against it (``api.decisioning``), opens the
decision log and starts the poller that follows ``serving/CURRENT`` and the keys file.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from api.decisioning import DecisionRuntime
from api.graphql.context import Limits
from api.graphql.executor import OperationExecutor
from api.graphql.schema import build_schema
from api.graphql.view import NO_STORE, GraphQLDispatch, GraphQLView
from api.intake import Intake, IntakeDispatch, intake_suppression
from api.metrics import ApiMetrics, MetricsMiddleware
from api.privacy import ErasureRuntime
from api.realtime_metrics import RealtimeCollector
from api.repositories.live import LiveState
from api.sealing import Sealer, load_or_create_secret
from api.security import AuditLog, KeyStore, Scope, presented_key
from api.settings import ApiSettings
from api.snapshot import Snapshot, SnapshotManager
from events.config import load_realtime
from events.log import SqliteEventLog
from events.write_keys import WriteKeyStore

logger = logging.getLogger(__name__)


class ApiState:
    """Everything one app instance owns; reachable as ``app.state.cdp``."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.keys = KeyStore(settings.keys_path)
        self.sealer = Sealer(load_or_create_secret(settings.secret_path))
        self.audit = AuditLog(settings.audit_dir)
        self.metrics = ApiMetrics()
        # An invalid decision policy stops the app here, naming the file and key.
        self.decisions = DecisionRuntime.from_settings(settings, self.metrics)
        self.snapshots = SnapshotManager(settings.serving_dir, on_switch=self._switched)
        self.metrics.watch(self.snapshots)
        self.limits = Limits(
            default_page_size=settings.api_default_page_size,
            max_page_size=settings.api_max_page_size,
        )
        self.schema = build_schema(settings)
        self.executor = OperationExecutor(self.schema, settings, self.metrics, self.audit)
        # The event intake: limits and identifier types from cdp.yml's realtime section (an
        # invalid one stops the app here, naming the key); the log opens in the lifespan.
        realtime, _policy = load_realtime(settings.config_path)
        # Events of erased persons are dropped (privacy's suppression list, the privacy key).
        suppression = intake_suppression(
            settings, self.metrics, self.snapshots, realtime.identifiers
        )
        self.intake = Intake(
            WriteKeyStore(settings.write_keys_path), realtime, self.metrics.intake, suppression
        )
        # Erasure requests (admin mutation): recorded by keyed hashes, carried out by the pipeline.
        self.erasures = ErasureRuntime(
            settings.home, settings.privacy_keyring(settings.home), realtime.identifiers
        )
        # The stream processor's live profiles (read-only) and the real-time path's figures
        # (processor lag, outbox, deliveries), read from the shared files at each scrape.
        self.live = LiveState.for_home(settings.home, settings.config_path)
        self.metrics.add_collector(RealtimeCollector.for_home(settings.home))

    def open_event_log(self) -> None:
        """Open the event log the intake appends to (in the lifespan)."""
        self.intake.log = SqliteEventLog(
            self.settings.event_log_path, on_commit=self.metrics.intake.observe_commit
        )

    def close_event_log(self) -> None:
        """Commit what is queued and close the log (on shutdown)."""
        log, self.intake.log = self.intake.log, None
        if log is not None:
            log.close()

    def _switched(self, snapshot: Snapshot) -> None:
        self.metrics.snapshot_switched(snapshot)
        self.decisions.check_switched(snapshot)

    def refresh(self) -> None:
        """Follow CURRENT and the keys file (called by the poller, in a thread)."""
        self.snapshots.refresh()
        self.keys.reload_if_changed()
        self.intake.keys.reload_if_changed()

    async def poll(self, stop: asyncio.Event) -> None:
        """Refresh every poll interval until ``stop`` is set."""
        interval = self.settings.api_snapshot_poll_seconds
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                break
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # the poller must survive anything; the next tick retries
                logger.exception("refreshing the snapshot or keys failed")


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The API for one CDP_HOME. Fails at start on an invalid keys file."""
    settings = settings or ApiSettings()
    state = ApiState(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(state.refresh)
        if state.snapshots.current is None:
            logger.warning("not ready: %s", state.snapshots.unavailable_reason())
        else:
            # The policy's segments and traits must exist in the served data: PolicyError
            # (naming the key) fails the start rather than admitting nobody in silence.
            state.decisions.check(state.snapshots.current)
        state.decisions.open()
        await asyncio.to_thread(state.open_event_log)
        if state.intake.keys.is_empty:
            logger.warning(
                "no write keys in %s: the event intake (/v1/*) refuses every event; create one "
                "with `cdp write-key create --name NAME`",
                settings.write_keys_path,
            )
        if state.keys.is_empty:
            logger.warning(
                "no API keys in %s: every request gets 401; create one with "
                "`cdp api-key create --name NAME --scopes profile:read`",
                settings.keys_path,
            )
        # The imported libraries leave ~1M long-lived objects; freezing them keeps the cyclic
        # garbage collector from walking them during requests (its full passes set the p99).
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        poller = asyncio.create_task(state.poll(stop))
        try:
            yield
        finally:
            stop.set()
            await poller
            state.snapshots.close()
            state.audit.close()
            state.decisions.close()
            state.live.close()
            await asyncio.to_thread(state.close_event_log)

    graphql = GraphQLView(
        state.schema,
        executor=state.executor,
        keys=state.keys,
        snapshots=state.snapshots,
        limits=state.limits,
        sealer=state.sealer,
        time_limit=settings.api_operation_timeout_seconds,
        graphiql=settings.api_enable_graphiql,
        decisions=state.decisions,
        live=state.live,
        erasures=state.erasures,
    )

    app = FastAPI(
        title="CDP customer API",
        description="One customer view for every channel (GraphQL at /graphql).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.cdp = state

    @app.get("/health", include_in_schema=False)
    async def health() -> JSONResponse:
        """200 with the snapshot when one is loaded, else 503 with the reason."""
        snapshot = state.snapshots.current
        if snapshot is None:
            return JSONResponse(
                status_code=503,
                content={
                    "status": "unavailable",
                    "reason": state.snapshots.unavailable_reason(),
                },
                headers=NO_STORE,
            )
        manifest = snapshot.manifest
        return JSONResponse(
            content={
                "status": "ok",
                "snapshot_id": snapshot.id,
                "snapshot_created_at": manifest.created_at.isoformat(),
                "snapshot_age_seconds": round(snapshot.age_seconds(), 3),
                "as_of": manifest.as_of.isoformat() if manifest.as_of else None,
            },
            headers=NO_STORE,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus exposition format, for a key with metrics:read (Prometheus sends it as
        a bearer token) unless CDP_API_METRICS_PUBLIC is set."""
        if not settings.api_metrics_public:
            principal = state.keys.authenticate(presented_key(request.headers))
            if principal is None or not principal.has(Scope.METRICS_READ):
                return JSONResponse(
                    {
                        "detail": "metrics need an API key with the scope 'metrics:read' "
                        "(`cdp api-key create --name prometheus --scopes metrics:read`)"
                    },
                    status_code=401 if principal is None else 403,
                    headers={"WWW-Authenticate": "Bearer", **NO_STORE},
                )
        body, content_type = state.metrics.render()
        return Response(content=body, media_type=content_type, headers=NO_STORE)

    # Added last = outermost: metrics see every request, /graphql and the intake's /v1/...
    # skip FastAPI's routing.
    app.add_middleware(IntakeDispatch, intake=state.intake)
    app.add_middleware(GraphQLDispatch, view=graphql)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
