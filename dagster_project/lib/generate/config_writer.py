"""The ``cdp.yml`` that describes the generated sources, validated before it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dagster_project.lib.config import CdpConfig, IngestLimits
from dagster_project.lib.generate import vocab
from events.config import FoldSettings
from events.fold import seed_landing

#: Globs below the landing folder; each matches only its own source's files.
SOURCE_GLOBS: dict[str, str] = {
    "crm": "crm/*.csv",
    "shop_accounts": "shop/*.jsonl",
    "web_events": "web/events-*.jsonl",
    "orders": "orders/orders*.csv",
    "order_lines": "orders/order_lines*.csv",
    "email_events": "email/*.jsonl",
    "products": "catalog/products*.csv",
    "price_changes": "catalog/price_changes*.jsonl",
    "offers": "offers/sales-*.csv",
    # written by the real-time fold (events.fold), empty until the first event arrives
    "realtime_events": "realtime/events-*.jsonl",
    "realtime_price_changes": "realtime/price_changes-*.jsonl",
}

#: Where the demo's reference webhook receiver listens for the email channel.
EMAIL_WEBHOOK_URL = "http://127.0.0.1:8025/hooks/email"


def sample_decisions() -> dict[str, Any]:
    """The ``decisions:`` policy for the sample world (``decisions/policy.py`` documents keys).

    Durable categories of the generator's vocabulary are suppressed after a purchase for a third
    of their replacement cycle; consumables and "semi" goods are never suppressed.
    """
    durable = [
        {"categories": [slug], "days": cycle // 3}
        for slug, (kind, cycle) in vocab.CATEGORY_CYCLES.items()
        if kind == "durable"
    ]
    return {
        "period_start_hour": 14,  # the day's flash sales start at 14:00 UTC
        "placements": {
            "daily_email": {
                "channels": ["email", "web", "app", "call_center"],
                "kind": "message",
                "items": 4,
                "wildcard_slots": 1,
                "period": "1d",
                "subject": "daily_subject",
                "blocks": {"intro": "daily_intro"},
            },
            "home_hero": {
                "channels": ["web", "app"],
                "kind": "display",
                "items": 3,
                "wildcard_slots": 1,
                "period": "1d",
            },
            # real-time triggers (``realtime.triggers``): the items are what fired them
            "price_drop": {
                "channels": ["email"],
                "kind": "trigger",
                "items": 1,
                "subject": "price_drop_subject",
                "blocks": {"intro": "price_drop_intro"},
            },
            "cart_reminder": {
                "channels": ["email"],
                "kind": "trigger",
                "items": 3,
                "subject": "cart_reminder_subject",
                "blocks": {"intro": "cart_reminder_intro"},
            },
        },
        "offers": [
            {
                "name": "jewelry_for_valued_customers",
                "sales": {"categories": ["jewelry-accessories"]},
                "segments": ["high_value", "frequent_buyers"],
            }
        ],
        # One promotional email a day and, apart from it, one triggered email (a price drop or
        # a cart reminder) a day; at most 8 messages a week over everything.
        "caps": [
            {
                "name": "email_daily",
                "channels": ["email"],
                "max": 1,
                "window": "24h",
                "placements": ["daily_email"],
            },
            {
                "name": "triggered_email_daily",
                "channels": ["email"],
                "max": 1,
                "window": "24h",
                "placements": ["price_drop", "cart_reminder"],
            },
            {
                "name": "messages_weekly",
                "channels": ["email", "sms", "push"],
                "max": 8,
                "window": "7d",
            },
        ],
        # receptivity sets how many promotional emails a week; a trigger answers what the
        # customer just did, so it is not held back by it (its own cap above limits it)
        "frequency": {
            "channels": ["email"],
            "placements": ["daily_email"],
            "window": "7d",
            "max_sends": 6,
            "min_sends": 1,
        },
        "suppression": durable,
        "exploration": {"share": 0.1},
        "holdout": {"share": 0.05},
        "experiments": [
            {
                "name": "subject_line",
                "placement": "daily_email",
                "arms": [
                    {"name": "control", "weight": 1},
                    {"name": "personal", "weight": 1, "subject": "daily_subject_personal"},
                ],
            }
        ],
        "templates": {
            "daily_subject": {
                "text": "{{ theme }}: {{ top_item_name }} and more",
                "fallbacks": {"theme": "Today's sales", "top_item_name": "new deals"},
            },
            "daily_subject_personal": {
                "text": "Hi {{ first_name }}, new in {{ last_viewed_category }}",
                "fallbacks": {"first_name": "there", "last_viewed_category": "today's sales"},
            },
            "daily_intro": {
                "text": "<p>Hi {{ first_name }}, {{ item_count }} picks from {{ theme }}.</p>",
                "fallbacks": {"first_name": "there", "item_count": "our", "theme": "today's sales"},
            },
            "price_drop_subject": {
                "text": "Price drop: {{ product_name }} is now {{ price }}",
                "fallbacks": {"product_name": "an item you viewed", "price": "cheaper"},
            },
            "price_drop_intro": {
                "text": "<p>Hi {{ first_name }}, {{ product_name }} dropped from "
                "{{ previous_price }} to {{ price }}.</p>",
                "fallbacks": {
                    "first_name": "there",
                    "product_name": "an item you viewed",
                    "previous_price": "its old price",
                    "price": "a lower price",
                },
            },
            "cart_reminder_subject": {
                "text": "{{ product_name }} is still in your cart",
                "fallbacks": {"product_name": "Your picks"},
            },
            "cart_reminder_intro": {
                "text": "<p>Hi {{ first_name }}, your {{ item_count }} item(s) are waiting.</p>",
                "fallbacks": {"first_name": "there", "item_count": "saved"},
            },
        },
    }


def sample_realtime() -> dict[str, Any]:
    """The ``realtime:`` section (``events/config.py`` documents keys): eBay's price drop on a
    viewed item and a cart reminder, both by email through the demo's webhook receiver."""
    return {
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
                "after_minutes": 60,
            },
        ],
        "channels": {"email": {"url": EMAIL_WEBHOOK_URL}},
    }


def sample_config() -> dict[str, Any]:
    """cdp.yml content for the sample world, as plain data."""
    sources: list[dict[str, Any]] = [
        {
            "name": "crm",
            "kind": "people",
            "format": "csv",
            "path": SOURCE_GLOBS["crm"],
            "record_key": "customer_number",
            "description": "CRM / loyalty programme export",
            "trust": 10,
            "mapping": {
                "first_name": "first_name",
                "last_name": "last_name",
                "email": "email",
                "phone": "phone",
                "street_address": "street",
                "city": "city",
                "region": "state",
                "postal_code": "postal_code",
                "country": "country",
                "birth_date": "birth_date",
                "signed_up_at": "signup_date",
                "has_email_consent": "consent_email",
                "has_sms_consent": "consent_sms",
                "has_push_consent": "consent_push",
            },
            "identifiers": {"loyalty_id": "customer_number"},
        },
        {
            "name": "shop_accounts",
            "kind": "people",
            "format": "jsonl",
            "path": SOURCE_GLOBS["shop_accounts"],
            "record_key": "account_id",
            "description": "E-commerce accounts, typed in by customers",
            "trust": 20,
            "mapping": {
                "first_name": "first_name",
                "last_name": "last_name",
                "email": "email",
                "phone": "phone",
                "street_address": "ship_street",
                "city": "ship_city",
                "region": "ship_state",
                "postal_code": "ship_zip",
                "country": "ship_country",
                "signed_up_at": "created_at",
                "has_email_consent": "accepts_marketing",
            },
            "identifiers": {"account_id": "account_id"},
        },
        {
            "name": "web_events",
            "kind": "events",
            "format": "jsonl",
            "path": SOURCE_GLOBS["web_events"],
            "record_key": "event_id",
            "description": "Web analytics events, one file per month",
            "mapping": {
                "event_type": "event_type",
                "occurred_at": "occurred_at",
                "page_url": "url",
                "product_id": "product_id",
                "search_query": "search_query",
                "order_id": "order_id",
                "user_agent": "user_agent",
                "utm_source": "utm_source",
                "utm_medium": "utm_medium",
                "utm_campaign": "utm_campaign",
            },
            "identifiers": {"cookie_id": "cookie_id", "account_id": "account_id"},
        },
        {
            "name": "orders",
            "kind": "orders",
            "format": "csv",
            "path": SOURCE_GLOBS["orders"],
            "record_key": "order_id",
            "description": "Orders placed in the shop",
            "mapping": {
                "order_id": "order_id",
                "ordered_at": "ordered_at",
                "status": "status",
                "currency": "currency",
                "total_amount": "total",
            },
            "identifiers": {"account_id": "account_id"},
        },
        {
            "name": "order_lines",
            "kind": "order_lines",
            "format": "csv",
            "path": SOURCE_GLOBS["order_lines"],
            "record_key": ["order_id", "line_number"],
            "description": "Products of each order at the price paid",
            "mapping": {
                "order_id": "order_id",
                "line_number": "line_number",
                "product_id": "product_id",
                "quantity": "quantity",
                "unit_price": "unit_price",
            },
        },
        {
            "name": "email_events",
            "kind": "email_events",
            "format": "jsonl",
            "path": SOURCE_GLOBS["email_events"],
            "record_key": "event_id",
            "description": "Email service provider engagement export",
            "mapping": {
                "event_type": "event_type",
                "occurred_at": "occurred_at",
                "email": "email",
                "campaign_id": "campaign_id",
                "link_url": "link_url",
            },
        },
        {
            "name": "products",
            "kind": "products",
            "format": "csv",
            "path": SOURCE_GLOBS["products"],
            "record_key": "product_id",
            "description": "Product catalog with current prices",
            "mapping": {
                "product_id": "product_id",
                "product_name": "name",
                "category": "category",
                "brand": "brand",
                "price": "price",
            },
        },
        {
            "name": "price_changes",
            "kind": "price_changes",
            "format": "jsonl",
            "path": SOURCE_GLOBS["price_changes"],
            "record_key": "event_id",
            "description": "Price history: listing prices, sales and rises",
            "mapping": {"product_id": "product_id", "price": "price", "changed_at": "changed_at"},
        },
        {
            "name": "offers",
            "kind": "offers",
            "format": "csv",
            "path": SOURCE_GLOBS["offers"],
            "record_key": "offer_id",
            "description": "Daily flash-sale calendar: one row per product in each sale",
            "mapping": {
                field: field
                for field in (
                    "offer_id",
                    "sale_id",
                    "product_id",
                    "starts_at",
                    "ends_at",
                    "discount_percent",
                    "regular_price",
                    "sale_price",
                    "title",
                    "theme",
                    "brand",
                    "category",
                )
            },
        },
        {
            "name": "realtime_events",
            "kind": "events",
            "format": "jsonl",
            "path": SOURCE_GLOBS["realtime_events"],
            "record_key": "event_id",
            "description": "Events sent to the intake (Segment API), folded from the event log",
            "mapping": {
                field: field
                for field in (
                    "event_type",
                    "occurred_at",
                    "email",
                    "page_url",
                    "product_id",
                    "search_query",
                    "order_id",
                    "utm_source",
                    "utm_medium",
                    "utm_campaign",
                )
            },
            "identifiers": {"cookie_id": "cookie_id", "account_id": "account_id"},
        },
        {
            "name": "realtime_price_changes",
            "kind": "price_changes",
            "format": "jsonl",
            "path": SOURCE_GLOBS["realtime_price_changes"],
            "record_key": "event_id",
            "description": "Price changes sent to the intake, folded from the event log",
            "mapping": {"product_id": "product_id", "price": "price", "changed_at": "changed_at"},
        },
    ]
    return {
        "version": 1,
        "landing": "landing",
        "defaults": {"phone_region": "US", "timezone": "UTC"},
        # Written out (at their defaults) so the limits are found where they are changed.
        "ingest": IngestLimits().model_dump(),
        "sources": sources,
        "decisions": sample_decisions(),
        "realtime": sample_realtime(),
    }


def realtime_seed_paths(out: Path) -> list[Path]:
    """The empty real-time landing files ``write_config`` seeds (for the generation report)."""
    folder = out / "landing" / FoldSettings().folder
    return sorted(p for p in folder.glob("*.jsonl") if p.stat().st_size == 0)


def write_config(out: Path) -> Path:
    """Validate the sample config against the schema, then write ``out/cdp.yml``.

    Also seeds the real-time sources' landing folder with their empty files, so a world that
    never received an event validates and runs like any other.
    """
    data = sample_config()
    CdpConfig.model_validate(data)
    seed_landing(out / str(data["landing"]), FoldSettings())
    target = out / "cdp.yml"
    header = (
        "# Written by `cdp generate` for the sample world. Bringing your own data is editing\n"
        "# this file: each source names its files (a glob below `landing`), its kind, its\n"
        "# record key and which of its columns hold each canonical field. `ingest` bounds\n"
        "# one value (characters) and one record (bytes); a source may set its own.\n"
        "# `decisions` is the personalization policy: placements, offer eligibility, caps,\n"
        "# suppression after purchase, exploration, holdout, experiments and templates.\n"
        "# `realtime` is the event intake's side: triggers (each asks a decisions placement of\n"
        "# kind: trigger), channel webhooks and where the event log is folded (realtime/).\n"
    )
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    target.write_text(header + body, encoding="utf-8")
    return target
