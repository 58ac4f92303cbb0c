"""Write keys: created once, stored hashed, revoked, reloaded; Basic auth as Segment sends it."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagster_project.cli.main import app
from events.write_keys import (
    WriteKeyError,
    WriteKeyStore,
    basic_username,
    create_write_key,
    hash_key,
    load_write_keys,
    revoke_write_key,
)


def test_create_stores_only_the_hash_and_authenticates(tmp_path: Path) -> None:
    path = tmp_path / "write_keys.yml"
    key = create_write_key(path, "web")
    assert key.startswith("wk_") and len(key) > 20
    text = path.read_text()
    assert key not in text and hash_key(key) in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    store = WriteKeyStore(path)
    assert store.authenticate(key) == "web"
    assert store.authenticate(key) == "web"  # from the cache
    assert store.authenticate("wk_wrong") is None
    assert store.authenticate(None) is None and store.authenticate("") is None


def test_duplicate_name_needs_replace_and_replace_rotates(tmp_path: Path) -> None:
    path = tmp_path / "write_keys.yml"
    old = create_write_key(path, "web")
    with pytest.raises(WriteKeyError, match="--replace"):
        create_write_key(path, "web")
    new = create_write_key(path, "web", replace=True)
    store = WriteKeyStore(path)
    assert store.authenticate(new) == "web" and store.authenticate(old) is None
    assert [k.name for k in load_write_keys(path).keys] == ["web"]
    with pytest.raises(WriteKeyError, match="not a source name"):
        create_write_key(path, "Web Site")


def test_revoke_and_reload_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "write_keys.yml"
    web = create_write_key(path, "web")
    store = WriteKeyStore(path)
    assert store.authenticate(web) == "web"  # cached now
    assert store.reload_if_changed() is False
    orders = create_write_key(path, "orders")
    revoke_write_key(path, "web")
    assert store.reload_if_changed() is True
    assert store.authenticate(web) is None  # the cache did not outlive the revocation
    assert store.authenticate(orders) == "orders"
    assert [k.is_disabled for k in load_write_keys(path).keys] == [True, False]
    with pytest.raises(WriteKeyError, match="no write key named 'nope'"):
        revoke_write_key(path, "nope")


def test_invalid_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "write_keys.yml"
    path.write_text("keys:\n  - name: web\n    sha256: short\n    created_at: 2026-01-01\n")
    with pytest.raises(WriteKeyError, match=r"write_keys.yml.*keys\.0\.sha256"):
        WriteKeyStore(path)
    assert WriteKeyStore(tmp_path / "missing.yml").is_empty


def test_basic_username() -> None:
    def basic(raw: str) -> str:
        return "Basic " + base64.b64encode(raw.encode()).decode()

    assert basic_username(basic("wk_abc:")) == "wk_abc"
    assert basic_username(basic("wk_abc")) == "wk_abc"
    assert basic_username(basic(":pw")) is None
    assert basic_username("Bearer wk_abc") is None
    assert basic_username("Basic !!!") is None
    assert basic_username(None) is None


def test_cli_create_list_revoke(tmp_path: Path) -> None:
    runner = CliRunner()
    home = str(tmp_path / "home")
    created = runner.invoke(app, ["write-key", "create", "--name", "web", "--home", home])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("wk_")
    again = runner.invoke(app, ["write-key", "create", "--name", "web", "--home", home])
    assert again.exit_code == 2 and "--replace" in again.output
    listed = runner.invoke(app, ["write-key", "list", "--home", home])
    assert listed.exit_code == 0 and "web" in listed.stdout and key not in listed.stdout
    revoked = runner.invoke(app, ["write-key", "revoke", "web", "--home", home])
    assert revoked.exit_code == 0, revoked.output
    assert WriteKeyStore(Path(home) / "write_keys.yml").authenticate(key) is None
