"""Per-request context: the caller, the snapshot it was given, its DataLoaders, PII reads."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from strawberry.dataloader import DataLoader

from api.graphql.dataloaders import by_key, by_page
from api.repositories.customers import (
    EventPage,
    customers_by_id,
    event_pages,
    identifiers_by_customer,
    segments_by_customer,
    traits_by_customer,
)
from api.repositories.database import Database, RequestDatabase, Row
from api.repositories.identity import (
    evidence_by_customer,
    history_by_customer,
    records_by_customer,
)
from api.repositories.live import LiveState
from api.repositories.recommendations import (
    products_by_id,
    recommendations_by_customer,
    similar_by_product,
)
from api.repositories.segments import MemberPage, all_segments, member_pages
from api.sealing import Sealer
from api.security import Principal
from api.snapshot import Snapshot

if TYPE_CHECKING:
    from api.decisioning import DecisionRuntime
    from api.privacy import ErasureRuntime
    from events.live import LiveProfile

#: The audit log's customer for a revealed value whose record no customer owns.
UNRESOLVED_OWNER = "(unresolved)"


@dataclass(frozen=True)
class Limits:
    """Page sizes from the settings."""

    default_page_size: int
    max_page_size: int


class Loaders:
    """The request's DataLoaders, each created on first use."""

    def __init__(self, db: Database, live: LiveState | None = None) -> None:
        self._db = db
        self._live = live

    @cached_property
    def live(self) -> DataLoader[tuple[str, ...], LiveProfile | None]:
        """Live profiles, keyed by a customer's ids (its own first, then merged ids)."""
        live = self._live

        async def load(groups: list[tuple[str, ...]]) -> list[LiveProfile | None]:
            return live.profiles(groups) if live is not None else [None] * len(groups)

        return DataLoader(load_fn=load)

    @cached_property
    def customer(self) -> DataLoader[str, Row | None]:
        """Golden records."""
        return by_key(self._db, customers_by_id, lambda: None)

    @cached_property
    def traits(self) -> DataLoader[str, Row | None]:
        """customer_traits rows."""
        return by_key(self._db, traits_by_customer, lambda: None)

    @cached_property
    def identifiers(self) -> DataLoader[str, list[Row]]:
        """customer_identifiers rows."""
        return by_key(self._db, identifiers_by_customer, list)

    @cached_property
    def segments(self) -> DataLoader[str, list[Row]]:
        """customer_segments rows."""
        return by_key(self._db, segments_by_customer, list)

    @cached_property
    def members(self) -> DataLoader[MemberPage, list[Row]]:
        """Pages of segment members."""
        return by_page(self._db, member_pages)

    @cached_property
    def events(self) -> DataLoader[EventPage, list[Row]]:
        """Pages of customer_events."""
        return by_page(self._db, event_pages)

    @cached_property
    def records(self) -> DataLoader[str, list[Row]]:
        """identity_records rows."""
        return by_key(self._db, records_by_customer, list)

    @cached_property
    def evidence(self) -> DataLoader[str, list[Row]]:
        """identity_evidence rows."""
        return by_key(self._db, evidence_by_customer, list)

    @cached_property
    def history(self) -> DataLoader[str, list[Row]]:
        """customer_id_history rows."""
        return by_key(self._db, history_by_customer, list)

    @cached_property
    def products(self) -> DataLoader[str, Row | None]:
        """products rows."""
        return by_key(self._db, products_by_id, lambda: None)

    @cached_property
    def recommendations(self) -> DataLoader[str, list[Row]]:
        """customer_recommendations rows with their products, in rank order."""
        return by_key(self._db, recommendations_by_customer, list)

    @cached_property
    def similar_products(self) -> DataLoader[str, list[Row]]:
        """similar_products rows with their products, in rank order."""
        return by_key(self._db, similar_by_product, list)


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
        decisions: DecisionRuntime | None = None,
        live: LiveState | None = None,
        erasures: ErasureRuntime | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.principal = principal
        self.limits = limits
        self.request_id = request_id
        self.sealer = sealer
        self.deadline = deadline
        self._decisions = decisions
        #: the stream processor's live profiles (None: this context serves the snapshot only)
        self.live = live
        self._erasures = erasures
        self.pii_reads: dict[str, set[str]] = defaultdict(set)

    @cached_property
    def db(self) -> RequestDatabase:
        """The snapshot as this request reads it: statements stop at the deadline."""
        return RequestDatabase(self.snapshot.db, self.deadline)

    @property
    def decisions(self) -> DecisionRuntime:
        """The process's decision service (the app always gives one; a bare context does not)."""
        if self._decisions is None:
            raise RuntimeError("this context was built without the decision service")
        return self._decisions

    @property
    def erasures(self) -> ErasureRuntime:
        """Erasure requests (the app always gives them; a bare context does not)."""
        if self._erasures is None:
            raise RuntimeError("this context was built without erasure requests")
        return self._erasures

    @cached_property
    def loaders(self) -> Loaders:
        """This request's DataLoaders (batched and cached for the request only)."""
        return Loaders(self.db, self.live)

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
