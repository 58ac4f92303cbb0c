"""The suppression list and erasure requests (``privacy.suppression``), and the run lock."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity import IdentitySettings, Normalizer
from privacy.erasure import ErasureBusy, home_lock
from privacy.keys import Keyring, PrivacyKey
from privacy.suppression import (
    COMPLETED,
    PENDING,
    STEP_VERIFIED,
    PrivacyStore,
    Suppression,
    SuppressionCache,
    identifier_columns,
    text_identifiers,
)

NORMALIZE = Normalizer(IdentitySettings()).identifier


@pytest.fixture
def keyring() -> Keyring:
    return Keyring((PrivacyKey.generate(),), origin="test")


def test_a_listed_identifier_matches_in_any_written_form(keyring: Keyring) -> None:
    listed = Suppression.of_identifiers(
        keyring, [("email", "ann@shop.com"), ("phone", "+14155552671")]
    )
    assert listed.matching_values("email", ["  Ann@Shop.COM ", "bob@shop.com"], NORMALIZE) == {
        "  Ann@Shop.COM "
    }
    assert listed.matching_values("phone", ["(415) 555-2671", "415 555 2672"], NORMALIZE) == {
        "(415) 555-2671"
    }
    # the type is inside the hash: the same text under another type is someone else
    assert not listed.matches("account_id", "ann@shop.com")


def test_row_mask_marks_rows_matching_any_person_column(keyring: Keyring) -> None:
    listed = Suppression.of_identifiers(keyring, [("email", "ann@shop.com"), ("account_id", "A-1")])
    table = pa.table(
        {
            "email": ["ANN@shop.com", None, "x@y.com", "ann@shop.com"],
            "account_id": ["A-9", "A-1", None, None],
            "order_id": [1, 2, 3, 4],
        }
    )
    mask = listed.row_mask(table, {"email": "email", "account_id": "account_id"}, NORMALIZE)
    assert mask.to_pylist() == [True, True, False, True]
    empty = Suppression.of(keyring, {})
    assert not any(empty.row_mask(table, {"email": "email"}, NORMALIZE).to_pylist())


def test_free_text_is_checked_token_by_token(keyring: Keyring) -> None:
    listed = Suppression.of_identifiers(
        keyring, [("email", "ann@shop.com"), ("phone", "+14155552671"), ("cookie_id", "ck_42")]
    )
    line = '{"note": "Ann <ANN@shop.com> called from +1 (415) 555-2671 on ck_42"}'
    assert listed.text_matches(line, NORMALIZE) == 3
    assert listed.text_matches('{"note": "bob@shop.com ck_43"}', NORMALIZE) == 0
    kinds = {kind for kind, _ in text_identifiers(line, {"email", "phone"})}
    assert kinds == {"email", "phone"}


def test_identifier_columns_by_name(keyring: Keyring) -> None:
    del keyring
    found = identifier_columns(
        ["customer_id", "related_customer_id", "email", "normalized_email", "city"],
        ["customer_id", "email"],
    )
    assert found == {
        "customer_id": "customer_id",
        "related_customer_id": "customer_id",
        "email": "email",
        "normalized_email": "email",
    }


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=8, unique=True))
def test_matching_is_exact_on_normalized_values(values: list[str]) -> None:
    ring = Keyring((PrivacyKey(b"k" * 32),), origin="test")
    listed = Suppression.of_identifiers(ring, [("account_id", values[0].strip() or "x")])
    for value in values[1:]:
        if value.strip() != values[0].strip():
            assert not listed.matches("account_id", value.strip())


def test_store_keeps_only_hashes_and_rotates(tmp_path: Path, keyring: Keyring) -> None:
    store = PrivacyStore.at(tmp_path)
    subject = keyring.hash("email", "ann@shop.com")
    request = store.create_request(subject, "email", "cli:test")
    listed = Suppression.of_identifiers(keyring, [("email", "ann@shop.com"), ("account_id", "A-1")])
    assert store.add(request, listed.entries) == 2
    assert store.add(request, listed.entries) == 0  # idempotent
    assert store.request(request).status == PENDING  # type: ignore[union-attr]
    store.set_step(request, "lake", STEP_VERIFIED, removed=3)
    store.finish_request(request, COMPLETED, customer_ids=1, identifiers=2, duration_seconds=0.5)
    assert [s.store for s in store.steps(request)] == ["lake"]
    assert store.holder(keyring, "email", "ann@shop.com") == request
    raw = (tmp_path / "privacy" / "privacy.sqlite").read_bytes()
    assert b"ann@shop.com" not in raw and b"A-1" not in raw

    # rotation: every hash moves under the new key and still matches
    rotated = Keyring((PrivacyKey.generate(), *keyring.keys), origin="test")
    report = store.rehash(rotated)
    assert report.rehashed == 3  # two entries and the request's subject
    assert {chain[0] for chain in store.chains()} == {rotated.current.key_id}
    assert store.suppression(rotated).matches("account_id", "A-1")
    assert store.holder(rotated, "email", "ann@shop.com") == request


def test_cache_reloads_when_the_list_grows(tmp_path: Path, keyring: Keyring) -> None:
    cache = SuppressionCache(tmp_path, keyring)
    assert not cache.get()
    assert not (tmp_path / "privacy" / "privacy.sqlite").exists()  # reading creates nothing
    store = PrivacyStore.at(tmp_path)
    request = store.create_request(keyring.hash("email", "a@b.co"), "email", "test")
    store.add(request, Suppression.of_identifiers(keyring, [("email", "a@b.co")]).entries)
    assert cache.get().matches("email", "a@b.co")


def _hold(path: str, seconds: float) -> None:
    with home_lock(Path(path)):
        time.sleep(seconds)


def test_the_run_lock_waits_for_another_process_and_is_reentrant(tmp_path: Path) -> None:
    holder = multiprocessing.get_context("spawn").Process(target=_hold, args=(str(tmp_path), 1.5))
    holder.start()
    deadline = time.monotonic() + 10
    while not (tmp_path / "privacy" / "run.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    waited: list[bool] = []
    with pytest.raises(ErasureBusy), home_lock(tmp_path, timeout=0.2):
        pass
    began = time.monotonic()
    with home_lock(tmp_path, on_wait=lambda: waited.append(True)):
        assert time.monotonic() - began > 0.3
        with home_lock(tmp_path, timeout=0.1):  # re-entrant in this process
            pass
    holder.join(10)
    assert waited == [True]


def test_a_damaged_store_file_is_an_error_not_an_empty_list(
    tmp_path: Path, keyring: Keyring
) -> None:
    path = tmp_path / "privacy" / "privacy.sqlite"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        PrivacyStore.at(tmp_path).suppression(keyring)


def test_reopen_marks_completed_requests_incomplete(tmp_path: Path, keyring: Keyring) -> None:
    store = PrivacyStore.at(tmp_path)
    assert store.reopen() == []  # no store yet: nothing, and nothing created
    done = store.create_request(keyring.hash("email", "a@b.co"), "email", "test")
    store.finish_request(done, COMPLETED, customer_ids=1, identifiers=1, duration_seconds=1.0)
    waiting = store.create_request(keyring.hash("email", "c@d.co"), "email", "test")
    assert store.reopen() == [done]
    assert store.request(done).status == "incomplete"  # type: ignore[union-attr]
    assert store.request(waiting).status == PENDING  # type: ignore[union-attr]
