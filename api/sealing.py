"""Keyed tokens and sealed cursors, both from one secret per installation.

A key without ``pii:read`` sees identifiers (emails, phones, record ids, event ids) as tokens:
HMAC-SHA256 of the value under a key only this installation holds. Equal values give equal
tokens, so a token is still a handle (a channel can count, compare and join on it, and the same
record has the same token wherever it appears), but the value cannot be read back, nor guessed
by hashing candidate addresses, without the secret.

Cursors are sealed with AES-SIV (deterministic authenticated encryption) under a second key
derived from the same secret: a cursor names a position (a customer id, an event's time and id),
and event ids are source keys that may embed personal data, so a cursor must reveal nothing and
must not be forgeable; being deterministic, the same position always gives the same cursor.

The secret lives in a file (default ``CDP_HOME/secrets/api_secret``, mode 0600) created on first
start; every worker process reads the same file, so tokens and cursors agree across workers and
restarts. Rotating the file changes every token and invalidates every cursor.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
from collections import OrderedDict
from pathlib import Path
from typing import Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

TOKEN_PREFIX: Final[str] = "tok_"
SECRET_BYTES: Final[int] = 32
_TAG_BYTES: Final[int] = 16
_TOKEN_CACHE_SIZE: Final[int] = 65_536


class SecretFileError(RuntimeError):
    """The secret file exists but cannot be used; the message names it."""


def load_or_create_secret(path: Path) -> bytes:
    """The installation secret, created (0600, atomically) if the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(SECRET_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails if another process created it first: theirs wins
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError as exc:
        raise SecretFileError(f"{path}: not a hex secret; delete it to create a new one") from exc
    if len(secret) < 16:
        raise SecretFileError(f"{path}: secret shorter than 16 bytes; delete it to create one")
    return secret


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, purpose, hashlib.sha256).digest()


class CursorError(ValueError):
    """A cursor this installation did not issue (or issued under another secret)."""


class Sealer:
    """Tokens for identifiers and sealed cursors; one per app, shared by its requests."""

    def __init__(self, secret: bytes) -> None:
        self._token_key = _derive(secret, b"cdp-api-token-v1")
        self._aead = AESSIV(
            _derive(secret, b"cdp-api-cursor-v1") + _derive(secret, b"cdp-api-cursor-v1/mac")
        )
        self._tokens: OrderedDict[str, str] = OrderedDict()

    def token(self, value: str) -> str:
        """The opaque, stable token of a value (128 bits of its keyed hash)."""
        cached = self._tokens.get(value)
        if cached is not None:
            return cached
        digest = hmac.new(self._token_key, value.encode("utf-8"), hashlib.sha256).digest()
        token = TOKEN_PREFIX + base64.urlsafe_b64encode(digest[:16]).decode("ascii").rstrip("=")
        self._tokens[value] = token
        if len(self._tokens) > _TOKEN_CACHE_SIZE:
            self._tokens.popitem(last=False)
        return token

    def seal(self, parts: list[str]) -> str:
        """An opaque cursor holding ``parts``."""
        sealed = self._aead.encrypt(orjson.dumps(parts), None)
        return base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")

    def unseal(self, cursor: str) -> list[str]:
        """The parts of a cursor from ``seal``; CursorError for anything else."""
        try:
            raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii"))
        except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
            raise CursorError("not a cursor") from exc
        if len(raw) <= _TAG_BYTES:
            raise CursorError("not a cursor")
        try:
            plain = self._aead.decrypt(raw, None)
        except InvalidTag as exc:
            raise CursorError("not a cursor this API issued") from exc
        value = orjson.loads(plain)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise CursorError("not a cursor")
        return value
