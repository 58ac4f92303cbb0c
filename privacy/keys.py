"""The privacy key: keyed hashes (HMAC-SHA256) of personal identifiers, and how it rotates.

Requests and suppression lists must recognise a person without holding their email or phone in
plain text, and a plain SHA-256 of an address is no protection (anyone can hash a list of
candidate addresses). A keyed hash under a secret only this installation holds is: equal
identifiers give equal hashes, nothing can be read back or guessed without the key.

**Where the key comes from** (the platform refuses to start without one, outside the demo):
``CDP_PRIVACY_KEY`` (hex; several keys comma-separated, the current one first), else the file
``CDP_PRIVACY_KEY_FILE``, else ``CDP_HOME/secrets/privacy_key``. The file holds one hex key per
line, the current key first, older keys after it (kept for matching); ``#`` starts a comment.
``cdp privacy key create`` writes it (mode 0600); it is never created implicitly, so a
production install without a key fails at start instead of silently making one per machine.

**A hash** reads ``kh1:<key ids>:<64 hex>``: ``kh1`` versions the construction (HMAC-SHA256 of
the length-prefixed identifier type and normalized value, so ``email:x`` and ``account_id:x``
never collide), the key ids say which keys made it. A key id is a fingerprint of the key (an
HMAC of a fixed label), so it names the key without revealing it and needs no bookkeeping.

**Rotation** (``cdp privacy key rotate``): a new key is added as current, the old ones stay in
the key file, and every privacy store re-hashes what it holds through :class:`HashedStore`. An
HMAC cannot be recomputed under a new key without the identifier, and the stores keep no
identifiers, so a store re-hashes a stored hash by *wrapping* it: ``kh1:new.old:HMAC(new,
old digest)``. After a rotation every stored hash depends on the new key (a leaked old key alone
no longer lets anyone test candidate addresses against the stores), while matching still works:
:meth:`Keyring.hash_under` recomputes any chain from the identifier. An old key therefore stays
in the key file for as long as some stored hash names it (``Keyring.keys`` lists it as not
current); it is never used to make a new hash.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

from pydantic import BaseModel, Field, SecretStr

#: Version tag of the keyed-hash construction (first field of every hash).
HASH_VERSION: Final[str] = "kh1"
#: Bytes of a generated key (256 bits, the HMAC-SHA256 block's natural key size).
KEY_BYTES: Final[int] = 32
#: Shortest key accepted.
MIN_KEY_BYTES: Final[int] = 32
#: The key file under CDP_HOME when neither variable names a key.
DEFAULT_KEY_FILE: Final[str] = "secrets/privacy_key"
#: Environment variables the settings read (named in messages).
KEY_VARIABLE: Final[str] = "CDP_PRIVACY_KEY"
KEY_FILE_VARIABLE: Final[str] = "CDP_PRIVACY_KEY_FILE"

_KEY_ID_LABEL: Final[bytes] = b"cdp-privacy-key-id-v1"
_WRAP_LABEL: Final[bytes] = b"cdp-privacy-wrap-v1\x00"
_HOW_TO_CREATE: Final[str] = (
    "create one with `cdp privacy key create` (writes CDP_HOME/secrets/privacy_key, mode 0600; "
    "`make demo` does this for you), or set CDP_PRIVACY_KEY to 64 hex characters (e.g. the "
    "output of `python -c 'import secrets; print(secrets.token_hex(32))'`, kept in your secret "
    "store) or CDP_PRIVACY_KEY_FILE to a file holding them"
)


class PrivacyKeySettings(BaseModel):
    """Where the key comes from, as settings: one declaration for the platform's and the
    API's settings (each adds its ``CDP_`` prefix), and one way to turn them into a keyring."""

    privacy_key: SecretStr | None = Field(
        default=None,
        description="CDP_PRIVACY_KEY: the key of keyed hashes of personal identifiers (hex; "
        "several comma-separated, current first); see privacy.keys",
    )
    privacy_key_file: Path | None = Field(
        default=None,
        description="CDP_PRIVACY_KEY_FILE: file holding the privacy key(s) when CDP_PRIVACY_KEY "
        "is not set; default CDP_HOME/secrets/privacy_key",
    )

    def privacy_keyring(self, home: Path) -> Keyring:
        """The keyring these settings name (:func:`load_keyring`); PrivacyKeyError if none."""
        secret = self.privacy_key.get_secret_value() if self.privacy_key is not None else None
        return load_keyring(Path(home), secret, self.privacy_key_file)


class PrivacyKeyError(RuntimeError):
    """No usable privacy key; the message says where it looked and how to create one."""


@dataclass(frozen=True)
class PrivacyKey:
    """One secret key; ``key_id`` is its public fingerprint."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise PrivacyKeyError(
                f"a privacy key must have at least {MIN_KEY_BYTES} bytes "
                f"({2 * MIN_KEY_BYTES} hex characters), this one has {len(self.secret)}"
            )

    @functools.cached_property
    def key_id(self) -> str:
        """12 hex characters naming the key (an HMAC of a fixed label: reveals nothing)."""
        return hmac.new(self.secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:12]

    def __repr__(self) -> str:  # never print the secret
        return f"PrivacyKey(key_id={self.key_id!r})"

    @classmethod
    def generate(cls) -> PrivacyKey:
        """A new random key."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_hex(cls, text: str, *, where: str) -> PrivacyKey:
        """Parse a hex key; ``where`` names its origin in the error."""
        try:
            secret = bytes.fromhex(text.strip())
        except ValueError as exc:
            raise PrivacyKeyError(f"{where}: a privacy key is hex text; {_HOW_TO_CREATE}") from exc
        try:
            return cls(secret)
        except PrivacyKeyError as exc:
            raise PrivacyKeyError(f"{where}: {exc}; {_HOW_TO_CREATE}") from None


def _digest(key: PrivacyKey, identifier_type: str, normalized_value: str) -> bytes:
    kind = identifier_type.encode("utf-8")
    value = normalized_value.encode("utf-8")
    # length-prefixed fields: no (type, value) pair can be spelled as another
    message = (
        HASH_VERSION.encode()
        + len(kind).to_bytes(4, "big")
        + kind
        + len(value).to_bytes(4, "big")
        + value
    )
    return hmac.digest(key.secret, message, "sha256")  # the one-shot C path: 2x hmac.new


def _wrap(key: PrivacyKey, digest: bytes) -> bytes:
    return hmac.digest(key.secret, _WRAP_LABEL + digest, "sha256")


def keyed_hash(key: PrivacyKey, identifier_type: str, normalized_value: str) -> str:
    """``kh1:<key id>:<hex>``: the keyed hash of one normalized identifier of one type."""
    if not identifier_type:
        raise ValueError("identifier_type is empty")
    digest = _digest(key, identifier_type, normalized_value)
    return f"{HASH_VERSION}:{key.key_id}:{digest.hex()}"


@dataclass(frozen=True)
class ParsedHash:
    """A stored hash taken apart: the key ids (outermost first) and the digest."""

    chain: tuple[str, ...]
    digest: bytes


def parse_hash(text: str) -> ParsedHash:
    """Split a stored hash; ValueError when it is not a ``kh1`` hash."""
    parts = text.split(":")
    if len(parts) != 3 or parts[0] != HASH_VERSION or not parts[1]:
        raise ValueError(f"not a {HASH_VERSION} keyed hash: {text[:20]!r}")
    try:
        digest = bytes.fromhex(parts[2])
    except ValueError:
        raise ValueError(f"not a {HASH_VERSION} keyed hash: {text[:20]!r}") from None
    if len(digest) != hashlib.sha256().digest_size:
        raise ValueError(f"not a {HASH_VERSION} keyed hash: {text[:20]!r}")
    return ParsedHash(chain=tuple(parts[1].split(".")), digest=digest)


@dataclass(frozen=True)
class Keyring:
    """The installation's keys, current first; older keys only match, never make, hashes."""

    keys: tuple[PrivacyKey, ...]
    #: where the keys came from (a file path or the variable's name), for messages
    origin: str = ""

    def __post_init__(self) -> None:
        if not self.keys:
            raise PrivacyKeyError(f"{self.origin or 'keyring'}: no key; {_HOW_TO_CREATE}")
        ids = [key.key_id for key in self.keys]
        if len(set(ids)) != len(ids):
            raise PrivacyKeyError(f"{self.origin}: the same key is listed twice")

    @property
    def current(self) -> PrivacyKey:
        """The key every new hash is made with."""
        return self.keys[0]

    @functools.cached_property
    def _by_id(self) -> dict[str, PrivacyKey]:
        return {key.key_id: key for key in self.keys}

    def key(self, key_id: str) -> PrivacyKey:
        """The key named ``key_id``; PrivacyKeyError when this keyring lacks it."""
        found = self._by_id.get(key_id)
        if found is not None:
            return found
        raise PrivacyKeyError(
            f"no key '{key_id}' in {self.origin or 'the keyring'}: a stored hash was made under "
            "a key that has since been removed; put the old key back (after the current one)"
        )

    def hash(self, identifier_type: str, normalized_value: str) -> str:
        """The keyed hash under the current key."""
        return keyed_hash(self.current, identifier_type, normalized_value)

    def hash_under(self, chain: Sequence[str], identifier_type: str, normalized_value: str) -> str:
        """The hash an identifier has after the rotations ``chain`` names (outermost first)."""
        if not chain:
            raise ValueError("empty key chain")
        digest = _digest(self.key(chain[-1]), identifier_type, normalized_value)
        for key_id in reversed(chain[:-1]):
            digest = _wrap(self.key(key_id), digest)
        return f"{HASH_VERSION}:{'.'.join(chain)}:{digest.hex()}"

    def candidates(
        self,
        identifier_type: str,
        normalized_value: str,
        chains: Iterable[Sequence[str]] = (),
    ) -> set[str]:
        """Every form this identifier can take in a store: a fresh hash under each key, and
        its hash under each chain the store holds (``HashedStore.chains``)."""
        forms = {keyed_hash(key, identifier_type, normalized_value) for key in self.keys}
        for chain in chains:
            forms.add(self.hash_under(tuple(chain), identifier_type, normalized_value))
        return forms

    def matches(self, stored: str, identifier_type: str, normalized_value: str) -> bool:
        """Whether a stored hash is of this identifier (in constant time)."""
        parsed = parse_hash(stored)
        expected = self.hash_under(parsed.chain, identifier_type, normalized_value)
        return hmac.compare_digest(expected, stored)

    def rehash(self, stored: str) -> str:
        """A stored hash moved under the current key (wrapped); unchanged if already there."""
        parsed = parse_hash(stored)
        if parsed.chain[0] == self.current.key_id:
            return stored
        self.key(parsed.chain[0])  # the hash names a key this keyring still has
        digest = _wrap(self.current, parsed.digest)
        return f"{HASH_VERSION}:{self.current.key_id}.{'.'.join(parsed.chain)}:{digest.hex()}"

    def key_ids_in(self, stored: Iterable[str]) -> set[str]:
        """Key ids some of ``stored`` depend on (a key still named cannot be removed)."""
        return {key_id for text in stored for key_id in parse_hash(text).chain}


# --- where the key lives ----------------------------------------------------------------


def default_key_path(home: Path) -> Path:
    """``CDP_HOME/secrets/privacy_key``."""
    return Path(home) / DEFAULT_KEY_FILE


def key_file_path(home: Path, key_file: Path | None) -> Path:
    """The key file in use when no ``CDP_PRIVACY_KEY`` is set."""
    return Path(key_file) if key_file is not None else default_key_path(home)


def parse_keys(text: str, *, where: str) -> tuple[PrivacyKey, ...]:
    """Keys from a file's text (one hex key per line, ``#`` comments) or a comma list."""
    values = [
        value.strip()
        for line in text.splitlines()
        for value in line.split("#", 1)[0].split(",")
        if value.strip()
    ]
    return tuple(
        PrivacyKey.from_hex(value, where=f"{where} (key {number})")
        for number, value in enumerate(values, start=1)
    )


def load_keyring(home: Path, key: str | None = None, key_file: Path | None = None) -> Keyring:
    """The keyring the settings name; PrivacyKeyError (with how to create one) otherwise.

    ``key`` is ``CDP_PRIVACY_KEY``'s value and wins; else ``key_file``
    (``CDP_PRIVACY_KEY_FILE``), else ``CDP_HOME/secrets/privacy_key``.
    """
    if key is not None and key.strip():
        return Keyring(parse_keys(key, where=KEY_VARIABLE), origin=KEY_VARIABLE)
    path = key_file_path(home, key_file)
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        named = f"{KEY_FILE_VARIABLE}={path}" if key_file is not None else str(path)
        raise PrivacyKeyError(
            f"no privacy key: {KEY_VARIABLE} is not set and {named} does not exist. Personal "
            f"identifiers are hashed under this key, so the platform does not start without "
            f"one: {_HOW_TO_CREATE}"
        ) from None
    except OSError as exc:
        raise PrivacyKeyError(f"{path}: cannot read the privacy key ({exc.strerror})") from exc
    keys = parse_keys(text, where=str(path))
    if not keys:
        raise PrivacyKeyError(f"{path}: holds no key; {_HOW_TO_CREATE}")
    return Keyring(keys, origin=str(path))


def write_keyring(path: Path, keys: Sequence[PrivacyKey]) -> None:
    """Write the key file atomically, mode 0600 (its folder 0700), current key first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [
        "# The privacy key (HMAC-SHA256 of personal identifiers): current key first, older",
        "# keys after it are kept to match hashes stored under them. Never share or commit.",
        f"# written {now}",
    ]
    for index, key in enumerate(keys):
        role = "current" if index == 0 else "older (matching only)"
        lines += [f"# key id {key.key_id}: {role}", key.secret.hex()]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def create_key_file(path: Path) -> Keyring | None:
    """Write a new key file; None (nothing written) when one already exists there.

    An existing key is never replaced: hashes stored under it would stop matching. Changing
    the key is :func:`rotate_key_file`'s job.
    """
    path = Path(path)
    if path.exists():
        return None
    key = PrivacyKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    write_keyring(tmp, [key])
    try:
        os.link(tmp, path)  # fails if another process created it meanwhile: theirs wins
    except FileExistsError:
        return None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return Keyring((key,), origin=str(path))


# --- rotation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RehashReport:
    """What one store did in a rotation."""

    store: str
    rehashed: int
    unchanged: int


class HashedStore(Protocol):
    """A privacy store holding keyed hashes (erasure requests, the suppression list, ...).

    Rotation calls :meth:`rehash` with the new keyring; the store replaces each hash ``h`` it
    holds by ``keyring.rehash(h)`` in one transaction (a crash leaves all old or all new, both
    of which match). Matching reads :meth:`chains` to know which forms to compute.
    """

    name: str

    def chains(self) -> set[tuple[str, ...]]:
        """The distinct key chains of the hashes held."""
        ...

    def rehash(self, keyring: Keyring) -> RehashReport:
        """Move every held hash under ``keyring.current``."""
        ...


def rehash_stores(keyring: Keyring, stores: Iterable[HashedStore]) -> list[RehashReport]:
    """Re-hash every store under the keyring's current key."""
    return [store.rehash(keyring) for store in stores]


def rotate_key_file(
    path: Path, stores: Iterable[HashedStore]
) -> tuple[Keyring, list[RehashReport]]:
    """Add a new current key to the key file (older keys kept after it), then re-hash stores.

    The file is written first: if re-hashing stops half way, the stores hold hashes under the
    old and the new key, and the keyring has both, so everything still matches; running
    ``cdp privacy key rehash`` finishes the job.
    """
    old = load_keyring(path.parent, key_file=path)
    keyring = Keyring((PrivacyKey.generate(), *old.keys), origin=str(path))
    write_keyring(path, keyring.keys)
    return keyring, rehash_stores(keyring, stores)


def retire_key(path: Path, key_id: str, stores: Iterable[HashedStore]) -> Keyring:
    """Remove an older key from the key file once no store holds a hash that names it.

    Refuses the current key, a key the file lacks, and a key some stored hash still depends
    on (wrapped hashes name every key of their chain): removing it would make those hashes
    unmatchable, so a re-delivered file of an erased person would come back.
    """
    keyring = load_keyring(path.parent, key_file=path)
    keyring.key(key_id)
    if keyring.current.key_id == key_id:
        raise PrivacyKeyError(f"{key_id} is the current key; rotate first, then retire it")
    holding = sorted(
        store.name for store in stores if any(key_id in chain for chain in store.chains())
    )
    if holding:
        raise PrivacyKeyError(
            f"key {key_id} is still needed to match hashes held by {', '.join(holding)}; it "
            "stays in the key file until those entries are gone"
        )
    kept = Keyring(tuple(k for k in keyring.keys if k.key_id != key_id), origin=str(path))
    write_keyring(path, kept.keys)
    return kept
