"""Write keys: which source sends an event, as Segment's SDKs present it.

One key per source (the website, the app, the order system), kept hashed in
``CDP_HOME/write_keys.yml`` (name, sha256, created_at, is_disabled); a key is ``wk_<random>``
and is shown once, when created. Segment's SDKs send the key as the HTTP Basic username with an
empty password; a batch body may carry it as ``writeKey`` instead. The API reloads the file when
it changes (a revoked key stops working within a poll) and caches what it authenticated, so a
request costs a dict lookup rather than a hash.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

KEY_PREFIX: Final[str] = "wk_"
_NAME: Final[re.Pattern[str]] = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_DIGEST: Final[re.Pattern[str]] = re.compile(r"^[0-9a-f]{64}$")
#: Authenticated keys remembered per process; only valid keys are cached, so wrong keys sent
#: by anyone cannot grow it.
_CACHE_LIMIT: Final[int] = 10_000


class WriteKeyError(ValueError):
    """An invalid write keys file or request; the message names the file and what to do."""


class WriteKeyEntry(BaseModel):
    """One source's key, hashed."""

    model_config = ConfigDict(extra="forbid")

    name: str
    sha256: str
    created_at: datetime
    is_disabled: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"'{value}' is not a source name (lowercase letters, digits, '_' and '-')"
            )
        return value

    @field_validator("sha256")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not _DIGEST.match(value):
            raise ValueError("not a sha256 hex digest")
        return value


class WriteKeysFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    keys: list[WriteKeyEntry] = []


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def load_write_keys(path: Path) -> WriteKeysFile:
    """The keys file (missing: no keys); WriteKeyError names the file and key on bad content."""
    if not path.is_file():
        return WriteKeysFile()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise WriteKeyError(f"{path}: not readable YAML: {exc}") from exc
    try:
        loaded = WriteKeysFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise WriteKeyError(f"{path}: invalid write keys file: {problems}") from exc
    names = [k.name for k in loaded.keys]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise WriteKeyError(f"{path}: source names used twice: {', '.join(duplicates)}")
    return loaded


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize read-modify-write of the file between CLI invocations."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(path: Path, keys: WriteKeysFile) -> None:
    body = {"keys": [k.model_dump(mode="json") for k in keys.keys]}
    tmp = path.with_name(path.name + ".tmp")
    text = (
        "# Write keys of the event intake (hashed). Manage with `cdp write-key`.\n"
        + yaml.safe_dump(body, sort_keys=False)
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def create_write_key(path: Path, name: str, *, replace: bool = False) -> str:
    """Create the key of source ``name`` and return it (the only time it is shown).

    ``replace`` rotates an existing source's key (the old one stops working).
    """
    if not _NAME.match(name):
        raise WriteKeyError(
            f"'{name}' is not a source name: lowercase letters, digits, '_' and '-', starting "
            "with a letter (e.g. web, ios_app, orders)"
        )
    with _locked(path):
        current = load_write_keys(path)
        if any(k.name == name for k in current.keys) and not replace:
            raise WriteKeyError(
                f"{path}: source '{name}' has a write key; pass --replace to rotate it"
            )
        key = KEY_PREFIX + secrets.token_urlsafe(24)
        entry = WriteKeyEntry(
            name=name,
            sha256=hash_key(key),
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
        kept = [k for k in current.keys if k.name != name]
        _write(path, WriteKeysFile(keys=[*kept, entry]))
    return key


def revoke_write_key(path: Path, name: str) -> None:
    """Disable source ``name``'s key (kept in the file, marked ``is_disabled``)."""
    with _locked(path):
        current = load_write_keys(path)
        if not any(k.name == name for k in current.keys):
            known = ", ".join(k.name for k in current.keys) or "none"
            raise WriteKeyError(f"{path}: no write key named '{name}' (known: {known})")
        for entry in current.keys:
            if entry.name == name:
                entry.is_disabled = True
        _write(path, current)


def basic_username(authorization: str | None) -> str | None:
    """The username of an HTTP Basic ``Authorization`` header (Segment's write key), else None."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, _, _password = decoded.partition(":")
    return username or None


class WriteKeyStore:
    """The keys of one CDP_HOME, reloaded when the file changes; authenticate is a lookup."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # (enabled digest -> source, authenticated key -> source), swapped as one on reload
        self._state: tuple[dict[str, str], dict[str, str]] = ({}, {})
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self.load()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def load(self) -> None:
        """Read the file now (WriteKeyError on bad content)."""
        stamp = self._file_stamp()
        loaded = load_write_keys(self.path)
        with self._lock:
            self._state = ({k.sha256: k.name for k in loaded.keys if not k.is_disabled}, {})
            self._stamp = stamp

    def reload_if_changed(self) -> bool:
        """Reload when the file changed since the last load; True when it did."""
        if self._file_stamp() == self._stamp:
            return False
        self.load()
        return True

    @property
    def is_empty(self) -> bool:
        """No enabled key: every intake request is refused."""
        return not self._state[0]

    def authenticate(self, key: str | None) -> str | None:
        """The source name of an enabled key, else None."""
        if not key:
            return None
        # one consistent pair: a reload swaps both, so a revoked key is never cached anew
        by_digest, cache = self._state
        name = cache.get(key)
        if name is not None:
            return name
        digest = hash_key(key)
        for stored, source in by_digest.items():
            if hmac.compare_digest(stored, digest):
                if len(cache) < _CACHE_LIMIT:
                    cache[key] = source
                return source
        return None
