"""Triggers from ``realtime.triggers``: when one fires, ask the decision service, write the outbox.

- ``price_drop_on_viewed``: a price change on product P (its previous price from the live
  ``product_prices``, else the snapshot's ``products`` catalog) that falls by at least
  ``min_drop_percent`` fires for every customer with a live view of P within
  ``viewed_within_days`` of the change (one firing per trigger, customer and price-change
  message id);
- ``cart_abandoned``: an add-to-cart arms (or re-arms) a timer at ``occurred_at +
  after_minutes``; a purchase or an emptied cart cancels it; ``fire_due`` fires due timers from
  the processor's loop whether or not events arrive;
- ``segment_entered`` / ``segment_exited``: when serving/CURRENT names a new snapshot, its
  memberships of the watched segments are diffed against the ones stored with the last processed
  snapshot; the firings, the new members and the new watermark commit in one transaction, so a
  crash repeats all of it or none. The first snapshot (and a newly watched segment) only sets the
  baseline: no flood of "entered" for every existing member.

A firing never sends by itself: ``DecisionService.decide_trigger`` applies consent, caps, the
holdout and post-purchase suppression and is idempotent per (customer, placement, period). The
decision time is the triggering fact's own time (the event's, the timer's due time, the
snapshot's publish time), so a replay after a crash asks for the same period and gets the same
decision id back, hence the same outbox key. The firing's key is recorded in
``trigger_firings`` in the processor's transaction: a firing key is handled once.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from decisions.facts import SnapshotFactsError, load_facts, load_sales
from decisions.service import DecisionService
from decisions.types import CustomerFacts, Decision, Sale, TriggerItem
from events.config import (
    CartAbandonedTrigger,
    PriceDropTrigger,
    RealtimeConfig,
    SegmentTrigger,
)
from events.live import cart_lines
from events.outbox import OutboxMessage, enqueue, from_micros, to_micros
from events.resolve import SnapshotView
from events.types import EventKind, LoggedEvent

logger = logging.getLogger(__name__)

AnyTrigger = PriceDropTrigger | CartAbandonedTrigger | SegmentTrigger
#: Products a segment message carries (the customer's top recommendations).
RECOMMENDED_ITEMS: Final[int] = 4


def timer_key(trigger: str, customer_id: str) -> str:
    """The one timer a cart trigger keeps per customer (re-armed by each add-to-cart)."""
    return f"{trigger}:{customer_id}"


@dataclass(frozen=True)
class Product:
    """What the snapshot's catalog says of a product."""

    product_id: str
    name: str | None
    category: str | None
    brand: str | None
    price: float | None


@dataclass
class FiringCounts:
    """What the triggers did since start (metrics)."""

    fired: int = 0
    sent: int = 0
    messages: int = 0
    price_changes: int = 0
    timers_armed: int = 0
    timers_fired: int = 0
    segment_changes: int = 0
    #: firings whose decision raised (kept in trigger_firings with the error)
    errors: int = 0


class Triggers:
    """The configured triggers over one decision service and the serving snapshot."""

    def __init__(self, config: RealtimeConfig, service: DecisionService) -> None:
        self.config = config
        self.service = service
        enabled = [t for t in config.triggers if t.is_enabled]
        self.price_drops = [t for t in enabled if isinstance(t, PriceDropTrigger)]
        self.carts = [t for t in enabled if isinstance(t, CartAbandonedTrigger)]
        self.segments = [t for t in enabled if isinstance(t, SegmentTrigger)]
        self.counts = FiringCounts()
        self._sales: tuple[tuple[str | None, int], list[Sale]] | None = None

    # -- snapshot reads ----------------------------------------------------------------------

    def product(self, snapshot: SnapshotView | None, product_id: str) -> Product | None:
        """The catalog row of a product (cached per snapshot), None when unknown."""
        if snapshot is None or not snapshot.has_table("products"):
            return None
        cache: dict[str, Product | None] = snapshot.cache.setdefault("products", {})
        if product_id not in cache:
            row = snapshot.conn.execute(
                "select product_id, product_name, category, brand, price from products "
                "where product_id = ?",
                (product_id,),
            ).fetchone()
            cache[product_id] = (
                None
                if row is None
                else Product(
                    product_id=str(row[0]),
                    name=row[1],
                    category=row[2],
                    brand=row[3],
                    price=None if row[4] is None else float(row[4]),
                )
            )
        return cache[product_id]

    def facts(self, snapshot: SnapshotView | None, customer_id: str) -> CustomerFacts:
        """The customer's facts from the snapshot; a provisional (or unpublished) customer gets
        minimal facts with no address, so message channels refuse."""
        if snapshot is not None:
            try:
                found = load_facts(snapshot.conn, [customer_id]).get(customer_id)
            except (SnapshotFactsError, sqlite3.Error) as exc:
                logger.warning("snapshot %s cannot give facts: %s", snapshot.id, exc)
                found = None
            if found is not None:
                return found
        return CustomerFacts(customer_id=customer_id, assignment_id=customer_id)

    def sales(self, snapshot: SnapshotView | None, now: datetime) -> list[Sale]:
        """Sales running at ``now`` (the same list object per snapshot and hour, so the
        service keeps its compiled engine)."""
        key = (None if snapshot is None else snapshot.id, int(now.timestamp()) // 3600)
        if self._sales is not None and self._sales[0] == key:
            return self._sales[1]
        sales: list[Sale] = []
        if snapshot is not None and snapshot.has_table("sales"):
            try:
                sales = load_sales(snapshot.conn, now)
            except (SnapshotFactsError, sqlite3.Error) as exc:
                logger.warning("snapshot %s cannot give sales: %s", snapshot.id, exc)
        self._sales = (key, sales)
        return sales

    # -- firing ------------------------------------------------------------------------------

    def fire(
        self,
        conn: sqlite3.Connection,
        snapshot: SnapshotView | None,
        trigger: AnyTrigger,
        customer_id: str,
        firing_key: str,
        items: Sequence[TriggerItem] | None,
        now: datetime,
    ) -> bool:
        """Handle one firing in the caller's transaction; False when the key was handled.

        ``items`` None (a segment change, about no product): the customer's recommended
        products from the snapshot, so the message has something to show.
        """
        seen = conn.execute(
            "select 1 from trigger_firings where firing_key = ?", (firing_key,)
        ).fetchone()
        if seen is not None:
            return False
        facts = self.facts(snapshot, customer_id)
        if items is None:
            items = [
                self._item(snapshot, product_id)
                for product_id in list(facts.recommended_products)[:RECOMMENDED_ITEMS]
            ]
        sales = self.sales(snapshot, now)
        decisions: list[tuple[str, Decision]] = []
        try:
            for channel in trigger.channels:
                decision = self.service.decide_trigger(
                    facts,
                    channel,
                    trigger.placement,
                    now,
                    trigger=trigger.name,
                    items=items,
                    sales=sales,
                )
                decisions.append((channel, decision))
        except sqlite3.OperationalError:
            raise  # the decision log is busy: the caller's transaction is retried
        except Exception as exc:
            # kept and counted, never retried forever: one bad firing must not stop the stream
            logger.exception("trigger %s for %s failed", trigger.name, customer_id)
            self._record(
                conn, firing_key, trigger, customer_id, None, now, False, {"error": repr(exc)[:500]}
            )
            self.counts.errors += 1
            return True
        messages = [
            self._message(trigger, channel, decision, items, now)
            for channel, decision in decisions
            if decision.send
        ]
        self.counts.messages += enqueue(conn, messages)
        reasons = {channel: list(decision.reasons) for channel, decision in decisions}
        first = decisions[0][1].decision_id if decisions else None
        self._record(conn, firing_key, trigger, customer_id, first, now, bool(messages), reasons)
        self.counts.fired += 1
        self.counts.sent += int(bool(messages))
        return True

    @staticmethod
    def _record(
        conn: sqlite3.Connection,
        firing_key: str,
        trigger: AnyTrigger,
        customer_id: str,
        decision_id: str | None,
        now: datetime,
        sent: bool,
        reasons: dict[str, Any],
    ) -> None:
        conn.execute(
            "insert into trigger_firings (firing_key, trigger_name, customer_id, decision_id, "
            "fired_at, sent, reasons) values (?, ?, ?, ?, ?, ?, ?)",
            (
                firing_key,
                trigger.name,
                customer_id,
                decision_id,
                to_micros(now),
                int(sent),
                orjson.dumps(reasons, option=orjson.OPT_SORT_KEYS).decode(),
            ),
        )

    def _message(
        self,
        trigger: AnyTrigger,
        channel: str,
        decision: Decision,
        items: Sequence[TriggerItem],
        now: datetime,
    ) -> OutboxMessage:
        key = f"{decision.decision_id}:{channel}"
        payload: dict[str, Any] = {
            "message_key": key,
            "trigger": trigger.name,
            "trigger_kind": trigger.kind,
            "channel": channel,
            "customer_id": decision.customer_id,
            "decision_id": decision.decision_id,
            "placement": decision.placement,
            "subject": decision.subject,
            "blocks": dict(decision.blocks),
            "items": [
                {
                    "product_id": item.product_id,
                    "name": item.product_name,
                    "category": item.category,
                    "brand": item.brand,
                    "price": item.price,
                    "previous_price": item.previous_price,
                    "quantity": item.quantity,
                }
                for item in items
            ],
            "occurred_at": now.isoformat(),
        }
        return OutboxMessage(
            key=key,
            channel=channel,
            trigger=trigger.name,
            customer_id=decision.customer_id,
            decision_id=decision.decision_id,
            payload=payload,
            created_at=now,
        )

    def _item(
        self,
        snapshot: SnapshotView | None,
        product_id: str,
        *,
        price: float | None = None,
        previous_price: float | None = None,
        quantity: int = 1,
    ) -> TriggerItem:
        product = self.product(snapshot, product_id)
        return TriggerItem(
            product_id=product_id,
            product_name=product.name if product else None,
            category=product.category if product else None,
            brand=product.brand if product else None,
            price=price if price is not None else (product.price if product else None),
            previous_price=previous_price,
            quantity=quantity,
        )

    # -- events ------------------------------------------------------------------------------

    def on_event(
        self,
        conn: sqlite3.Connection,
        snapshot: SnapshotView | None,
        event: LoggedEvent,
        customer_id: str | None,
    ) -> None:
        """What one event does to triggers (caller's transaction)."""
        if event.kind == EventKind.PRICE_CHANGE:
            self._price_change(conn, snapshot, event)
        if customer_id is None or not self.carts:
            return
        names = [t.name for t in self.carts]
        marks = ", ".join("?" * len(names))
        if event.kind == EventKind.ADD_TO_CART:
            due = to_micros(event.occurred_at)
            payload = orjson.dumps({"armed_offset": event.offset}).decode()
            for trigger in self.carts:
                conn.execute(
                    "insert into timers (timer_key, trigger_name, customer_id, due_at, payload, "
                    "fired_at) values (?, ?, ?, ?, ?, null) on conflict (timer_key) do update "
                    "set due_at = excluded.due_at, payload = excluded.payload, fired_at = null",
                    (
                        timer_key(trigger.name, customer_id),
                        trigger.name,
                        customer_id,
                        due + round(trigger.after_minutes * 60_000_000),
                        payload,
                    ),
                )
                self.counts.timers_armed += 1
        elif event.kind == EventKind.PURCHASE or (
            event.kind == EventKind.REMOVE_FROM_CART and not cart_lines(conn, customer_id)
        ):
            conn.execute(
                f"delete from timers where customer_id = ? and trigger_name in ({marks})",
                (customer_id, *names),
            )

    def on_move(self, conn: sqlite3.Connection, from_id: str, to_id: str) -> None:
        """A provisional customer became ``to_id``: its armed cart timers follow (the later due
        time wins when both had one)."""
        for trigger in self.carts:
            old = conn.execute(
                "select due_at, payload from timers where timer_key = ? and fired_at is null",
                (timer_key(trigger.name, from_id),),
            ).fetchone()
            conn.execute(
                "delete from timers where timer_key = ?", (timer_key(trigger.name, from_id),)
            )
            if old is None:
                continue
            conn.execute(
                "insert into timers (timer_key, trigger_name, customer_id, due_at, payload, "
                "fired_at) values (?, ?, ?, ?, ?, null) on conflict (timer_key) do update set "
                "due_at = max(due_at, excluded.due_at), fired_at = null, "
                "payload = case when excluded.due_at > due_at then excluded.payload "
                "else payload end",
                (timer_key(trigger.name, to_id), trigger.name, to_id, old[0], old[1]),
            )

    def _price_change(
        self, conn: sqlite3.Connection, snapshot: SnapshotView | None, event: LoggedEvent
    ) -> None:
        for line in event.products:
            if line.price is None:
                continue
            row = conn.execute(
                "select price from product_prices where product_id = ?", (line.product_id,)
            ).fetchone()
            if row is not None:
                previous: float | None = float(row[0])
            else:
                product = self.product(snapshot, line.product_id)
                previous = product.price if product else None
            conn.execute(
                "insert into product_prices (product_id, price, previous_price, changed_at, "
                "offset) values (?, ?, ?, ?, ?) on conflict (product_id) do update set "
                "price = excluded.price, previous_price = excluded.previous_price, "
                "changed_at = excluded.changed_at, offset = excluded.offset",
                (line.product_id, line.price, previous, to_micros(event.occurred_at), event.offset),
            )
            self.counts.price_changes += 1
            if previous is None or previous <= 0:
                continue
            drop = (previous - line.price) / previous * 100
            for trigger in self.price_drops:
                if drop + 1e-9 < trigger.min_drop_percent:
                    continue
                since = event.occurred_at - timedelta(days=trigger.viewed_within_days)
                viewers = [
                    str(r[0])
                    for r in conn.execute(
                        "select customer_id from live_product_views where product_id = ? "
                        "and viewed_at >= ? and viewed_at <= ? order by customer_id",
                        (line.product_id, to_micros(since), to_micros(event.occurred_at)),
                    )
                ]
                item = self._item(
                    snapshot, line.product_id, price=line.price, previous_price=previous
                )
                for customer_id in viewers:
                    self.fire(
                        conn,
                        snapshot,
                        trigger,
                        customer_id,
                        f"{trigger.name}:{customer_id}:{event.message_id}",
                        [item],
                        event.occurred_at,
                    )

    # -- timers ------------------------------------------------------------------------------

    def next_due(self, conn: sqlite3.Connection) -> int | None:
        """The earliest armed timer's due time (microseconds), None when none is armed."""
        row = conn.execute("select min(due_at) from timers where fired_at is null").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def fire_due(
        self, conn: sqlite3.Connection, snapshot: SnapshotView | None, now: int, limit: int = 200
    ) -> int:
        """Fire timers due at ``now`` (microseconds) in the caller's transaction; how many."""
        by_name = {t.name: t for t in self.carts}
        due = conn.execute(
            "select timer_key, trigger_name, customer_id, due_at, payload from timers "
            "where fired_at is null and due_at <= ? order by due_at limit ?",
            (now, limit),
        ).fetchall()
        fired = 0
        for key, name, customer_id, due_at, payload in due:
            trigger = by_name.get(name)
            lines = cart_lines(conn, customer_id)
            if trigger is None or not lines:
                conn.execute("delete from timers where timer_key = ?", (key,))
                continue
            armed = orjson.loads(payload).get("armed_offset", due_at)
            items = [
                self._item(snapshot, product_id, price=price, quantity=quantity)
                for product_id, quantity, price in lines
            ]
            self.fire(
                conn, snapshot, trigger, customer_id, f"{key}:{armed}", items, from_micros(due_at)
            )
            conn.execute("update timers set fired_at = ? where timer_key = ?", (now, key))
            self.counts.timers_fired += 1
            fired += 1
        return fired

    # -- segments ----------------------------------------------------------------------------

    def check_segments(self, conn: sqlite3.Connection, snapshot: SnapshotView | None) -> int:
        """Diff the watched segments of a newly served snapshot (caller's transaction, which
        must also hold the watermark); how many membership changes fired."""
        if snapshot is None:
            return 0
        row = conn.execute(
            "select snapshot_id, segments from segment_watch where watch_id = 1"
        ).fetchone()
        if row is not None and row[0] == snapshot.id:
            return 0
        watched = sorted({t.segment for t in self.segments})
        before: set[str] = set(orjson.loads(row[1])) if row is not None else set()
        changes = 0
        if watched and snapshot.has_table("customer_segments"):
            now = snapshot.manifest.created_at
            for segment in watched:
                members = {
                    str(r[0])
                    for r in snapshot.conn.execute(
                        "select customer_id from customer_segments where segment = ?", (segment,)
                    )
                }
                if segment in before:
                    old = {
                        str(r[0])
                        for r in conn.execute(
                            "select customer_id from segment_members where segment = ?",
                            (segment,),
                        )
                    }
                    changes += self._segment_firings(conn, snapshot, segment, members, old, now)
                conn.execute("delete from segment_members where segment = ?", (segment,))
                conn.executemany(
                    "insert into segment_members (segment, customer_id) values (?, ?)",
                    [(segment, c) for c in sorted(members)],
                )
        conn.execute(
            "insert into segment_watch (watch_id, snapshot_id, segments, processed_at) "
            "values (1, ?, ?, ?) on conflict (watch_id) do update set "
            "snapshot_id = excluded.snapshot_id, segments = excluded.segments, "
            "processed_at = excluded.processed_at",
            (snapshot.id, orjson.dumps(watched).decode(), to_micros(datetime.now(UTC))),
        )
        self.counts.segment_changes += changes
        return changes

    def _segment_firings(
        self,
        conn: sqlite3.Connection,
        snapshot: SnapshotView,
        segment: str,
        members: set[str],
        old: set[str],
        now: datetime,
    ) -> int:
        changes = 0
        for trigger in self.segments:
            if trigger.segment != segment:
                continue
            changed = members - old if trigger.kind == "segment_entered" else old - members
            for customer_id in sorted(changed):
                self.fire(
                    conn,
                    snapshot,
                    trigger,
                    customer_id,
                    f"{trigger.name}:{customer_id}:{snapshot.id}",
                    None,
                    now,
                )
                changes += 1
        return changes
