"""``privacy.erasure``: a request listed before anything is removed, every store erased and
verified, a second request harmless, an unknown person holding nothing, a shared identifier
left off the list, a failing store recorded without stopping the others, and the run lock."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from privacy.access import PersonRef, export_person
from privacy.erase_derived import derived_erasers
from privacy.erase_events import EventsEraser
from privacy.erasure import ErasureBusy, carry_out, erase, home_lock
from privacy.keys import Keyring, load_keyring
from privacy.stores import Eraser
from privacy.suppression import (
    COMPLETED,
    CUSTOMER_ID_TYPE,
    INCOMPLETE,
    NOTHING_HELD,
    STEP_FAILED,
    PrivacyStore,
    store_normalizer,
)
from tests.support.api_world import HOUSEHOLD, customer_id, email, phone
from tests.support.stream_world import StreamWorld, make_world

PERSON = HOUSEHOLD[1]  # shares a phone with HOUSEHOLD[0]
OTHER = HOUSEHOLD[0]


@pytest.fixture
def world(tmp_path: Path) -> StreamWorld:
    return make_world(tmp_path / "home")


@pytest.fixture
def keyring(world: StreamWorld) -> Keyring:
    return load_keyring(world.home, os.environ["CDP_PRIVACY_KEY"])


def _erasers(home: Path) -> list[Eraser]:
    normalize = store_normalizer(home)
    return [EventsEraser(home, normalize), *derived_erasers(home, normalize)]


def test_a_person_is_listed_erased_everywhere_and_verified(
    world: StreamWorld, keyring: Keyring
) -> None:
    home = world.home
    ref = PersonRef(identifier_type="email", value=email(PERSON).upper())
    result = erase(home, ref, keyring, _erasers(home), requested_by="test")
    assert result.status == COMPLETED, result
    assert {step.store for step in result.steps} >= {"serving", "warehouse", "decisions"}
    assert all(step.scan.remaining == 0 for step in result.steps)
    assert result.removed > 0
    # the household phone is the other customer's too: not listed, and they are intact
    assert "left off the list" in result.message
    listed = PrivacyStore.at(home).suppression(keyring)
    assert listed.matches("email", email(PERSON))
    assert listed.matches(CUSTOMER_ID_TYPE, customer_id(PERSON))
    assert not listed.matches("phone", phone(PERSON))
    assert not export_person(home, ref)["found"]
    other = export_person(home, PersonRef(customer_id=customer_id(OTHER)))
    assert other["found"] and other["profile"]["golden_record"] is not None
    steps = PrivacyStore.at(home).steps(result.request_id)
    assert {s.store for s in steps} == {s.store for s in result.steps}

    again = erase(
        home,
        PersonRef(customer_id=customer_id(PERSON)),
        keyring,
        _erasers(home),
        requested_by="test",
    )
    assert again.already_erased_by == result.request_id
    assert again.request_id == result.request_id and again.removed == 0
    assert "already erased" in again.message
    assert len(PrivacyStore.at(home).requests()) == 1


def test_an_unknown_person_holds_nothing_and_lists_nothing(
    world: StreamWorld, keyring: Keyring
) -> None:
    ref = PersonRef(identifier_type="email", value="nobody.here@example.org")
    result = erase(world.home, ref, keyring, _erasers(world.home), requested_by="test")
    assert result.status == NOTHING_HELD and "nothing held" in result.message
    assert result.removed == 0
    assert not PrivacyStore.at(world.home).hashes()
    (request,) = PrivacyStore.at(world.home).requests()
    assert request.status == NOTHING_HELD


def test_a_failing_store_is_recorded_and_the_request_carried_out_again(
    world: StreamWorld, keyring: Keyring
) -> None:
    home = world.home
    warehouse = home / "warehouse.duckdb"
    saved = warehouse.read_bytes()
    warehouse.write_bytes(b"this is not a database" * 100)
    ref = PersonRef(identifier_type="email", value=email(PERSON))
    result = erase(home, ref, keyring, _erasers(home), requested_by="test")
    assert result.status == INCOMPLETE
    failed = [s for s in result.steps if s.status == STEP_FAILED]
    assert [s.store for s in failed] == ["warehouse"] and failed[0].error
    assert next(s for s in result.steps if s.store == "serving").status == "verified"
    assert "warehouse" in result.message

    warehouse.write_bytes(saved)  # the operator repairs it; the pipeline carries it out again
    again = carry_out(home, result.request_id, keyring, _erasers(home))
    assert again.status == COMPLETED
    assert PrivacyStore.at(home).request(result.request_id).status == COMPLETED  # type: ignore[union-attr]


def _hold(home: str, seconds: float) -> None:
    with home_lock(Path(home)):
        time.sleep(seconds)


def test_an_erasure_waits_for_a_run_in_progress(world: StreamWorld, keyring: Keyring) -> None:
    holder = multiprocessing.get_context("spawn").Process(target=_hold, args=(str(world.home), 2.0))
    holder.start()
    lock = world.home / "privacy" / "run.lock"
    deadline = time.monotonic() + 10
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    waited: list[float] = []
    began = time.monotonic()
    result = erase(
        world.home,
        PersonRef(identifier_type="email", value=email(PERSON)),
        keyring,
        _erasers(world.home),
        requested_by="test",
        on_wait=lambda: waited.append(time.monotonic() - began),
    )
    holder.join(10)
    assert waited and waited[0] < 0.5  # it said it was waiting, at once
    assert result.status == COMPLETED
    assert time.monotonic() - began > 1.0  # and went on only after the run let go


def test_an_erasure_waits_for_work_the_lock_does_not_cover(
    world: StreamWorld, keyring: Keyring
) -> None:
    """A run the Dagster daemon launched does not hold the lock: ``busy`` names it."""
    answers = iter(["Dagster run r1 (cdp_full_refresh)", "Dagster run r1 (cdp_full_refresh)"])
    told: list[bool] = []
    result = erase(
        world.home,
        PersonRef(identifier_type="email", value=email(PERSON)),
        keyring,
        _erasers(world.home),
        requested_by="test",
        on_wait=lambda: told.append(True),
        busy=lambda: next(answers, None),
    )
    assert told == [True] and result.status == COMPLETED
    with pytest.raises(ErasureBusy, match="r1"):
        erase(
            world.home,
            PersonRef(identifier_type="email", value=email(OTHER)),
            keyring,
            _erasers(world.home),
            requested_by="test",
            lock_timeout=0.5,
            busy=lambda: "Dagster run r1 (cdp_full_refresh)",
        )
    assert PrivacyStore.at(world.home).suppression(keyring).matches("email", email(PERSON))
    assert not PrivacyStore.at(world.home).suppression(keyring).matches("email", email(OTHER))
