"""The same world through the same questions gives the same API answers.

``tests/support/baselines/api_answers.json`` holds the answers recorded on the sample world of
``tests/support/api_answers.py`` (re-recorded for issue 12, when the generator was calibrated to
published e-commerce figures and the world's behaviour changed). Any difference is a change of
behaviour: if it is intended (the world generator, identity, the marts or the questions changed
on purpose), re-record the baseline deliberately and say why in the commit::

    python -m tests.support.api_answers tests/support/baselines/api_answers.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.api_answers import build_home, collect_answers

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BASELINE = Path(__file__).parent / "support" / "baselines" / "api_answers.json"


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    root = tmp_path_factory.mktemp("answers")
    home = build_home(root)
    after = collect_answers(home, root / "audit")
    before = json.loads(BASELINE.read_text(encoding="utf-8"))
    return before, after


def test_world_segments_and_lookups_are_unchanged(answers: tuple[dict, dict]) -> None:
    before, after = answers
    assert after["world"] == before["world"]
    assert after["segments"] == before["segments"]
    assert after["lookups"] == before["lookups"]


def test_profiles_are_unchanged(answers: tuple[dict, dict]) -> None:
    before, after = answers
    assert sorted(after["profiles"]) == sorted(before["profiles"])
    for customer_id, old in before["profiles"].items():
        assert after["profiles"][customer_id] == old, customer_id
