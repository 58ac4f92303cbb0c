"""The real-time collector renders what the log and the state files hold, zeros without them.

Real files: the log written by ``SqliteEventLog``, the state by ``StateStore`` (processor
offset, outbox, timers, firings inserted as the processor and delivery worker do).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.realtime_metrics import RealtimeCollector
from events.log import SqliteEventLog
from events.outbox import OutboxMessage, enqueue, to_micros
from events.state import StateStore, set_offset
from events.types import EventKind, FailedEvent, NewEvent, ProductLine
from tests.support.stream_world import event

NOW = datetime.now(UTC)


def scrape(home: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Sample name and labels -> value, as Prometheus would parse ``/metrics``."""
    registry = CollectorRegistry()
    registry.register(RealtimeCollector.for_home(home))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _event(n: int, received_at: datetime) -> NewEvent:
    return event(
        EventKind.PRODUCT_VIEW,
        anonymous_id="anon",
        products=[ProductLine("P1")],
        at=received_at,
        message_id=f"m-{n}",
        name="Product Viewed",
    )


def test_missing_files_scrape_as_zeros(tmp_path: Path) -> None:
    values = scrape(tmp_path / "nothing_here")
    assert values[("cdp_realtime_events_accepted_total", ())] == 0
    assert values[("cdp_realtime_outbox_messages", (("status", "pending"),))] == 0
    assert values[("cdp_realtime_dead_letters", ())] == 0
    assert values[("cdp_realtime_timers_pending", ())] == 0
    assert not any(name == "cdp_realtime_processor_lag_events" for name, _ in values)


def test_log_and_state_figures(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with SqliteEventLog(home / "events" / "log.sqlite") as log:
        log.append(
            [_event(n, NOW - timedelta(seconds=30 - n)) for n in range(10)],
            [
                FailedEvent("web", "invalid_json", "not JSON", NOW),
                FailedEvent("web", "invalid_json", "not JSON", NOW),
                FailedEvent(None, "event_too_large", "over 32 KB", NOW),
            ],
        )
    store = StateStore(home / "events" / "state.sqlite")
    with store.transaction() as conn:
        set_offset(conn, "stream_processor", 6, NOW)  # 4 events behind; offset 7 is 23 s old
        enqueue(
            conn,
            [
                OutboxMessage(f"d{i}:email", "email", "price_drop", f"c{i}", f"d{i}", {}, NOW)
                for i in range(5)
            ],
        )
        conn.execute("update outbox set status = 'delivered', attempts = 1 where message_id = 1")
        conn.execute("update outbox set status = 'delivered', attempts = 3 where message_id = 2")
        conn.execute("update outbox set status = 'dead', attempts = 9 where message_id = 3")
        conn.execute("update outbox set attempts = 2 where message_id = 4")
        due = [to_micros(NOW - timedelta(seconds=5)), to_micros(NOW + timedelta(hours=1))]
        conn.executemany(
            "insert into timers (timer_key, trigger_name, customer_id, due_at, payload, "
            "fired_at) values (?, 'cart_reminder', ?, ?, '{}', ?)",
            [
                ("t1", "c1", due[0], None),
                ("t2", "c2", due[1], None),
                ("t3", "c3", due[0], to_micros(NOW)),
            ],
        )
        conn.executemany(
            "insert into trigger_firings (firing_key, trigger_name, customer_id, decision_id, "
            "fired_at, sent, reasons) values (?, ?, ?, ?, ?, ?, '[]')",
            [
                ("f1", "price_drop", "c1", "d1", to_micros(NOW), 1),
                ("f2", "price_drop", "c2", "d2", to_micros(NOW), 0),
                ("f3", "cart_reminder", "c3", "d3", to_micros(NOW), 1),
            ],
        )
    store.close()

    started = time.perf_counter()
    values = scrape(home)
    elapsed = time.perf_counter() - started
    assert values[("cdp_realtime_events_accepted_total", ())] == 10
    assert values[("cdp_realtime_failed_events_total", (("reason", "invalid_json"),))] == 2
    assert values[("cdp_realtime_failed_events_total", (("reason", "event_too_large"),))] == 1
    consumer = (("consumer", "stream_processor"),)
    assert values[("cdp_realtime_consumer_offset", consumer)] == 6
    assert values[("cdp_realtime_processor_lag_events", consumer)] == 4
    # offset 7 was received 23 s before NOW (set when the module was imported)
    since_now = (datetime.now(UTC) - NOW).total_seconds()
    assert 22 <= values[("cdp_realtime_processor_lag_seconds", consumer)] <= 24 + since_now
    assert values[("cdp_realtime_outbox_messages", (("status", "pending"),))] == 2
    assert values[("cdp_realtime_outbox_messages", (("status", "delivered"),))] == 2
    assert values[("cdp_realtime_outbox_messages", (("status", "dead"),))] == 1
    assert values[("cdp_realtime_deliveries_total", ())] == 2
    assert values[("cdp_realtime_delivery_retries_total", ())] == 0 + 2 + 8 + 1
    assert values[("cdp_realtime_dead_letters", ())] == 1
    assert values[("cdp_realtime_timers_pending", ())] == 2
    assert values[("cdp_realtime_timers_overdue", ())] == 1
    fired = "cdp_realtime_trigger_firings_total"
    assert values[(fired, (("sent", "true"), ("trigger", "price_drop")))] == 1
    assert values[(fired, (("sent", "false"), ("trigger", "price_drop")))] == 1
    assert values[(fired, (("sent", "true"), ("trigger", "cart_reminder")))] == 1
    assert values[("cdp_realtime_dead_events", ())] == 0
    assert elapsed < 0.5, f"a scrape took {elapsed:.3f} s"


def test_a_caught_up_processor_has_no_lag(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with SqliteEventLog(home / "events" / "log.sqlite") as log:
        log.append([_event(n, NOW) for n in range(3)])
    store = StateStore(home / "events" / "state.sqlite")
    with store.transaction() as conn:
        set_offset(conn, "stream_processor", 3, NOW)
    store.close()
    values = scrape(home)
    consumer = (("consumer", "stream_processor"),)
    assert values[("cdp_realtime_processor_lag_events", consumer)] == 0
    assert values[("cdp_realtime_processor_lag_seconds", consumer)] == 0


def test_an_unreadable_file_reports_zeros_not_an_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "events").mkdir(parents=True)
    (home / "events" / "log.sqlite").write_bytes(b"this is not a database" * 100)
    values = scrape(home)
    assert values[("cdp_realtime_events_accepted_total", ())] == 0
