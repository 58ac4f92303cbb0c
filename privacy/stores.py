"""What a store must do for erasure: erase a person, say what it found, and prove it is clean.

Every store that can hold personal data (the lake and its landing files, identity's outputs, the
warehouse, the serving snapshots, the event log and live state, the decision log, audit logs,
exports, Dagster's run storage) has one :class:`Eraser`. An eraser knows the person only as a
:class:`privacy.suppression.Suppression` (keyed hashes of their identifiers and customer ids):
it finds rows by normalizing and hashing the values it holds, so the same code erases a person
named today, re-checks an old request, and runs the erasure check over the whole list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from privacy.suppression import Suppression


@dataclass(frozen=True)
class EraseOutcome:
    """What one store removed (or pseudonymized) for one person; never a personal value."""

    #: rows, records, lines or files removed or pseudonymized, by what (``table``, ``file``)
    removed: dict[str, int] = field(default_factory=dict)
    #: True when the store does not exist in this CDP_HOME (nothing to do)
    absent: bool = False
    #: short notes for the operator (files rewritten, snapshot published), no values
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Everything removed."""
        return sum(self.removed.values())


@dataclass(frozen=True)
class ScanOutcome:
    """Matches of the list left in one store (0: clean); ``where`` names places, not values."""

    remaining: int = 0
    where: tuple[str, ...] = ()


class Eraser(Protocol):
    """One store's part in erasure (see the module docstring)."""

    #: short store name shown in the request's status per store (``lake``, ``serving``)
    name: str

    def related(self, person: Suppression) -> dict[str, str]:
        """Further ``{hash: type}`` entries this store links to the person (their order ids
        from the orders they placed), added to the list before anything is erased."""
        ...

    def erase(self, person: Suppression) -> EraseOutcome:
        """Remove every row, line or record that matches ``person`` (idempotent)."""
        ...

    def scan(self, suppression: Suppression) -> ScanOutcome:
        """Count what still matches ``suppression`` (the erasure check)."""
        ...
