"""The decision policy: an invalid one fails at start naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dagster_project.lib.config import ConfigError, load_config
from dagster_project.lib.generate.config_writer import sample_config, write_config
from decisions.policy import (
    DecisionsPolicy,
    PolicyError,
    check_references,
    duration_seconds,
    load_policy,
    parse_policy,
    policy_version,
)

SEGMENTS = {"high_value", "frequent_buyers", "at_risk"}
TRAITS = {"predicted_clv", "purchase_probability", "churn_risk"}


def _write(tmp_path: Path, decisions: object) -> Path:
    path = tmp_path / "cdp.yml"
    path.write_text(yaml.safe_dump({"version": 1, "sources": [], "decisions": decisions}))
    return path


def _problem(raw: dict) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policy(raw, "cdp.yml")
    return str(caught.value)


def test_no_decisions_key_gives_a_usable_default(tmp_path: Path) -> None:
    path = tmp_path / "cdp.yml"
    path.write_text("version: 1\nsources: []\n")
    policy = load_policy(path)
    assert set(policy.placements) == {"daily_email"}
    assert [cap.name for cap in policy.caps] == ["email_daily"]
    assert policy.experiments == ()
    assert policy.cap_rules("email")[0].window_seconds == 86400


def test_a_cap_of_minus_one_fails_naming_the_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path, {"caps": [{"name": "d", "channels": ["email"], "max": -1, "window": "24h"}]}
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert str(path) in message
    assert "decisions.caps.0.max" in message


def test_cdp_config_fails_on_the_same_cap(tmp_path: Path) -> None:
    data = sample_config()
    data["decisions"]["caps"][0]["max"] = -1
    path = tmp_path / "cdp.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"decisions\.caps\.0\.max"):
        load_config(path)


def test_unknown_segment_and_trait_name_the_key() -> None:
    policy = parse_policy(
        {
            "offers": [
                {"name": "lux", "segments": ["high_value", "vipz"], "traits": {"clv": {"min": 1}}}
            ]
        }
    )
    with pytest.raises(PolicyError) as caught:
        check_references(policy, SEGMENTS, TRAITS)
    message = str(caught.value)
    assert "decisions.offers.0.segments.1: unknown segment 'vipz'" in message
    assert "high_value" in message  # the known ones are listed
    assert "decisions.offers.0.traits.clv: unknown trait 'clv'" in message
    check_references(
        parse_policy({"offers": [{"name": "ok", "segments": ["at_risk"]}]}), SEGMENTS, TRAITS
    )


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (
            {"placements": {"x": {"channels": ["email"], "subject": "nope"}}},
            "decisions.placements.x.subject: unknown template 'nope'",
        ),
        (
            {"placements": {"x": {"channels": ["email"], "items": 2, "wildcard_slots": 3}}},
            "decisions.placements.x.wildcard_slots",
        ),
        (
            {"placements": {"x": {"channels": ["fax"]}}},
            "decisions.placements.x.channels: unknown channel 'fax'",
        ),
        (
            {"placements": {"x": {"channels": ["email"], "period": "0h"}}},
            "decisions.placements.x.period",
        ),
        (
            {"placements": {"x": {"channels": ["email"], "period": "daily"}}},
            "decisions.placements.x.period",
        ),
        (
            {"experiments": [{"name": "e", "placement": "nowhere", "arms": [{"name": "a"}]}]},
            "decisions.experiments.0.placement: unknown placement 'nowhere'",
        ),
        (
            {
                "experiments": [
                    {"name": "e", "placement": "daily_email", "arms": [{"name": "a", "weight": 0}]}
                ]
            },
            "decisions.experiments.0.arms.0.weight",
        ),
        (
            {
                "experiments": [
                    {
                        "name": "e",
                        "placement": "daily_email",
                        "arms": [{"name": "a", "subject": "nope"}],
                    }
                ]
            },
            "decisions.experiments.0.arms.0.subject: unknown template 'nope'",
        ),
        (
            {
                "experiments": [
                    {
                        "name": "e",
                        "placement": "daily_email",
                        "arms": [{"name": "a", "wildcard_slots": 9}],
                    }
                ]
            },
            "decisions.experiments.0.arms.0.wildcard_slots",
        ),
        (
            {"templates": {"t": {"text": "Hi {{ frist_name }}"}}},
            "decisions.templates.t.text: unknown variable 'frist_name'",
        ),
        (
            {"templates": {"t": {"text": "Hi {{ first_name "}}},
            "decisions.templates.t.text: template syntax error",
        ),
        (
            {"placements": {"x": {"channels": ["web", "email"], "kind": "display"}}},
            "decisions.placements.x.channels: 'email' sends messages",
        ),
        ({"holdout": {"share": 1.5}}, "decisions.holdout.share"),
        ({"exploration": {"share": -0.1}}, "decisions.exploration.share"),
        ({"frequency": {"min_sends": 5, "max_sends": 2}}, "decisions.frequency"),
        (
            {"caps": [{"name": "c", "channels": ["email"], "max": 1, "window": "-1d"}]},
            "decisions.caps.0.window",
        ),
        ({"unknown_key": 1}, "decisions.unknown_key"),
    ],
)
def test_structural_errors_name_the_key(raw: dict, key: str) -> None:
    assert key in _problem(raw)


def test_durations_parse() -> None:
    assert duration_seconds("30m") == 1800
    assert duration_seconds("24h") == duration_seconds("1d") == 86400
    assert duration_seconds("7d") == 7 * 86400
    with pytest.raises(ValueError):
        duration_seconds("0s")


def test_policy_version_is_stable_and_changes_with_the_policy() -> None:
    first = policy_version(DecisionsPolicy())
    assert first == policy_version(DecisionsPolicy())
    assert len(first) == 12
    assert first != policy_version(parse_policy({"exploration": {"share": 0.2}}))


def test_the_sample_world_writes_a_valid_policy(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    policy = load_policy(path)
    assert policy == load_config(path).config.decisions
    assert {"daily_email", "home_hero"} <= set(policy.placements)
    suppressed = {c for rule in policy.suppression for c in rule.categories}
    assert "electronics" in suppressed and "grocery" not in suppressed
    check_references(
        policy,
        {
            "at_risk",
            "browsers",
            "cart_abandoners",
            "email_unsubscribed",
            "frequent_buyers",
            "high_value",
            "infrequent_buyers",
        },
        {"predicted_clv", "purchase_probability", "churn_risk"},
    )
