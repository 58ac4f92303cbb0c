"""Splink's log records and warnings, captured while identity trains or applies a model.

Splink tells what it could not estimate by logging: ``Level ... not observed in dataset, unable
to train m value``, ``[EM sampling] Probe returned zero blocked pairs``, ``Your model is not yet
fully trained``, one line per EM iteration. On a terminal that is noise nobody can act on; kept,
it says which comparison levels were not learnt and why. So training and prediction run inside
:func:`capture_splink`: the records of the calling thread are parsed into
:class:`SplinkDiagnostics` (reported with the model's training figures) and passed on verbatim
at DEBUG on the ``identity.splink`` logger. Splink's own ``warnings.warn`` calls are kept the
same way; other libraries' warnings raised meanwhile are re-issued as they were.

Records of other threads go where they would have gone without the capture, so a capture in one
thread never hides another's Splink output.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import splink

RAW_LOGGER: Final[logging.Logger] = logging.getLogger("identity.splink")
_SPLINK: Final[str] = "splink"
_SPLINK_DIR: Final[str] = str(Path(splink.__file__).resolve().parent)
_NOT_OBSERVED = re.compile(
    r"Level (?P<level>.+?) on comparison (?P<comparison>\S+) not observed in dataset, "
    r"unable to train (?P<parameter>[mu]) value"
)
_EM_SAMPLING = "[EM sampling] "
_CONVERGED = re.compile(r"EM converged after (?P<iterations>\d+) iterations")


@dataclass
class SplinkDiagnostics:
    """What Splink said during one training or prediction, by stage (``prior``, ``u``, EM keys)."""

    stage: str = ""
    #: (comparison, parameter, level) -> stages in which Splink never saw the level.
    not_observed: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    #: The last word of each EM session on sampling (the probe's outcome, or the pairs kept).
    em_sampling: dict[str, str] = field(default_factory=dict)
    em_iterations: dict[str, int] = field(default_factory=dict)
    #: Other warnings (first line) and how often they came.
    warnings: Counter[str] = field(default_factory=Counter)
    records: int = 0

    def add(self, level: int, message: str) -> None:
        """Parse one message of Splink's; the raw text goes to DEBUG."""
        self.records += 1
        text = message.strip()
        RAW_LOGGER.debug("splink %s [%s]: %s", logging.getLevelName(level), self.stage, text)
        if found := _NOT_OBSERVED.search(" ".join(text.split())):
            key = (found["comparison"], found["parameter"], found["level"])
            stages = self.not_observed.setdefault(key, [])
            if self.stage not in stages:
                stages.append(self.stage)
        elif text.startswith(_EM_SAMPLING):
            self.em_sampling[self.stage] = text[len(_EM_SAMPLING) :]
        elif found := _CONVERGED.search(text):
            self.em_iterations[self.stage] = int(found["iterations"])
        elif level >= logging.WARNING:  # Splink often starts with "WARNING:" on its own line
            lines = [line for line in text.removeprefix("WARNING:").splitlines() if line.strip()]
            self.warnings[lines[0].strip() if lines else "(empty)"] += 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures (saved with the model's training figures)."""
        return {
            "levels_not_observed": [
                {"comparison": c, "parameter": p, "level": lvl, "stages": stages}
                for (c, p, lvl), stages in self.not_observed.items()
            ],
            "em_sampling": dict(self.em_sampling),
            "em_iterations": dict(self.em_iterations),
            "splink_warnings": [{"message": m, "count": n} for m, n in self.warnings.items()],
            "splink_log_records": self.records,
        }

    def levels_not_learnt(
        self,
        splink: Mapping[str, Any],
        thin: Sequence[str],
        evidence: Mapping[str, int],
        min_pairs: int,
    ) -> list[dict[str, str]]:
        """Levels of the trained model without a learnt m value, each with the reason.

        ``thin`` are the comparisons whose m values were dropped for lack of evidence (fewer
        than ``min_pairs``) and ``evidence`` the comparable pairs EM had for each comparison.
        """
        rows = []
        for comparison in splink.get("comparisons", []):
            name = comparison["output_column_name"]
            for level in comparison["comparison_levels"]:
                if level.get("is_null_level") or "m_probability" in level:
                    continue
                label = level.get("label_for_charts", "")
                stages = self.not_observed.get((name, "m", label), [])
                if name in thin:
                    why = f"{evidence.get(name, 0)} comparable pairs in EM ({min_pairs} needed)"
                elif stages:
                    why = f"not in the pairs of {', '.join(stages)}"
                else:
                    why = "no EM session estimated it"
                rows.append({"comparison": name, "level": label, "why": why})
        return rows


class _Router(logging.Handler):
    """On the ``splink`` logger while captures run: each thread's records to its capture."""

    def __init__(self, passed_level: int) -> None:
        super().__init__()
        self.captures: dict[int, SplinkDiagnostics] = {}
        self.passed_level = passed_level  # what other threads' records needed to be shown

    def emit(self, record: logging.LogRecord) -> None:
        capture = self.captures.get(record.thread or 0)
        if capture is not None:
            capture.add(record.levelno, record.getMessage())
        elif record.levelno >= self.passed_level:
            logging.getLogger().handle(record)  # as propagation would have


_lock = threading.Lock()
_router: _Router | None = None
_saved: tuple[int, bool] = (logging.NOTSET, True)


def _install(capture: SplinkDiagnostics) -> None:
    global _router, _saved
    splink = logging.getLogger(_SPLINK)
    with _lock:
        if _router is None:
            _saved = (splink.level, splink.propagate)
            _router = _Router(splink.getEffectiveLevel())
            splink.addHandler(_router)
            splink.propagate = False
            # INFO holds the EM iteration counts and sampling outcomes the diagnostics report.
            splink.setLevel(min(splink.getEffectiveLevel(), logging.INFO))
        _router.captures[threading.get_ident()] = capture


def _uninstall() -> None:
    global _router
    splink = logging.getLogger(_SPLINK)
    with _lock:
        if _router is None:
            return
        _router.captures.pop(threading.get_ident(), None)
        if not _router.captures:
            splink.removeHandler(_router)
            splink.setLevel(_saved[0])
            splink.propagate = _saved[1]
            _router = None


def splink_stage(stage: str) -> None:
    """Name the stage the current thread's capture attributes Splink's messages to."""
    with _lock:
        capture = _router.captures.get(threading.get_ident()) if _router else None
    if capture is not None:
        capture.stage = stage


@contextmanager
def capture_splink(stage: str = "") -> Iterator[SplinkDiagnostics]:
    """Capture Splink's log records (this thread's) and warnings while the block runs."""
    capture = SplinkDiagnostics(stage=stage)
    caught: list[warnings.WarningMessage] = []
    _install(capture)
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield capture
    finally:
        _uninstall()
        for warning in caught:
            if str(Path(warning.filename).resolve()).startswith(_SPLINK_DIR):
                capture.add(logging.WARNING, str(warning.message))
            else:
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
