"""How a run used the probabilistic model, and what its training learnt, in words to act on.

Splink says what it could not estimate in log lines (``Level ... not observed in dataset``);
``identity._splink_log`` keeps them with the training figures (``TrainedModel.training``). Raw,
they tell a user nothing to do. Here they become one row per comparison: learnt or not, from
how many pairs, and what to do about it. The identity asset and ``cdp identity resolve`` show
the same rows and the same one-line model summary, so the wording has one home. Everything
reads the JSON-ready ``stats["model"]`` / ``training`` dicts, so a saved run reads the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from identity.comparisons import comparison_specs
from identity.model import MIN_EM_PAIRS
from identity.vocabulary import IDENTITY_ATTRIBUTES

#: ``stats["model"]["status"]`` of a resolution: how the run used a probabilistic model.
MODEL_TRAINED: Final[str] = "trained"
MODEL_REUSED: Final[str] = "reused"
MODEL_SKIPPED: Final[str] = "skipped"
MODEL_OFF: Final[str] = "off"
#: ``ComparisonTraining.status`` values.
LEARNT: Final[str] = "learnt"
PARTLY_LEARNT: Final[str] = "partly learnt"
NOT_LEARNT: Final[str] = "not learnt"


@dataclass(frozen=True)
class ComparisonTraining:
    """What training learnt for one comparison, and what a user can do about the rest."""

    comparison: str
    #: Canonical attributes (cdp.yml mapping names) the comparison reads.
    attributes: tuple[str, ...]
    status: str
    #: Record pairs in the EM sessions with something to compare (None: not recorded).
    pairs: int | None
    #: Labels of the levels whose m is Splink's default, not learnt from the data.
    levels_not_learnt: tuple[str, ...]
    advice: str

    @property
    def is_learnt(self) -> bool:
        """Every level's m value came from the data."""
        return self.status == LEARNT


def _attributes() -> dict[str, tuple[str, ...]]:
    """Comparison -> canonical attributes it reads (a derived column stands for its own name)."""
    found = {}
    for spec in comparison_specs():
        columns = [c if c in IDENTITY_ATTRIBUTES else spec.name for c in spec.comparable]
        found[spec.name] = tuple(dict.fromkeys(columns))
    return found


def _advice(row: ComparisonTraining, sessions: Sequence[str], absent: Sequence[str]) -> str:
    """What a user can do about one comparison's m values (nothing, when they were learnt)."""
    named = " or ".join(row.attributes)
    if row.status == LEARNT:
        return f"learnt from {row.pairs:,} pairs; nothing to do" if row.pairs else "nothing to do"
    if row.status == PARTLY_LEARNT:
        levels = "; ".join(row.levels_not_learnt)
        if absent:
            missing = " and ".join(absent)
            return (
                f"Splink's default m for {levels}: no record has {missing}; map {missing} if a "
                f"source holds {'them' if len(absent) > 1 else 'it'} (other levels listed are "
                "rare here: nothing to do)"
            )
        return (
            f"Splink's default m for {levels}: never seen in the EM pairs (rare in these "
            "records); nothing to do unless your data often shows them"
        )
    if absent and len(absent) == len(row.attributes):
        found = f"no record has {named}"
    elif not sessions:
        found = f"no EM session ran (no blocking key found {MIN_EM_PAIRS:,} record pairs)"
    elif not row.pairs:
        found = f"no record pair in the EM sessions had {named} on both sides"
    else:
        found = f"only {row.pairs:,} comparable pairs in the EM sessions ({MIN_EM_PAIRS:,} needed)"
    return (
        f"no m learnt: {found}; add a source with {named} (or map its column), or accept "
        "Splink's default m values, used meanwhile"
    )


def comparison_training(
    training: Mapping[str, Any], attribute_records: Mapping[str, int] | None = None
) -> list[ComparisonTraining]:
    """Per comparison: learnt or not, from how many pairs, and what to do about it.

    ``training`` is ``TrainedModel.training`` (or ``stats["model"]["training"]``); empty for
    a model saved before these figures were kept. ``attribute_records`` (records holding each
    attribute, ``stats["model"]["attribute_records"]``) tells an attribute no source maps from
    a rare level.
    """
    pairs: Mapping[str, int] = training.get("em_comparable_pairs") or {}
    untrained = set(training.get("untrained_comparisons") or ())
    sessions = list(training.get("em_sessions") or ())
    diagnostics = training.get("diagnostics") or {}
    not_learnt: dict[str, list[str]] = {}
    for level in diagnostics.get("levels_not_learnt") or ():
        not_learnt.setdefault(level["comparison"], []).append(level["level"])
    attributes = _attributes()
    counts = attribute_records or {}
    rows = []
    for name in dict.fromkeys([*pairs, *not_learnt, *untrained]):
        levels = tuple(not_learnt.get(name, ()))
        status = NOT_LEARNT if name in untrained else PARTLY_LEARNT if levels else LEARNT
        count = pairs.get(name)
        row = ComparisonTraining(
            comparison=name,
            attributes=attributes.get(name, (name,)),
            status=status,
            pairs=None if count is None else int(count),
            levels_not_learnt=levels,
            advice="",
        )
        absent = [a for a in row.attributes if a in counts and not counts[a]]
        rows.append(replace(row, advice=_advice(row, sessions, absent)))
    return rows


def describe_model(model: Mapping[str, Any]) -> str:
    """One line on how the run used the model (``stats["model"]`` of a resolution)."""
    status = model.get("status")
    if status == MODEL_SKIPPED or "skipped" in model:
        return (
            f"model skipped: {model['skipped']}; customers were resolved with deterministic "
            "links alone (shared emails, phones and identifiers)"
        )
    if not model.get("used"):
        return "model not used (training off); customers were resolved with deterministic links"
    edges = f"{int(model.get('edges', 0)):,} model link(s) above match probability " + str(
        model.get("match_threshold", "")
    )
    if status == MODEL_REUSED:
        return f"model reused from an earlier run; {edges}"
    rows = comparison_training(model.get("training") or {})
    learnt = sum(row.status != NOT_LEARNT for row in rows)
    trained_on = int((model.get("training") or {}).get("trained_on_records", 0))
    return (
        f"model trained on {trained_on:,} records, {learnt} of {len(rows)} comparisons learnt; "
        f"{edges}"
    )
