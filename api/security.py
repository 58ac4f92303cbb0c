"""API keys with scopes, stored hashed, and the audit log of PII reads.

Keys live in a YAML file (default ``CDP_HOME/api_keys.yml``), one entry per key with its name,
scopes and the SHA-256 of the secret; the secret itself is shown once, when ``cdp api-key
create`` makes it. Keys are long random tokens, so an unsalted SHA-256 is enough to make a
leaked file useless. The file is re-read when it changes, so adding or revoking a key needs no
restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

logger = logging.getLogger(__name__)

KEY_PREFIX: Final[str] = "cdp_"
KEY_NAME_PATTERN: Final[re.Pattern[str]] = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Scope(StrEnum):
    """What a key may do. ``admin`` implies every other scope."""

    PROFILE_READ = "profile:read"
    PII_READ = "pii:read"
    SEGMENTS_READ = "segments:read"
    METRICS_READ = "metrics:read"
    #: ask for decisions (``decide``) and report their outcomes (``recordDecisionOutcome``)
    DECISIONS_WRITE = "decisions:write"
    #: read a customer's logged decisions (``customer { decisions(last: 5) }``)
    DECISIONS_READ = "decisions:read"
    ADMIN = "admin"


class KeyFileError(ValueError):
    """The keys file is invalid; the message names the file, the key and the problem."""


class ApiKeyEntry(BaseModel):
    """One key as stored: never the secret, only its hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sha256: str
    scopes: tuple[Scope, ...] = Field(min_length=1)
    description: str = ""
    created_at: datetime | None = None
    is_disabled: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not KEY_NAME_PATTERN.match(value):
            raise ValueError(f"'{value}' is not a key name (letters, digits, '.', '_', '-')")
        return value

    @field_validator("sha256")
    @classmethod
    def _digest(cls, value: str) -> str:
        value = value.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("must be the 64-character hex SHA-256 of the key")
        return value


class ApiKeysFile(BaseModel):
    """The whole keys file."""

    model_config = ConfigDict(extra="forbid")

    keys: list[ApiKeyEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> ApiKeysFile:
        names: set[str] = set()
        digests: set[str] = set()
        for index, entry in enumerate(self.keys):
            if entry.name in names:
                raise ValueError(f"keys.{index}.name: duplicate key name '{entry.name}'")
            if entry.sha256 in digests:
                raise ValueError(f"keys.{index}.sha256: the same secret is used by two keys")
            names.add(entry.name)
            digests.add(entry.sha256)
        return self


@dataclass(frozen=True)
class Principal:
    """The caller behind a valid key."""

    name: str
    scopes: frozenset[Scope]

    def has(self, scope: Scope) -> bool:
        """Whether the key grants ``scope`` (admin grants all)."""
        return scope in self.scopes or Scope.ADMIN in self.scopes

    @property
    def can_read_pii(self) -> bool:
        """Unmasked names, emails, phones, addresses and birth dates."""
        return self.has(Scope.PII_READ)


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def generate_key() -> str:
    """A new secret: a recognisable prefix and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def load_keys_file(path: Path) -> ApiKeysFile:
    """Read and validate the keys file; a missing file means no keys."""
    path = Path(path)
    if not path.exists():
        return ApiKeysFile()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: not readable YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise KeyFileError(f"{path}: expected a mapping with a 'keys' list")
    try:
        return ApiKeysFile.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"  - {_location(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise KeyFileError(f"{path}: invalid API keys file\n" + "\n".join(problems)) from exc


def _write_keys_file(path: Path, keys: ApiKeysFile) -> None:
    body = {"keys": [k.model_dump(mode="json", exclude_defaults=True) for k in keys.keys]}
    text = (
        "# API keys for the CDP GraphQL API. Only SHA-256 hashes are stored; create keys with\n"
        "# `cdp api-key create --name NAME --scopes profile:read,segments:read`.\n"
        + yaml.safe_dump(body, sort_keys=False)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def create_key(
    path: Path,
    name: str,
    scopes: Iterable[Scope | str],
    *,
    description: str = "",
    replace: bool = False,
) -> str:
    """Add a key to the keys file and return its secret (shown once, never stored).

    Raises KeyFileError for a bad name or scope, or an existing name without ``replace``.
    """
    try:
        parsed = tuple(dict.fromkeys(Scope(s) for s in scopes))
    except ValueError as exc:
        known = ", ".join(s.value for s in Scope)
        raise KeyFileError(f"unknown scope in {list(scopes)}; known scopes: {known}") from exc
    current = load_keys_file(path)
    if any(k.name == name for k in current.keys) and not replace:
        raise KeyFileError(f"{path}: a key named '{name}' exists; pass --replace to rotate it")
    secret = generate_key()
    try:
        entry = ApiKeyEntry(
            name=name,
            sha256=hash_key(secret),
            scopes=parsed,
            description=description,
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
    except ValidationError as exc:
        raise KeyFileError(f"key '{name}': {exc.errors()[0]['msg']}") from exc
    keys = [k for k in current.keys if k.name != name] + [entry]
    _write_keys_file(Path(path), ApiKeysFile(keys=keys))
    return secret


class KeyStore:
    """Authenticates presented keys against the keys file, reloading it when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._by_digest: dict[str, Principal] = {}
        self.load()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def load(self) -> None:
        """(Re)read the file; KeyFileError if it is invalid."""
        stamp = self._file_stamp()
        keys = load_keys_file(self.path)
        principals = {
            k.sha256: Principal(name=k.name, scopes=frozenset(k.scopes))
            for k in keys.keys
            if not k.is_disabled
        }
        with self._lock:
            self._by_digest = principals
            self._stamp = stamp

    def reload_if_changed(self) -> bool:
        """Re-read a changed file; an invalid new file is logged and the old keys stay."""
        if self._file_stamp() == self._stamp:
            return False
        try:
            self.load()
        except KeyFileError as exc:
            logger.error("keeping the previous API keys: %s", exc)
            self._stamp = self._file_stamp()
            return False
        logger.info("reloaded API keys from %s (%d active)", self.path, len(self._by_digest))
        return True

    @property
    def is_empty(self) -> bool:
        """No active key: every request is refused."""
        return not self._by_digest

    def authenticate(self, secret: str | None) -> Principal | None:
        """The principal of a presented key, or None for a missing or unknown one."""
        if not secret:
            return None
        return self._by_digest.get(hash_key(secret.strip()))


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class AuditLog:
    """Appends one JSON line per customer whose PII a request revealed.

    Files are ``audit/pii-<YYYY-MM-DD>.jsonl`` (UTC). Each request's lines go out in one
    ``write`` on an ``O_APPEND`` descriptor, so worker processes never interleave lines.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None
        self._day: str | None = None
        self._lock = threading.Lock()

    def _descriptor(self, day: str) -> int:
        path = self.folder / f"pii-{day}.jsonl"
        if self._fd is not None and self._day == day and not self._replaced(path):
            return self._fd
        if self._fd is not None:
            os.close(self._fd)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._day = day
        return self._fd

    def _replaced(self, path: Path) -> bool:
        """Whether the open file is no longer the one at ``path``: an erasure rewrote the day's
        file (a new file renamed over it), so lines must go to the new one, not the unlinked."""
        assert self._fd is not None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            return True
        opened = os.fstat(self._fd)
        return (current.st_ino, current.st_dev) != (opened.st_ino, opened.st_dev)

    def write(self, entries: Iterable[Mapping[str, Any]]) -> int:
        """Append entries (each gets ``time`` if missing); returns how many were written."""
        now = datetime.now(UTC)
        lines = []
        for entry in entries:
            record = {"time": now.isoformat(timespec="milliseconds"), **entry}
            lines.append(orjson.dumps(record) + b"\n")
        if not lines:
            return 0
        payload = b"".join(lines)
        with self._lock:
            fd = self._descriptor(now.date().isoformat())
            written = 0
            while written < len(payload):
                written += os.write(fd, payload[written:])
        return len(lines)

    def close(self) -> None:
        """Close the open file."""
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None
