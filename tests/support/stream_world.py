"""A small published world for the stream processor's tests: customers, a catalog, triggers.

Built on ``api_world`` (customer ``i`` has email ``person<i>@shopmail.com``, account
``ACC-<i>``, cookie ``ck_<i>``, email consent unless ``i % 4 == 0``), plus a few products with
prices and recommendations, published once per session into a template folder; each test copies
it into its own CDP_HOME with a cdp.yml declaring the three kinds of trigger. Events are built
as the intake would build them (``NewEvent``) and appended to helper A's ``SqliteEventLog``.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from dagster_project.lib.publish import publish_snapshot
from events.types import EventKind, NewEvent, ProductLine, SegmentType
from tests.support.api_world import build_world, customer_id

PERSONS = 24
#: product id -> (name, category, brand, price)
PRODUCTS: Mapping[str, tuple[str, str, str, float]] = {
    "P1": ("Trail shoe", "Footwear", "Acme", 80.0),
    "P2": ("Rain jacket", "Apparel", "Nimbus", 120.0),
    "P3": ("Espresso maker", "Home & Kitchen", "Brew", 200.0),
    "P4": ("Yoga mat", "Sports & Outdoors", "Flex", 30.0),
}
SEGMENT = "high_value"  # members: customers with i % 10 == 0 in api_world

CONFIG: dict[str, Any] = {
    "decisions": {
        "placements": {
            "daily_email": {"channels": ["email", "web"], "items": 4, "subject": "daily"},
            "price_drop": {
                "channels": ["email"],
                "kind": "trigger",
                "items": 1,
                "subject": "drop",
                "period": "1h",
            },
            "cart_reminder": {
                "channels": ["email"],
                "kind": "trigger",
                "items": 5,
                "subject": "cart",
                "period": "1h",
            },
            "vip_welcome": {
                "channels": ["email"],
                "kind": "trigger",
                "items": 4,
                "subject": "welcome",
                "period": "1d",
            },
        },
        "templates": {
            "daily": {"text": "Hi {{ first_name }}"},
            "drop": {"text": "{{ product_name }} is now ${{ price }}"},
            "cart": {"text": "{{ item_count }} items wait in your cart"},
            "welcome": {"text": "Welcome to the club"},
        },
        "caps": [],
    },
    "realtime": {
        "triggers": [
            {
                "name": "price_drop",
                "kind": "price_drop_on_viewed",
                "placement": "price_drop",
                "viewed_within_days": 14,
                "min_drop_percent": 10,
            },
            {
                "name": "cart_reminder",
                "kind": "cart_abandoned",
                "placement": "cart_reminder",
                "after_minutes": 30,
            },
            {
                "name": "vip_entered",
                "kind": "segment_entered",
                "placement": "vip_welcome",
                "segment": SEGMENT,
            },
            {
                "name": "vip_exited",
                "kind": "segment_exited",
                "placement": "vip_welcome",
                "segment": SEGMENT,
            },
        ]
    },
}


@dataclass(frozen=True)
class StreamWorld:
    """One test's CDP_HOME: a copy of the published world and its cdp.yml."""

    home: Path

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def serving_dir(self) -> Path:
        return self.home / "serving"

    @property
    def config_path(self) -> Path:
        return self.home / "cdp.yml"

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Replace cdp.yml."""
        self.config_path.write_text(yaml.safe_dump(dict(config)), encoding="utf-8")

    def republish(self, members: Iterable[int], *, now: datetime | None = None) -> str:
        """Publish a new snapshot whose ``high_value`` members are customers ``members``."""
        con = duckdb.connect(str(self.warehouse))
        try:
            con.execute("delete from customer_segments where segment = ?", [SEGMENT])
            for i in members:
                con.execute(
                    "insert into customer_segments (customer_id, segment, entered_at) "
                    "values (?, ?, ?)",
                    [customer_id(i), SEGMENT, datetime(2025, 6, 1, tzinfo=UTC)],
                )
        finally:
            con.close()
        return publish_snapshot(self.warehouse, self.serving_dir, now=now).snapshot_id


def _add_catalog(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse))
    try:
        for product_id, (name, category, brand, price) in PRODUCTS.items():
            con.execute(
                "insert into products (product_id, product_name, category, brand, price) "
                "values (?, ?, ?, ?, ?)",
                [product_id, name, category, brand, price],
            )
        for i in range(PERSONS):
            for rank, product_id in enumerate(("P3", "P4"), start=1):
                con.execute(
                    "insert into customer_recommendations (customer_id, rank, product_id, "
                    "score, strategy) values (?, ?, ?, ?, ?)",
                    [customer_id(i), rank, product_id, 1.0 / rank, "test"],
                )
    finally:
        con.close()


@functools.cache
def _template() -> Path:
    """The world built and published once per test session (removed at exit)."""
    root = Path(tempfile.mkdtemp(prefix="stream_world_"))
    world = build_world(root / "home", persons=PERSONS)
    _add_catalog(world.warehouse)
    publish_snapshot(world.warehouse, world.serving_dir)
    import atexit

    atexit.register(shutil.rmtree, root, True)
    return world.home


def make_world(home: Path, config: Mapping[str, Any] | None = None) -> StreamWorld:
    """A private copy of the published world in ``home`` with ``config`` (default CONFIG)."""
    template = _template()
    home.mkdir(parents=True)
    shutil.copy(template / "warehouse.duckdb", home / "warehouse.duckdb")
    shutil.copytree(template / "serving", home / "serving", ignore=shutil.ignore_patterns(".*"))
    world = StreamWorld(home=home)
    world.write_config(CONFIG if config is None else config)
    return world


def event(
    kind: EventKind,
    *,
    anonymous_id: str | None = None,
    user_id: str | None = None,
    identifiers: Mapping[str, str] | None = None,
    products: Iterable[ProductLine] = (),
    at: datetime | None = None,
    message_id: str | None = None,
    name: str | None = None,
    body: Mapping[str, Any] | None = None,
) -> NewEvent:
    """An event as the intake builds it."""
    moment = at or datetime.now(UTC)
    segment_type: SegmentType = "identify" if kind == EventKind.IDENTIFY else "track"
    return NewEvent(
        message_id=message_id or uuid.uuid4().hex,
        source="test",
        type=segment_type,
        kind=kind,
        event=name,
        occurred_at=moment,
        received_at=moment,
        anonymous_id=anonymous_id,
        user_id=user_id,
        identifiers=dict(identifiers or {}),
        products=tuple(products),
        body=dict(body or {}),
        payload_sha256=uuid.uuid4().hex,
    )
