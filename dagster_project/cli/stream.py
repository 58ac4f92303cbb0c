"""``cdp stream``: the stream processor and the delivery worker, until SIGTERM or Ctrl-C.

Registered by ``dagster_project/cli/main.py``::

    app.command()(stream)

The processor and the worker run in two threads of one process (each has its own state
connection; SQLite's WAL lets them work side by side). SIGTERM and SIGINT set a stop event: the
batch in progress commits (or rolls back) and both loops return, so a restart resumes from the
committed offset. A line per minute reports throughput and lag.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from privacy.keys import Keyring

console = Console(stderr=True)
logger = logging.getLogger(__name__)

#: Seconds between the throughput lines.
REPORT_SECONDS = 60.0


class Only(StrEnum):
    """Which loop to run alone."""

    processor = "processor"
    delivery = "delivery"


def stream(
    only: Annotated[
        Only | None, typer.Option(help="run only the processor or only the delivery worker")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="process what is in the log (and due), then exit")
    ] = False,
    home: Annotated[Path | None, typer.Option(help="CDP_HOME (default ./.cdp)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="events per batch")] = 500,
) -> None:
    """Run the stream processor (live profile, triggers) and the webhook delivery worker."""
    from decisions.policy import PolicyError
    from events.config import RealtimeConfigError

    if home is not None:
        os.environ["CDP_HOME"] = str(home.resolve())
    from dagster_project.cli.privacy import require_privacy_key
    from dagster_project.lib.settings import PlatformSettings

    settings = PlatformSettings()
    keyring = require_privacy_key(settings.home, settings.privacy_key, settings.privacy_key_file)
    cdp_home = settings.home.resolve()
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        console.print(f"[yellow]{signal.Signals(signum).name}: stopping after this batch[/yellow]")
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        runners = _runners(cdp_home, settings.config_path, only, once, batch_size, stop, keyring)
    except (PolicyError, RealtimeConfigError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    threads = [threading.Thread(target=r, name=n, daemon=True) for n, r in runners]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=0.2)
    if _failed:
        raise typer.Exit(1)


#: Names of loops that ended with an error (the process exits 1).
_failed: list[str] = []


def _runners(
    home: Path,
    config_path: Path,
    only: Only | None,
    once: bool,
    batch_size: int,
    stop: threading.Event,
    keyring: Keyring,
) -> list[tuple[str, Any]]:
    runners: list[tuple[str, Any]] = []
    if only in (None, Only.processor):
        runners.append(
            ("processor", _processor_loop(home, config_path, once, batch_size, stop, keyring))
        )
    if only in (None, Only.delivery):
        runners.append(("delivery", _delivery_loop(home, config_path, once, stop)))
    return runners


def _guarded(name: str, body: Any, stop: threading.Event) -> Any:
    from events.delivery import DeliveryBusyError
    from events.signing import SecretError
    from events.state import StateError

    def run() -> None:
        try:
            body()
        except (SecretError, DeliveryBusyError, StateError) as exc:  # the operator can fix these
            console.print(f"[red]{name}: {exc}[/red]")
            _failed.append(name)
            stop.set()
        except Exception:
            logger.exception("%s stopped by an error", name)
            console.print_exception(max_frames=5)
            _failed.append(name)
            stop.set()

    return run


def _processor_loop(
    home: Path,
    config_path: Path,
    once: bool,
    batch_size: int,
    stop: threading.Event,
    keyring: Keyring,
) -> Any:
    from events.config import load_realtime
    from events.processor import StreamProcessor, acquire_lock, release_lock
    from privacy.erase_events import suppression_filter
    from privacy.suppression import SuppressionCache

    config, _ = load_realtime(config_path)  # fail at start, naming the key, before any thread
    erased = SuppressionCache(home, keyring)

    def body() -> None:
        lock = acquire_lock(home)
        while lock is None:
            console.print("[yellow]another stream processor holds this CDP_HOME; waiting[/yellow]")
            if once or stop.wait(5.0):
                return
            lock = acquire_lock(home)
        processor = StreamProcessor.from_home(home, config_path=config_path, batch_size=batch_size)
        # events of persons erased after they were logged are skipped, not applied: the list
        # as it is at each event, matched with the serving snapshot's normalizer
        processor.suppressed = suppression_filter(
            erased.get, lambda: processor.snapshots.normalizer, config.identifiers
        )
        try:
            start = processor.counters.offset
            console.print(
                f"[green]stream processor[/green] on {home} from offset {start} "
                f"({len(processor.triggers.config.triggers)} triggers)"
            )
            reporter = _Reporter(processor)
            if once:
                processor.run(stop, once=True)
            else:
                worker = threading.Thread(target=processor.run, args=(stop,), daemon=True)
                worker.start()
                while worker.is_alive():
                    worker.join(timeout=1.0)
                    reporter.maybe_report()
            reporter.report()
        finally:
            processor.close()
            release_lock(lock)

    return _guarded("processor", body, stop)


def _delivery_loop(home: Path, config_path: Path, once: bool, stop: threading.Event) -> Any:
    from events.config import load_realtime
    from events.delivery import DeliveryWorker

    config, _ = load_realtime(config_path)

    def body() -> None:
        worker = DeliveryWorker(home, config)
        try:
            console.print(f"[green]delivery worker[/green] for {len(config.channels)} channels")
            if once:
                stats = worker.run_once()
                console.print(f"delivery: {stats}")
            else:
                worker.run(stop)
        finally:
            worker.close()

    return _guarded("delivery", body, stop)


class _Reporter:
    """A line per minute: events/s, lag, firings, dead events."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.last_at = time.monotonic()
        self.last_processed = processor.counters.processed

    def maybe_report(self) -> None:
        if time.monotonic() - self.last_at >= REPORT_SECONDS:
            self.report()

    def report(self) -> None:
        now = time.monotonic()
        try:
            metrics = self.processor.metrics()
        except Exception as exc:  # the log may be briefly busy; the next line will tell
            logger.warning("cannot read the log head: %s", exc)
            return
        elapsed = max(now - self.last_at, 1e-6)
        rate = (metrics["processed"] - self.last_processed) / elapsed
        firings = metrics["firings"]
        console.print(
            f"stream: {rate:,.0f} events/s, offset {metrics['offset']:,}, lag {metrics['lag']:,}, "
            f"firings {firings['fired']:,} ({firings['messages']:,} messages), "
            f"dead events {metrics['dead']:,}, erased persons' events skipped "
            f"{metrics['suppressed']:,}"
        )
        self.last_at = now
        self.last_processed = metrics["processed"]
