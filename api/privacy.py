"""Erasure requests over GraphQL: the API records and lists the person; the pipeline erases.

``requestErasure`` (admin scope) resolves the person as ``cdp privacy erase`` does
(:func:`privacy.erasure.plan`), records the request by keyed hashes and puts every identifier
on the suppression list, so from that moment the intake drops their events and the next ingest
drops their records. Rewriting the lake, the warehouse and the snapshots is the pipeline's work
(the API never writes them): the ``pending_erasures`` sensor carries the request out within a
minute, and ``erasureRequest(id:)`` reports its status per store.

An unknown person gives a ``nothing_held`` request (the API sees what is published and logged;
``cdp privacy erase`` also scans the lake for data not yet published).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from events.config import IdentifierTypes
from privacy.access import AccessError, PersonRef
from privacy.erasure import Planned, plan
from privacy.keys import Keyring
from privacy.suppression import ErasureRequest, ErasureStep, PrivacyStore


class ErasureInputError(ValueError):
    """The request names no one (bad identifier type or value); says what to do."""


@dataclass
class ErasureRuntime:
    """One API process's view of the privacy store (``app.state.cdp.erasures``)."""

    home: Path
    keyring: Keyring
    identifier_types: IdentifierTypes

    @property
    def store(self) -> PrivacyStore:
        """The privacy store (one connection per thread)."""
        return PrivacyStore.at(self.home)

    def request(self, person: PersonRef, requested_by: str) -> Planned:
        """Record a request and list the person; ErasureInputError for unusable input."""
        try:
            return plan(
                self.home,
                person,
                self.keyring,
                requested_by=requested_by,
                identifier_types=self.identifier_types,
            )
        except AccessError as exc:
            raise ErasureInputError(str(exc)) from exc

    def status(self, request_id: str) -> tuple[ErasureRequest, list[ErasureStep]] | None:
        """A request and its steps, or None for an unknown id."""
        found = self.store.request(request_id)
        if found is None:
            return None
        return found, self.store.steps(request_id)
