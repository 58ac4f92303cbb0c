"""The intake drops erased persons over real HTTP (``cdp serve``, 2 workers): an event or a
failed input naming a listed identifier is answered as usual but never stored, and counted in
``cdp_intake_suppressed_total``; everyone else's events are stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from events.log import SqliteEventLog
from events.write_keys import create_write_key
from privacy.keys import Keyring, load_keyring
from privacy.suppression import PrivacyStore
from tests.conftest import TEST_PRIVACY_KEY
from tests.support.api_harness import Server, start_server, stop_server

pytestmark = pytest.mark.e2e

ERASED_EMAIL = "erased.person@shopmail.com"
ERASED_COOKIE = "ck_erased_device"


@dataclass
class Intake:
    server: Server
    home: Path
    key: str
    keyring: Keyring

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(
            self.server.url + path,
            content=orjson.dumps(body),
            auth=(self.key, ""),
            headers={"content-type": "application/json"},
            timeout=10,
        )

    def list_person(self) -> None:
        """What an erasure request adds: the keyed hashes of their identifiers."""
        PrivacyStore.at(self.home).add(
            "er_test",
            {
                self.keyring.hash("email", ERASED_EMAIL): "email",
                self.keyring.hash("cookie_id", ERASED_COOKIE): "cookie_id",
            },
        )

    def stored(self) -> set[str]:
        with SqliteEventLog(self.home / "events" / "log.sqlite") as log:
            return {e.message_id for e in log.read(0, 1_000_000)}

    def failed_bodies(self) -> list[bytes]:
        with SqliteEventLog(self.home / "events" / "log.sqlite") as log:
            return [bytes(f.body) for f in log.failed(limit=1_000, after_id=0)]

    def suppressed(self) -> float:
        text = httpx.get(self.server.url + "/metrics", timeout=10).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            if family.name == "cdp_intake_suppressed":
                for sample in family.samples:
                    if sample.name == "cdp_intake_suppressed_total":
                        assert sample.labels == {"source": "web", "reason": "erased_person"}
                        total += sample.value
        return total


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Intake]:
    tmp_path = tmp_path_factory.mktemp("suppression")
    home = tmp_path / "home"
    home.mkdir()
    key = create_write_key(home / "write_keys.yml", "web")
    server = start_server(home, tmp_path, workers=2, env={"CDP_API_METRICS_PUBLIC": "true"})
    try:
        yield Intake(server, home, key, load_keyring(home, TEST_PRIVACY_KEY))
    finally:
        stop_server(server)


def mid() -> str:
    return f"m-{uuid.uuid4()}"


def identify(message_id: str, email: str, cookie: str = "ck_any") -> dict[str, Any]:
    return {"messageId": message_id, "anonymousId": cookie, "traits": {"email": email}}


def test_erased_persons_are_acknowledged_but_never_stored(intake: Intake) -> None:
    # before the erasure the person's events are stored like anyone's
    before = mid()
    assert intake.post("/v1/identify", identify(before, ERASED_EMAIL)).status_code == 200
    assert before in intake.stored()
    assert intake.suppressed() == 0

    intake.list_person()  # while the server runs: the workers reload the list

    by_email, by_cookie, other = mid(), mid(), mid()
    # the email written differently still matches (normalized as identity does)
    answer = intake.post("/v1/identify", identify(by_email, "  Erased.Person@ShopMail.COM "))
    assert (answer.status_code, answer.json()) == (200, {"success": True})
    answer = intake.post(
        "/v1/track",
        {"messageId": by_cookie, "anonymousId": ERASED_COOKIE, "event": "Signed In"},
    )
    assert (answer.status_code, answer.json()) == (200, {"success": True})
    answer = intake.post("/v1/identify", identify(other, "someone.else@shopmail.com"))
    assert answer.status_code == 200
    stored = intake.stored()
    assert other in stored
    assert by_email not in stored and by_cookie not in stored
    assert intake.suppressed() == 2

    # a batch: the erased person's item is acknowledged as accepted, the other stored
    mine, theirs = mid(), mid()
    answer = intake.post(
        "/v1/batch",
        {
            "batch": [
                {"type": "page", "messageId": mine, "anonymousId": ERASED_COOKIE},
                {"type": "page", "messageId": theirs, "anonymousId": "ck_someone"},
            ]
        },
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "success": True,
        "accepted": 2,
        "duplicate": 0,
        "failed": 0,
        "failures": [],
    }
    stored = intake.stored()
    assert theirs in stored and mine not in stored
    assert intake.suppressed() == 3

    # bad input naming them is answered as any bad input, but not kept as a failed event
    answer = intake.post(
        "/v1/identify",
        {**identify(mid(), ERASED_EMAIL), "timestamp": "not a time"},
    )
    assert answer.status_code == 400 and answer.json()["error"]["reason"] == "invalid_field"
    answer = intake.post(
        "/v1/identify",
        {**identify(mid(), "kept.failure@shopmail.com"), "timestamp": "not a time"},
    )
    assert answer.status_code == 400
    bodies = b"".join(intake.failed_bodies())
    assert b"kept.failure@shopmail.com" in bodies
    assert b"erased.person" not in bodies.lower()
    assert intake.suppressed() == 4

    # a later erasure: the running workers see the list change (no restart)
    later = mid()
    PrivacyStore.at(intake.home).add(
        "er_later", {intake.keyring.hash("account_id", "ACC-LATER"): "account_id"}
    )
    answer = intake.post("/v1/track", {"messageId": later, "userId": "ACC-LATER", "event": "X"})
    assert answer.status_code == 200
    assert later not in intake.stored()
    assert intake.suppressed() == 5


def test_an_app_without_the_privacy_key_refuses_a_non_empty_list(tmp_path: Path) -> None:
    from api.main import create_app
    from api.settings import ApiSettings
    from privacy.keys import PrivacyKeyError

    home = tmp_path / "home"
    home.mkdir()
    settings = ApiSettings(
        home=home,
        privacy_key=None,
        privacy_key_file=tmp_path / "no_key",
        api_audit_dir=tmp_path / "audit",
    )
    keyring = load_keyring(home, TEST_PRIVACY_KEY)
    PrivacyStore.at(home).add("er_test", {keyring.hash("email", ERASED_EMAIL): "email"})
    with pytest.raises(PrivacyKeyError, match="suppression list"):
        create_app(settings)
