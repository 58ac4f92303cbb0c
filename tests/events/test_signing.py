"""Webhook signatures (Stripe's scheme) and per-channel secrets."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.config import RealtimeConfig, WebhookChannel
from events.signing import (
    SECRET_PREFIX,
    SecretError,
    SignatureError,
    channel_secret,
    file_secret,
    secret_path,
    sign,
    verify,
)

SECRET = "whsec_test_secret"
BODY = b'{"customer_id":"c1","product_id":"p1"}'
T = 1_800_000_000


def test_header_is_stripe_shaped_and_verifies() -> None:
    header = sign(SECRET, BODY, T)
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"
    assert verify(SECRET, header, BODY, now=T + 10) == T


def test_tampered_body_is_refused() -> None:
    header = sign(SECRET, BODY, T)
    with pytest.raises(SignatureError) as info:
        verify(SECRET, header, BODY.replace(b"p1", b"p2"), now=T)
    assert info.value.reason == "mismatch"


def test_wrong_secret_and_changed_timestamp_are_refused() -> None:
    header = sign(SECRET, BODY, T)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify("whsec_other", header, BODY, now=T)
    forged = header.replace(f"t={T}", f"t={T + 60}")
    with pytest.raises(SignatureError) as info:
        verify(SECRET, forged, BODY, now=T + 60)
    assert info.value.reason == "mismatch"


def test_old_and_future_timestamps_are_refused() -> None:
    header = sign(SECRET, BODY, T)
    assert verify(SECRET, header, BODY, now=T + 299) == T
    with pytest.raises(SignatureError) as old:
        verify(SECRET, header, BODY, now=T + 301)
    assert old.value.reason == "too_old"
    assert "tolerance" in str(old.value)
    with pytest.raises(SignatureError) as new:
        verify(SECRET, header, BODY, now=T - 301)
    assert new.value.reason == "too_new"
    assert verify(SECRET, header, BODY, tolerance_seconds=3600, now=T + 3000) == T


def test_rotation_several_entries_and_several_secrets() -> None:
    header = sign(["whsec_new", "whsec_old"], BODY, T)
    assert header.count("v1=") == 2
    # a receiver that only knows either secret accepts it
    assert verify("whsec_old", header, BODY, now=T) == T
    assert verify("whsec_new", header, BODY, now=T) == T
    # a receiver holding both secrets accepts a header signed with only one of them
    assert verify(["whsec_new", "whsec_old"], sign("whsec_old", BODY, T), BODY, now=T) == T
    with pytest.raises(SignatureError):
        verify(["whsec_a", "whsec_b"], header, BODY, now=T)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "malformed"),
        ("v1=abc", "malformed"),
        (f"t=abc,v1={'0' * 64}", "malformed"),
        (f"t={T},t={T},v1=00", "malformed"),
        (f"t={T},v0=00", "no_signature"),
    ],
)
def test_malformed_headers_have_clear_reasons(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, header, BODY, now=T)
    assert info.value.reason == reason


def test_other_schemes_are_ignored_next_to_v1() -> None:
    header = sign(SECRET, BODY, T) + ",v0=deadbeef"
    assert verify(SECRET, header, BODY, now=T) == T


@given(body=st.binary(max_size=2000), t=st.integers(min_value=0, max_value=2**40))
def test_any_body_round_trips_and_any_flip_fails(body: bytes, t: int) -> None:
    header = sign(SECRET, body, t)
    assert verify(SECRET, header, body, now=t) == t
    with pytest.raises(SignatureError):
        verify(SECRET, header, body + b"x", now=t)


def test_generated_secret_is_private_stable_and_per_channel(tmp_path: Path) -> None:
    config = RealtimeConfig()
    first = channel_secret(tmp_path, "email", config, environ={})
    assert first.startswith(SECRET_PREFIX) and len(first) == len(SECRET_PREFIX) + 64
    path = secret_path(tmp_path, "email")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert channel_secret(tmp_path, "email", config, environ={}) == first
    assert channel_secret(tmp_path, "sms", config, environ={}) != first
    assert sorted(p.name for p in path.parent.iterdir()) == ["email", "sms"]  # no temp files


def test_concurrent_first_use_agrees_on_one_secret(tmp_path: Path) -> None:
    seen: list[str] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        seen.append(file_secret(tmp_path, "email"))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and len(set(seen)) == 1


def test_secret_env_wins_and_a_missing_variable_is_a_clear_error(tmp_path: Path) -> None:
    config = RealtimeConfig(
        channels={"email": WebhookChannel(url="http://x.test/h", secret_env="EMAIL_HOOK_SECRET")}
    )
    assert channel_secret(tmp_path, "email", config, environ={"EMAIL_HOOK_SECRET": "s3"}) == "s3"
    assert not secret_path(tmp_path, "email").exists()
    with pytest.raises(SecretError, match="EMAIL_HOOK_SECRET"):
        channel_secret(tmp_path, "email", config, environ={})


def test_channel_names_cannot_escape_the_secrets_folder(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="not a channel name"):
        file_secret(tmp_path, "../../etc")
    assert not (tmp_path / "secrets").exists() or not any(os.scandir(tmp_path / "secrets"))
