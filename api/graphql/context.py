"""Per-request context: the caller, the snapshot it was given, its DataLoaders, PII reads."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from strawberry.dataloader import DataLoader

from api.graphql.dataloaders.customers import customer_loader
from api.graphql.dataloaders.events import events_loader
from api.graphql.dataloaders.identifiers import identifiers_loader
from api.graphql.dataloaders.identity import evidence_loader, history_loader, records_loader
from api.graphql.dataloaders.segments import customer_segments_loader, members_loader
from api.graphql.dataloaders.traits import traits_loader
from api.repositories.customers import EventPage
from api.repositories.database import Database, RequestDatabase, Row
from api.repositories.segments import MemberPage, all_segments
from api.sealing import Sealer
from api.security import Principal
from api.snapshot import Snapshot

#: The audit log's customer for a revealed value whose record no customer owns.
UNRESOLVED_OWNER = "(unresolved)"


@dataclass(frozen=True)
class Limits:
    """Page sizes from the settings."""

    default_page_size: int
    max_page_size: int


class Loaders:
    """The request's DataLoaders, each created on first use."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @cached_property
    def customer(self) -> DataLoader[str, Row | None]:
        """Golden records."""
        return customer_loader(self._db)

    @cached_property
    def traits(self) -> DataLoader[str, Row | None]:
        """customer_traits rows."""
        return traits_loader(self._db)

    @cached_property
    def identifiers(self) -> DataLoader[str, list[Row]]:
        """customer_identifiers rows."""
        return identifiers_loader(self._db)

    @cached_property
    def segments(self) -> DataLoader[str, list[Row]]:
        """customer_segments rows."""
        return customer_segments_loader(self._db)

    @cached_property
    def members(self) -> DataLoader[MemberPage, list[Row]]:
        """Pages of segment members."""
        return members_loader(self._db)

    @cached_property
    def events(self) -> DataLoader[EventPage, list[Row]]:
        """Pages of customer_events."""
        return events_loader(self._db)

    @cached_property
    def records(self) -> DataLoader[str, list[Row]]:
        """identity_records rows."""
        return records_loader(self._db)

    @cached_property
    def evidence(self) -> DataLoader[str, list[Row]]:
        """identity_evidence rows."""
        return evidence_loader(self._db)

    @cached_property
    def history(self) -> DataLoader[str, list[Row]]:
        """customer_id_history rows."""
        return history_loader(self._db)


class Context:
    """What every resolver gets as ``info.context``."""

    def __init__(
        self,
        snapshot: Snapshot,
        principal: Principal,
        limits: Limits,
        request_id: str,
        sealer: Sealer,
        deadline: float,
    ) -> None:
        self.snapshot = snapshot
        self.principal = principal
        self.limits = limits
        self.request_id = request_id
        self.sealer = sealer
        self.deadline = deadline
        self.pii_reads: dict[str, set[str]] = defaultdict(set)

    @cached_property
    def db(self) -> RequestDatabase:
        """The snapshot as this request reads it: statements stop at the deadline."""
        return RequestDatabase(self.snapshot.db, self.deadline)

    @cached_property
    def loaders(self) -> Loaders:
        """This request's DataLoaders (batched and cached for the request only)."""
        return Loaders(self.db)

    def segment_catalogue(self) -> dict[str, Row]:
        """Segments by name; read once per snapshot (snapshots never change)."""
        cache = self.snapshot.cache
        catalogue = cache.get("segments")
        if catalogue is None:
            catalogue = {row["segment"]: row for row in all_segments(self.snapshot.db)}
            cache["segments"] = catalogue
        return catalogue

    def reveal(self, customer_id: str | None, field: str) -> None:
        """Note that a personal field of a customer is in the response, unmasked."""
        self.pii_reads[customer_id or UNRESOLVED_OWNER].add(field)

    def audit_entries(self, operation: str) -> list[dict[str, Any]]:
        """One audit entry per customer whose PII this request revealed."""
        return [
            {
                "key": self.principal.name,
                "customer_id": customer_id,
                "fields": sorted(fields),
                "operation": operation,
                "request_id": self.request_id,
                "snapshot_id": self.snapshot.id,
            }
            for customer_id, fields in sorted(self.pii_reads.items())
        ]
