"""Webhook signatures as Stripe documents them: HMAC-SHA256 over the timestamp and the raw body.

Every delivery carries ``X-CDP-Signature: t=<unix seconds>,v1=<hex digest>`` where the digest is
``HMAC-SHA256(secret, f"{t}.{raw body}")``. The timestamp is inside the signed text, so a
captured request cannot be replayed later than the receiver's tolerance (5 minutes by default),
and a receiver checks the raw bytes it got, before parsing them. During a secret rotation the
sender may put several ``v1=`` entries in one header (one per secret) and a receiver may hold
several secrets: one match is enough. Comparisons are constant-time (``hmac.compare_digest``).

Each channel has its own secret: the environment variable named by the channel's
``secret_env`` when configured, else ``CDP_HOME/secrets/webhooks/<channel>``, created on first
use (mode 0600, ``whsec_`` + 32 random bytes in hex). ``cdp outbox secret CHANNEL`` prints it for
whoever runs the receiver.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from events.config import RealtimeConfig

SIGNATURE_HEADER: Final[str] = "X-CDP-Signature"
SCHEME: Final[str] = "v1"
DEFAULT_TOLERANCE_SECONDS: Final[int] = 300
SECRET_PREFIX: Final[str] = "whsec_"

_CHANNEL = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class SignatureError(ValueError):
    """A signature header that does not prove the body came from the platform.

    ``reason`` is one of ``missing``, ``malformed``, ``no_signature``, ``too_old``,
    ``too_new``, ``mismatch``; the message says what to check.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SecretError(RuntimeError):
    """A channel's signing secret cannot be found or created; the message says what to do."""


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str | Sequence[str], body: bytes, timestamp: int | None = None) -> str:
    """The ``X-CDP-Signature`` value for ``body`` at ``timestamp`` (unix seconds; default now).

    Several secrets (a rotation) give one ``v1=`` entry each, in order.
    """
    secret_list = [secret] if isinstance(secret, str) else list(secret)
    if not secret_list or any(not s for s in secret_list):
        raise ValueError("sign: at least one non-empty secret is needed")
    t = int(time.time()) if timestamp is None else int(timestamp)
    return ",".join([f"t={t}", *(f"{SCHEME}={_digest(s, body, t)}" for s in secret_list)])


def parse_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures of a header (other schemes ignored)."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(
                "malformed", f"{SIGNATURE_HEADER}: '{part.strip()[:40]}' is not key=value"
            )
        if key == "t":
            if timestamp is not None or not value.isdigit():
                raise SignatureError(
                    "malformed", f"{SIGNATURE_HEADER}: one t=<unix seconds> expected"
                )
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value.lower())
    if timestamp is None:
        raise SignatureError("malformed", f"{SIGNATURE_HEADER}: no t=<unix seconds> entry")
    if not signatures:
        raise SignatureError(
            "no_signature", f"{SIGNATURE_HEADER}: no {SCHEME}= signature (scheme unsupported?)"
        )
    return timestamp, signatures


def verify(
    secret: str | Sequence[str],
    header: str | None,
    body: bytes,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check ``header`` against the raw ``body``; returns the signed timestamp.

    Raises:
        SignatureError: missing or malformed header, a timestamp further than
            ``tolerance_seconds`` from ``now`` (unix seconds, default the clock), or no ``v1``
            entry that matches any of the secrets.
    """
    if not header:
        raise SignatureError("missing", f"no {SIGNATURE_HEADER} header")
    timestamp, signatures = parse_header(header)
    current = time.time() if now is None else now
    if timestamp < current - tolerance_seconds:
        raise SignatureError(
            "too_old",
            f"{SIGNATURE_HEADER}: signed {current - timestamp:.0f}s ago, more than the "
            f"{tolerance_seconds:g}s tolerance (a replayed request, or a clock off)",
        )
    if timestamp > current + tolerance_seconds:
        raise SignatureError(
            "too_new",
            f"{SIGNATURE_HEADER}: signed {timestamp - current:.0f}s in the future (check clocks)",
        )
    secret_list = [secret] if isinstance(secret, str) else list(secret)
    expected = [_digest(s, body, timestamp) for s in secret_list if s]
    # compare every pair, so the time taken does not depend on which entry matched
    matched = False
    for candidate in signatures:
        for digest in expected:
            matched |= hmac.compare_digest(candidate.encode(), digest.encode())
    if not matched:
        raise SignatureError(
            "mismatch",
            f"{SIGNATURE_HEADER}: no signature matches the body with this channel's secret "
            "(wrong secret, or the body was changed on the way)",
        )
    return timestamp


def secret_path(home: Path, channel: str) -> Path:
    """Where a channel's generated secret lives under ``CDP_HOME``."""
    if not _CHANNEL.match(channel):
        raise SecretError(f"'{channel}' is not a channel name (lowercase letters, digits, '_')")
    return Path(home) / "secrets" / "webhooks" / channel


def channel_secret(
    home: Path,
    channel: str,
    config: RealtimeConfig,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The signing secret of ``channel``: its ``secret_env`` variable when configured, else the
    file under ``CDP_HOME/secrets/webhooks/``, created on first use."""
    env = os.environ if environ is None else environ
    settings = config.channels.get(channel)
    if settings is not None and settings.secret_env is not None:
        value = env.get(settings.secret_env, "").strip()
        if not value:
            raise SecretError(
                f"realtime.channels.{channel}.secret_env names {settings.secret_env}, which is "
                "not set: export it (the secret the channel's receiver verifies with) or remove "
                "secret_env to use a generated secret"
            )
        return value
    return file_secret(home, channel)


def file_secret(home: Path, channel: str) -> str:
    """The generated secret of ``channel``, created atomically (0600) if missing.

    Two processes creating it at once agree: the file is written aside and hard-linked into
    place, so exactly one version wins and a reader never sees a half-written file.
    """
    path = secret_path(home, channel)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = SECRET_PREFIX + secrets.token_hex(32)
        temporary = path.with_name(f".{channel}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(value + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process won: use its secret
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretError(f"{path}: cannot read the webhook secret ({exc.strerror})") from exc
    if not value:
        raise SecretError(f"{path}: empty webhook secret; delete the file to generate a new one")
    return value
