"""The identity-quality bar of ``make bench``: FEBRL read from the installed wheel, a plain
Splink model competent enough to be a bar, and a gate that fails on each way to miss it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # bench_identity imports its sibling by name
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def baselines() -> ModuleType:
    return _load("identity_baselines")


def test_febrl_comes_from_the_installed_wheel_with_its_truth(baselines: ModuleType) -> None:
    data = baselines.febrl("febrl1")
    assert len(data) == 1000
    assert data["entity_id"].notna().all() and data["entity_id"].nunique() == 500
    with pytest.raises(ValueError, match="unknown data set"):
        baselines.febrl("febrl9")


def test_the_plain_model_is_a_competent_bar(baselines: ModuleType) -> None:
    data = baselines.febrl("febrl1")
    plain = baselines.plain_splink(baselines.febrl_canonical(data))
    scores = baselines.pairwise_scores(plain.labels, data["entity_id"])
    assert scores.precision >= 0.99
    assert scores.recall >= 0.95
    assert plain.seconds > 0


def test_the_gate_fails_on_precision_recall_and_time(baselines: ModuleType) -> None:
    bench = _load("bench_identity")
    good = baselines.Scores(1.0, 0.99, 0.995, 100, 99, 99)
    plain = baselines.Scores(1.0, 0.98, 0.99, 100, 98, 98)
    row = bench.Comparison("x", 10, good, 3.0, plain, 2.0)
    assert row.failures() == []
    imprecise = baselines.Scores(0.998, 0.99, 0.99, 100, 99, 99)
    assert "precision" in bench.Comparison("x", 10, imprecise, 3.0, plain, 2.0).failures()[0]
    assert "recall" in bench.Comparison("x", 10, plain, 3.0, good, 2.0).failures()[0]
    assert "2x" in bench.Comparison("x", 10, good, 4.1, plain, 2.0).failures()[0]
