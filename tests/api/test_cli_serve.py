"""`cdp api-key` and `cdp serve`'s start-up refusals (the server itself: test_server_e2e)."""

from __future__ import annotations

import stat
from pathlib import Path

import typer
from typer.testing import CliRunner

from api.security import hash_key, load_keys_file
from dagster_project.cli.serve import api_key_app, serve

app = typer.Typer()
app.command()(serve)
app.add_typer(api_key_app, name="api-key")
runner = CliRunner()


def test_create_key_prints_the_secret_once_and_stores_its_hash(tmp_path: Path) -> None:
    out = tmp_path / "secret.txt"
    result = runner.invoke(
        app,
        [
            "api-key",
            "create",
            "--name",
            "web",
            "--scopes",
            "profile:read, segments:read",
            "--home",
            str(tmp_path),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("cdp_") and len(secret) > 40
    assert out.read_text().strip() == secret
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    keys_file = tmp_path / "api_keys.yml"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert secret not in keys_file.read_text()
    (entry,) = load_keys_file(keys_file).keys
    assert entry.sha256 == hash_key(secret)
    assert [s.value for s in entry.scopes] == ["profile:read", "segments:read"]
    listed = runner.invoke(app, ["api-key", "list", "--home", str(tmp_path)])
    assert listed.exit_code == 0 and "web" in listed.output and secret not in listed.output


def test_create_key_refuses_duplicates_and_unknown_scopes(tmp_path: Path) -> None:
    args = ["api-key", "create", "--name", "web", "--home", str(tmp_path)]
    assert runner.invoke(app, [*args, "--scopes", "profile:read"]).exit_code == 0
    again = runner.invoke(app, [*args, "--scopes", "profile:read"])
    assert again.exit_code == 2 and "--replace" in again.output
    rotated = runner.invoke(app, [*args, "--scopes", "admin", "--replace"])
    assert rotated.exit_code == 0
    assert [s.value for s in load_keys_file(tmp_path / "api_keys.yml").keys[0].scopes] == ["admin"]
    unknown = runner.invoke(app, [*args, "--scopes", "everything", "--replace"])
    assert unknown.exit_code == 2
    assert (
        "known scopes: profile:read, pii:read, segments:read, metrics:read, decisions:write, "
        "decisions:read, admin"
    ) in " ".join(unknown.output.split())


def test_serve_refuses_an_invalid_keys_file(tmp_path: Path) -> None:
    (tmp_path / "api_keys.yml").write_text("keys: [{name: x}]\n")
    result = runner.invoke(app, ["serve", "--home", str(tmp_path), "--port", "1"])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "invalid API keys file" in output
    assert "keys.0.sha256" in output


def test_create_key_accepts_the_decision_scopes(tmp_path: Path) -> None:
    args = ["api-key", "create", "--name", "email", "--home", str(tmp_path)]
    scopes = "profile:read,segments:read,decisions:write,decisions:read"
    assert runner.invoke(app, [*args, "--scopes", scopes]).exit_code == 0
    (entry,) = load_keys_file(tmp_path / "api_keys.yml").keys
    assert [s.value for s in entry.scopes] == scopes.split(",")
