"""cdp.yml validation: every mistake names the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dagster_project.lib.config import ConfigError, SourceKind, load_config

VALID = {
    "version": 1,
    "landing": "landing",
    "sources": [
        {
            "name": "crm",
            "kind": "people",
            "format": "csv",
            "path": "crm/*.csv",
            "record_key": "customer_number",
            "mapping": {"first_name": "fname", "street_address": ["house_no", "street"]},
            "identifiers": {"loyalty_id": "customer_number"},
        },
        {
            "name": "web",
            "kind": "events",
            "format": "jsonl",
            "path": "web/*.jsonl",
            "record_key": "event_id",
            "mapping": {"event_type": "type", "occurred_at": "ts"},
            "identifiers": {"cookie_id": "cookie"},
        },
    ],
}


def _write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "cdp.yml"
    text = content if isinstance(content, str) else yaml.safe_dump(content)
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_config_loads_with_kinds_and_columns(tmp_path: Path) -> None:
    loaded = load_config(_write(tmp_path, VALID))
    crm = loaded.config.source("crm")
    assert crm.kind is SourceKind.PEOPLE
    assert crm.mapped_columns() == {"customer_number", "fname", "house_no", "street"}
    assert loaded.landing_dir(tmp_path / "home") == tmp_path / "landing"


def test_source_files_resolve_glob_under_landing(tmp_path: Path) -> None:
    loaded = load_config(_write(tmp_path, VALID))
    (tmp_path / "landing" / "crm").mkdir(parents=True)
    (tmp_path / "landing" / "crm" / "b.csv").write_text("x")
    (tmp_path / "landing" / "crm" / "a.csv").write_text("x")
    (tmp_path / "landing" / "crm" / "notes.txt").write_text("x")
    files = loaded.source_files(loaded.config.source("crm"), tmp_path)
    assert [f.name for f in files] == ["a.csv", "b.csv"]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cdp\.yml: configuration file not found"):
        load_config(tmp_path / "cdp.yml")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "sources:\n  - name: crm\n    kind: [people\n")
    with pytest.raises(ConfigError, match=r"cdp\.yml: line \d+, column \d+: invalid YAML"):
        load_config(path)


def test_non_mapping_top_level(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(_write(tmp_path, "- just\n- a list\n"))


def test_non_utf8_config(tmp_path: Path) -> None:
    path = tmp_path / "cdp.yml"
    path.write_bytes(b"sources:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_config(path)


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (lambda c: c["sources"][0].update(kind="persons"), "sources.0.kind", "people"),
        (lambda c: c["sources"][0].update(format="xml"), "sources.0.format", "csv"),
        (lambda c: c["sources"][0].pop("path"), "sources.0.path", "Field required"),
        (lambda c: c["sources"][0].update(name="CRM Export"), "sources.0.name", "not a valid"),
        (
            lambda c: c["sources"][0]["mapping"].update(shoe_size="size"),
            "sources.0",
            "mapping.shoe_size: 'shoe_size' is not a field of kind 'people'",
        ),
        (
            lambda c: c["sources"][1]["mapping"].pop("occurred_at"),
            "sources.1",
            "requires occurred_at",
        ),
        (
            lambda c: c["sources"][0]["identifiers"].update(email="mail"),
            "sources.0",
            "identifiers.email",
        ),
        (lambda c: c["sources"][1].update(name="crm"), "sources.1.name", "duplicate source"),
        (lambda c: c.update(colour="blue"), "colour", "Extra inputs are not permitted"),
        (lambda c: c["sources"][0].update(record_key=[]), "sources.0.record_key", "at least one"),
    ],
)
def test_invalid_config_names_key_and_problem(tmp_path, mutate, key, problem) -> None:
    config = yaml.safe_load(yaml.safe_dump(VALID))
    mutate(config)
    with pytest.raises(ConfigError) as excinfo:
        load_config(_write(tmp_path, config))
    message = str(excinfo.value)
    assert str(tmp_path / "cdp.yml") in message
    assert key in message
    assert problem in message


REALTIME = {
    "decisions": {
        "placements": {
            "daily_email": {"channels": ["email"], "subject": None},
            "price_drop": {"channels": ["email"], "kind": "trigger", "items": 1},
        },
        "templates": {},
        "caps": [],
    },
    "realtime": {
        "triggers": [
            {"name": "drop", "kind": "price_drop_on_viewed", "placement": "price_drop"},
            {"name": "cart", "kind": "cart_abandoned", "placement": "price_drop"},
        ],
        "channels": {"email": {"url": "http://127.0.0.1:8025/hooks/email"}},
    },
}


def test_realtime_section_is_read_and_checked_against_the_policy(tmp_path: Path) -> None:
    loaded = load_config(_write(tmp_path, {**VALID, **REALTIME}))
    assert [t.name for t in loaded.config.realtime.triggers] == ["drop", "cart"]

    wrong = yaml.safe_load(yaml.safe_dump({**VALID, **REALTIME}))
    wrong["realtime"]["triggers"][0]["placement"] = "daily_email"
    wrong["realtime"]["triggers"][1]["channels"] = ["sms"]
    wrong["realtime"]["channels"]["email"]["url"] = "ftp://x"
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, wrong))
    message = str(error.value)
    assert "realtime.channels.email.url: 'ftp://x' is not an http(s) URL" in message

    del wrong["realtime"]["channels"]
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, wrong))
    message = str(error.value)
    assert (
        "realtime.triggers.0.placement: 'daily_email' is not a decisions placement of kind: "
        in (message)
    )
    assert "realtime.triggers.1.channels: placement 'price_drop' does not send on 'sms'" in message
