"""The privacy key: keyed hashes (stable, typed, key-dependent), where the key comes from, and
rotation through a real SQLite store of hashes."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privacy.keys import (
    Keyring,
    PrivacyKey,
    PrivacyKeyError,
    RehashReport,
    create_key_file,
    default_key_path,
    keyed_hash,
    load_keyring,
    parse_hash,
    retire_key,
    rotate_key_file,
)

KEY = PrivacyKey(bytes(range(32)))
OTHER = PrivacyKey(bytes(range(1, 33)))


def test_keyed_hash_is_stable_versioned_and_names_its_key() -> None:
    value = keyed_hash(KEY, "email", "ann@shop.com")
    assert value == keyed_hash(KEY, "email", "ann@shop.com")
    parsed = parse_hash(value)
    assert value.startswith(f"kh1:{KEY.key_id}:")
    assert parsed.chain == (KEY.key_id,) and len(parsed.digest) == 32
    assert "ann" not in value and "shop" not in value


def test_keyed_hash_construction_is_pinned() -> None:
    """The construction is part of the stored data's format: it must never change silently
    (HMAC-SHA256 over "kh1", then type and value each with a 4-byte big-endian length)."""
    message = b"kh1" + (5).to_bytes(4, "big") + b"email" + (12).to_bytes(4, "big")
    message += b"ann@shop.com"
    digest = hmac.new(KEY.secret, message, hashlib.sha256).hexdigest()
    assert keyed_hash(KEY, "email", "ann@shop.com") == f"kh1:{KEY.key_id}:{digest}"
    assert keyed_hash(KEY, "email", "ann@shop.com") == (
        "kh1:337c2ebc0c1c:feb87d0c72b6b52e78d66ca83d191156151325f320a3edab5475d3d6e1997fd1"
    )


def test_keyed_hash_is_typed_and_key_dependent() -> None:
    assert keyed_hash(KEY, "email", "x") != keyed_hash(KEY, "account_id", "x")
    # length-prefixed: no (type, value) pair can be spelled as another
    assert keyed_hash(KEY, "ab", "c") != keyed_hash(KEY, "a", "bc")
    assert keyed_hash(KEY, "email", "ann@shop.com") != keyed_hash(OTHER, "email", "ann@shop.com")
    assert KEY.key_id != OTHER.key_id
    assert KEY.secret.hex() not in repr(KEY)
    with pytest.raises(ValueError, match="identifier_type is empty"):
        keyed_hash(KEY, "", "x")


@given(
    st.tuples(st.sampled_from(["email", "phone", "account_id"]), st.text(max_size=40)),
    st.tuples(st.sampled_from(["email", "phone", "account_id"]), st.text(max_size=40)),
)
def test_distinct_identifiers_never_share_a_hash(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    same = keyed_hash(KEY, *first) == keyed_hash(KEY, *second)
    assert same == (first == second)


def test_short_or_malformed_keys_are_refused() -> None:
    with pytest.raises(PrivacyKeyError, match="at least 32 bytes"):
        PrivacyKey(b"short")
    with pytest.raises(PrivacyKeyError, match="hex text"):
        PrivacyKey.from_hex("not hex at all", where="test")
    with pytest.raises(PrivacyKeyError, match="listed twice"):
        Keyring((KEY, KEY))


def test_rehash_wraps_under_the_new_key_and_still_matches() -> None:
    old_ring = Keyring((KEY,))
    stored = old_ring.hash("phone", "+14155550123")
    ring = Keyring((OTHER, KEY))
    moved = ring.rehash(stored)
    assert moved != stored and parse_hash(moved).chain == (OTHER.key_id, KEY.key_id)
    assert ring.rehash(moved) == moved  # already current
    assert ring.matches(moved, "phone", "+14155550123")
    assert not ring.matches(moved, "phone", "+14155550124")
    assert moved in ring.candidates("phone", "+14155550123", [parse_hash(moved).chain])
    # the wrapped hash depends on the new key: a keyring with only the old key cannot make it
    with pytest.raises(PrivacyKeyError, match="no key"):
        old_ring.matches(moved, "phone", "+14155550123")
    # a second rotation wraps again; the whole chain is needed to match
    third = PrivacyKey(bytes(range(2, 34)))
    ring3 = Keyring((third, OTHER, KEY))
    twice = ring3.rehash(moved)
    assert parse_hash(twice).chain == (third.key_id, OTHER.key_id, KEY.key_id)
    assert ring3.matches(twice, "phone", "+14155550123")
    assert ring3.key_ids_in([twice]) == {third.key_id, OTHER.key_id, KEY.key_id}


def test_keys_come_from_the_variable_then_the_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with pytest.raises(PrivacyKeyError) as missing:
        load_keyring(home)
    message = str(missing.value)
    assert "cdp privacy key create" in message and "CDP_PRIVACY_KEY" in message
    assert str(default_key_path(home)) in message
    created = create_key_file(default_key_path(home))
    assert created is not None
    assert load_keyring(home).current == created.current
    # the variable wins, and may list older keys after the current one
    ring = load_keyring(home, key=f"{OTHER.secret.hex()}, {KEY.secret.hex()}")
    assert ring.keys == (OTHER, KEY) and ring.origin == "CDP_PRIVACY_KEY"
    # a named file that does not exist is named in the error
    with pytest.raises(PrivacyKeyError, match="CDP_PRIVACY_KEY_FILE="):
        load_keyring(home, key_file=tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.write_text("# only a comment\n")
    with pytest.raises(PrivacyKeyError, match="holds no key"):
        load_keyring(home, key_file=bad)


def test_the_key_file_is_private_and_never_replaced(tmp_path: Path) -> None:
    path = default_key_path(tmp_path)
    first = create_key_file(path)
    assert first is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert first.current.secret.hex() in text and first.current.key_id in text
    assert create_key_file(path) is None
    assert path.read_text() == text


class SqliteHashStore:
    """A store of keyed hashes as the erasure requests and suppression list keep them."""

    name = "test_suppression"

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("create table if not exists hashes (hash text primary key) strict")

    def add(self, value: str) -> None:
        self.conn.execute("insert into hashes values (?)", (value,))

    def all(self) -> list[str]:
        return [r[0] for r in self.conn.execute("select hash from hashes order by hash")]

    def chains(self) -> set[tuple[str, ...]]:
        return {parse_hash(h).chain for h in self.all()}

    def contains(self, keyring: Keyring, kind: str, value: str) -> bool:
        forms = keyring.candidates(kind, value, self.chains())
        marks = ", ".join("?" * len(forms))
        row = self.conn.execute(f"select 1 from hashes where hash in ({marks})", list(forms))
        return row.fetchone() is not None

    def rehash(self, keyring: Keyring) -> RehashReport:
        moved = unchanged = 0
        self.conn.execute("begin immediate")
        for old in self.all():
            new = keyring.rehash(old)
            if new == old:
                unchanged += 1
                continue
            self.conn.execute("update hashes set hash = ? where hash = ?", (new, old))
            moved += 1
        self.conn.execute("commit")
        return RehashReport(self.name, moved, unchanged)


def test_rotation_rehashes_a_store_and_everything_still_matches(tmp_path: Path) -> None:
    path = default_key_path(tmp_path)
    original = create_key_file(path)
    assert original is not None
    store = SqliteHashStore(tmp_path / "store.sqlite")
    people = [("email", f"p{i}@shop.com") for i in range(50)]
    for kind, value in people:
        store.add(original.hash(kind, value))
    before = store.all()

    keyring, reports = rotate_key_file(path, [store])
    assert reports == [RehashReport("test_suppression", 50, 0)]
    assert keyring.current != original.current and keyring.keys[1:] == original.keys
    assert load_keyring(tmp_path, key_file=path).keys == keyring.keys  # written, current first
    after = store.all()
    assert not set(before) & set(after)
    assert all(parse_hash(h).chain[0] == keyring.current.key_id for h in after)
    assert all(store.contains(keyring, kind, value) for kind, value in people)
    assert not store.contains(keyring, "email", "stranger@shop.com")
    # a hash made after the rotation (under the new key) matches beside the wrapped ones
    store.add(keyring.hash("email", "new@shop.com"))
    assert store.contains(keyring, "email", "new@shop.com")
    # re-hashing again changes nothing
    again, reports = rotate_key_file(path, [])
    assert reports == [] and len(again.keys) == 3


def test_an_older_key_is_retired_only_when_no_stored_hash_needs_it(tmp_path: Path) -> None:
    path = default_key_path(tmp_path)
    original = create_key_file(path)
    assert original is not None
    old_id = original.current.key_id
    store = SqliteHashStore(tmp_path / "store.sqlite")
    store.add(original.hash("email", "gone@shop.com"))
    keyring, _ = rotate_key_file(path, [store])
    with pytest.raises(PrivacyKeyError, match="is the current key"):
        retire_key(path, keyring.current.key_id, [store])
    with pytest.raises(PrivacyKeyError, match="still needed to match hashes held by test_supp"):
        retire_key(path, old_id, [store])
    with pytest.raises(PrivacyKeyError, match="no key 'feedfacecafe'"):
        retire_key(path, "feedfacecafe", [store])
    assert load_keyring(tmp_path, key_file=path).keys == keyring.keys  # nothing changed
    # once the entry is gone (e.g. past its retention), the old key can go
    store.conn.execute("delete from hashes")
    kept = retire_key(path, old_id, [store])
    assert kept.keys == (keyring.current,)
    assert load_keyring(tmp_path, key_file=path).keys == (keyring.current,)
