"""The Segment HTTP tracking API over a real ``cdp serve`` (2 workers): the official client,
every bad input of issue 14, replays, revoked keys and the intake metrics."""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from segment.analytics import Client

from events.log import SqliteEventLog
from events.types import EventKind
from events.write_keys import create_write_key, revoke_write_key
from tests.support.api_harness import Server, start_server, stop_server

pytestmark = pytest.mark.e2e


@dataclass
class Intake:
    server: Server
    home: Path
    key: str

    @property
    def log_path(self) -> Path:
        return self.home / "events" / "log.sqlite"

    def post(self, path: str, body: Any, *, key: str | None = "", **kwargs: Any) -> httpx.Response:
        auth = (self.key if key == "" else key, "") if key is not None else None
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return httpx.post(
            self.server.url + path,
            content=content,
            auth=auth,
            headers={"content-type": "application/json", **kwargs.pop("headers", {})},
            timeout=10,
            **kwargs,
        )


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Intake]:
    """One two-worker server for the module over an empty CDP_HOME with a write key."""
    tmp_path = tmp_path_factory.mktemp("intake")
    home = tmp_path / "home"
    home.mkdir()
    key = create_write_key(home / "write_keys.yml", "web")
    server = start_server(home, tmp_path, workers=2, env={"CDP_API_METRICS_PUBLIC": "true"})
    try:
        yield Intake(server=server, home=home, key=key)
    finally:
        stop_server(server)


def mid() -> str:
    return f"m-{uuid.uuid4()}"


def stored(intake: Intake) -> dict[str, Any]:
    with SqliteEventLog(intake.log_path) as log:
        return {e.message_id: e for e in log.read(0, 1_000_000)}


def failed_reasons(intake: Intake) -> dict[str, int]:
    with SqliteEventLog(intake.log_path) as log:
        return log.failed_counts()


def test_official_segment_client_events_land_with_their_kinds(intake: Intake) -> None:
    errors: list[Exception] = []
    client = Client(
        write_key=intake.key,
        host=intake.server.url,
        sync_mode=True,
        max_retries=0,
        on_error=lambda error, _batch: errors.append(error),
    )
    anonymous = f"ck_{uuid.uuid4().hex[:8]}"
    _, track = client.track(
        anonymous_id=anonymous,
        event="Product Viewed",
        properties={"product_id": "sku-1", "price": 19.99, "name": "Mug"},
    )
    _, identify = client.identify(
        user_id="ACC-11", anonymous_id=anonymous, traits={"email": "person11@shopmail.com"}
    )
    _, page = client.page(anonymous_id=anonymous, name="Home")
    _, custom = client.track(user_id="ACC-11", event="Wishlist Shared")
    assert errors == []
    log = stored(intake)
    assert log[track["messageId"]].kind is EventKind.PRODUCT_VIEW
    assert log[track["messageId"]].products[0].product_id == "sku-1"
    assert log[track["messageId"]].source == "web"
    assert log[identify["messageId"]].kind is EventKind.IDENTIFY
    assert log[identify["messageId"]].identifiers == {
        "account_id": "ACC-11",
        "cookie_id": anonymous,
        "email": "person11@shopmail.com",
    }
    assert log[page["messageId"]].kind is EventKind.PAGE_VIEW
    assert log[custom["messageId"]].kind is EventKind.CUSTOM
    assert log[custom["messageId"]].event == "Wishlist Shared"
    # the client's timestamp was kept (skew-corrected with its sentAt, which is close)
    sent = log[track["messageId"]]
    assert abs((sent.received_at - sent.occurred_at).total_seconds()) < 5


def test_gzip_body_and_write_key_in_the_body(intake: Intake) -> None:
    first, second = mid(), mid()
    body = {"batch": [{"type": "page", "userId": "u1", "messageId": first}]}
    zipped = intake.post(
        "/v1/batch", gzip.compress(orjson.dumps(body)), headers={"content-encoding": "gzip"}
    )
    assert zipped.status_code == 200 and zipped.json()["accepted"] == 1
    in_body = intake.post(
        "/v1/batch",
        {"writeKey": intake.key, "batch": [{"type": "page", "userId": "u", "messageId": second}]},
        key=None,
    )
    assert in_body.status_code == 200, in_body.text
    bad_gzip = intake.post("/v1/track", b"not gzip", headers={"content-encoding": "gzip"})
    assert bad_gzip.status_code == 400 and bad_gzip.json()["error"]["reason"] == "invalid_json"
    assert {first, second} <= set(stored(intake))


def test_every_bad_input_gets_its_answer_and_spares_the_batch(intake: Intake) -> None:
    before = failed_reasons(intake)
    # malformed JSON, single and batch
    for path in ("/v1/track", "/v1/batch"):
        answer = intake.post(path, b'{"type": "track", ')
        assert answer.status_code == 400
        assert answer.json() == {
            "success": False,
            "error": {"reason": "invalid_json", "detail": answer.json()["error"]["detail"]},
        }
    # an oversized single event: 400, kept (truncated)
    huge = {"userId": "u", "event": "X", "properties": {"blob": "x" * 40_000}}
    answer = intake.post("/v1/track", huge)
    assert answer.status_code == 400 and answer.json()["error"]["reason"] == "event_too_large"
    # an oversized batch: 413 before reading it all, kept as batch_too_large
    big_batch = {"batch": [{"type": "page", "userId": "u", "p": "y" * 20_000}] * 30}
    answer = intake.post("/v1/batch", big_batch)
    assert answer.status_code == 413 and answer.json()["error"]["reason"] == "batch_too_large"
    # ... also when streamed without a content-length
    chunks = iter([b'{"batch": ['] + [b'{"type": "page", "userId": "u"},' * 1000] * 40)
    answer = httpx.post(
        intake.server.url + "/v1/batch", content=chunks, auth=(intake.key, ""), timeout=10
    )
    assert answer.status_code == 413
    # a far-future timestamp
    answer = intake.post("/v1/page", {"userId": "u", "timestamp": "2999-01-01T00:00:00Z"})
    assert answer.status_code == 400 and answer.json()["error"]["reason"] == "future_timestamp"
    # missing and wrong write keys: 401, nothing kept
    assert intake.post("/v1/page", {"userId": "u"}, key=None).status_code == 401
    answer = intake.post("/v1/page", {"userId": "u"}, key="wk_wrong")
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Basic")
    # a messageId reused with another payload
    reused = mid()
    assert intake.post("/v1/page", {"userId": "u", "messageId": reused}).status_code == 200
    answer = intake.post("/v1/page", {"userId": "v", "messageId": reused})
    assert answer.status_code == 400 and answer.json()["error"]["reason"] == "message_id_conflict"
    # the same inside a batch, with an unknown type and good events around them
    good = [mid(), mid()]
    answer = intake.post(
        "/v1/batch",
        {
            "batch": [
                {"type": "track", "event": "Cart Viewed", "userId": "u", "messageId": good[0]},
                {"type": "purchase", "userId": "u", "messageId": mid()},
                {"type": "page", "userId": "w", "messageId": reused},
                {"type": "page", "userId": "u", "timestamp": "2999-01-01T00:00:00Z"},
                {
                    "type": "track",
                    "event": "Product Added",
                    "userId": "u",
                    "messageId": good[1],
                    "properties": {"product_id": "p9", "quantity": 2},
                },
            ]
        },
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["accepted"], result["duplicate"], result["failed"]) == (2, 0, 3)
    assert [(f["index"], f["reason"]) for f in result["failures"]] == [
        (1, "unknown_type"),
        (2, "message_id_conflict"),
        (3, "future_timestamp"),
    ]
    log = stored(intake)
    assert log[good[0]].kind is EventKind.CART_VIEW
    assert log[good[1]].kind is EventKind.ADD_TO_CART and log[good[1]].products[0].quantity == 2
    assert log[reused].user_id == "u"  # the first payload stays
    after = failed_reasons(intake)
    grew = {reason: after.get(reason, 0) - before.get(reason, 0) for reason in after}
    assert grew == {
        "invalid_json": 2,
        "event_too_large": 1,
        "batch_too_large": 2,
        "future_timestamp": 2,
        "message_id_conflict": 2,
        "unknown_type": 1,
    }
    with SqliteEventLog(intake.log_path) as kept:
        for record in kept.failed(limit=1000):
            assert len(record.body) <= 32 * 1024


def test_replaying_the_same_batch_changes_nothing(intake: Intake) -> None:
    batch = {
        "sentAt": "2026-11-02T12:00:00Z",
        "batch": [
            {
                "type": "track",
                "event": "Product Viewed",
                "anonymousId": "ck_r",
                "properties": {"product_id": f"p{n}"},
                "messageId": mid(),
            }
            for n in range(20)
        ]
        + [{"type": "page", "anonymousId": "ck_r", "properties": {"n": 1}}],  # no messageId
    }
    first = intake.post("/v1/batch", batch)
    assert first.json()["accepted"] == 21
    with SqliteEventLog(intake.log_path) as log:
        head, failed = log.head(), log.stats().failed
    # a retry sends a new sentAt: still the same events
    replay = intake.post("/v1/batch", {**batch, "sentAt": "2026-11-02T12:00:09Z"})
    assert replay.json() == {
        "success": True,
        "accepted": 0,
        "duplicate": 21,
        "failed": 0,
        "failures": [],
    }
    with SqliteEventLog(intake.log_path) as log:
        assert (log.head(), log.stats().failed) == (head, failed)


def test_revoked_key_is_refused_within_a_poll(intake: Intake) -> None:
    path = intake.home / "write_keys.yml"
    other = create_write_key(path, "orders")
    deadline = time.monotonic() + 10
    while intake.post("/v1/page", {"userId": "u"}, key=other).status_code != 200:
        assert time.monotonic() < deadline, "a new key was not picked up"
        time.sleep(0.1)
    revoke_write_key(path, "orders")
    deadline = time.monotonic() + 10
    while intake.post("/v1/page", {"userId": "u"}, key=other).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key kept working"
        time.sleep(0.1)
    # every worker stopped accepting it once its own poll (0.2 s here) came round
    time.sleep(1.0)
    assert all(
        intake.post("/v1/page", {"userId": "u"}, key=other).status_code == 401 for _ in range(10)
    )


def test_methods_and_paths(intake: Intake) -> None:
    assert httpx.get(intake.server.url + "/v1/track").status_code == 405
    assert intake.post("/v1/nothing", {}).status_code == 404


def test_intake_metrics(intake: Intake) -> None:
    intake.post("/v1/page", {"userId": "u"}, key="wk_wrong")
    intake.post("/v1/page", {"userId": "u", "messageId": mid()})
    intake.post("/v1/page", {"type": "page"})
    text = httpx.get(intake.server.url + "/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("cdp_intake_events_total", source="web", kind="page_view") >= 1
    assert value("cdp_intake_unauthorized_requests_total") >= 1
    assert value("cdp_intake_failed_events_total", reason="missing_field") >= 1
    assert value("cdp_intake_commit_group_size_count") >= 1
    assert value("cdp_intake_commit_duration_seconds_count") >= 1
    assert value("cdp_api_http_requests_total", path="/v1/page", status_code="200") >= 1
