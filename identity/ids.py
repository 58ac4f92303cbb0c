"""Stable customer ids: a customer keeps its id across reruns, model changes, merges and splits.

Rules (issue 3, item 6):

- every previous customer id has one *heir*: the current cluster holding most of its records
  (ties: the cluster with the smallest record uid), so on a split the larger part keeps the id;
- a cluster that is the heir of several previous ids is a merge: the oldest id stays (created
  first; ties: more records, then the smaller id) and the others become aliases of it;
- a cluster that inherits nothing gets a new id (``split`` if some of its records belonged to a
  previous customer, else ``created``); previous ids with no records left are ``retired``;
- new ids are ``cus_`` + 16 hex characters of sha256(salt, smallest record uid), so a first run
  on the same input gives the same ids even without previous state; a collision with any id or
  alias ever issued is resolved by rehashing with a counter.

Claims (issue 14): the real-time path gives an unknown person a *provisional* id at once and
says which identifiers (type, normalized value) it was given for. The batch run reconciles:

- a claim goes to the cluster with the most records holding one of its identifiers (ties: the
  cluster with the smallest record uid); a claim whose identifiers no record holds, or whose id
  was ever issued before (a previous run already settled it), is ignored;
- a cluster that inherits no previous id keeps its oldest claim (linked first; ties: more
  records, then the smaller id) instead of a new id (``provisional``, not ``created``/``split``);
  its other claims become aliases of it (``provisional_merged``);
- a cluster that inherits a previous id keeps it, as above, and every claim becomes an alias
  of it (``provisional_merged``): live data and decisions logged under the provisional id follow
  the person, since aliases are how merged ids are served;
- every claimed id is reserved, so no new id can ever take one (a claim not yet matched may be
  kept by a later run).

Without claims nothing changes. Every event goes to ``customer_id_history`` with the run, the
time and a cause.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from identity._frames import empty_frame
from identity.vocabulary import ALIAS_SCHEMA, BIRTH_EVENT_TYPES, HISTORY_SCHEMA

CUSTOMER_ID_PREFIX: Final[str] = "cus_"
#: What a customer id looks like (``new_customer_id``; the real-time path issues the same form).
CUSTOMER_ID_PATTERN: Final[re.Pattern[str]] = re.compile(r"^cus_[0-9a-f]{16}$")
#: Columns of a claims frame: a provisional id, one identifier it holds, when it was linked
#: (``linked_at`` may be missing or null: such a claim ranks after dated ones).
CLAIM_COLUMNS: Final[tuple[str, ...]] = (
    "customer_id",
    "identifier_type",
    "identifier_value",
    "linked_at",
)
#: The record identifiers claims are matched against (normalized, as identity's rules use them).
RECORD_IDENTIFIER_COLUMNS: Final[tuple[str, ...]] = (
    "record_uid",
    "identifier_type",
    "identifier_value",
)


def empty_history() -> pd.DataFrame:
    """A customer_id_history frame with no rows."""
    return empty_frame(HISTORY_SCHEMA)


def empty_aliases() -> pd.DataFrame:
    """A customer_aliases frame with no rows."""
    return empty_frame(ALIAS_SCHEMA)


@dataclass
class PreviousState:
    """What the last run wrote: the record -> customer map, aliases and history."""

    identity_map: pd.DataFrame
    aliases: pd.DataFrame = field(default_factory=empty_aliases)
    history: pd.DataFrame = field(default_factory=empty_history)

    def created_at(self) -> dict[str, pd.Timestamp]:
        """When each customer id was first issued (from the history)."""
        events = _objects(self.history["event_type"])
        born = self.history[np.isin(events, list(BIRTH_EVENT_TYPES))]
        if born.empty:
            return {}
        first = (
            born.assign(customer_id=_objects(born["customer_id"]))
            .groupby("customer_id")["occurred_at"]
            .min()
        )
        return dict(zip(first.index.tolist(), first.tolist(), strict=True))

    def issued_ids(self) -> set[str]:
        """Every id ever handed out (current, aliases, history), never to be reissued."""
        ids: set[str] = set(self.identity_map["customer_id"].dropna().tolist())
        ids.update(self.aliases["alias_customer_id"].dropna().tolist())
        ids.update(self.history["customer_id"].dropna().tolist())
        return ids


def _objects(series: pd.Series) -> np.ndarray:
    """Python strings in an object array: hashing them (isin, groupby) is far cheaper than
    Arrow-backed ``str`` columns' per-element paths."""
    return np.array(series.tolist(), dtype=object)


@dataclass
class IdAssignment:
    """Customer id per record plus this run's history events and the full alias table."""

    identity_map: pd.DataFrame
    events: pd.DataFrame
    aliases: pd.DataFrame
    stats: dict[str, Any]


def new_customer_id(anchor: str, salt: str, taken: set[str] | None = None) -> str:
    """A new id derived from the cluster's smallest record uid; never one in ``taken``."""
    counter = 0
    while True:
        material = f"{salt}\x1f{anchor}" if counter == 0 else f"{salt}\x1f{anchor}\x1f{counter}"
        candidate = CUSTOMER_ID_PREFIX + hashlib.sha256(material.encode()).hexdigest()[:16]
        if taken is None or candidate not in taken:
            return candidate
        counter += 1


def resolve_alias(customer_id: str, aliases: Mapping[str, str]) -> str:
    """The current id for an id that may be an alias (follows chains, stops on cycles)."""
    seen = {customer_id}
    while customer_id in aliases:
        customer_id = aliases[customer_id]
        if customer_id in seen:
            break
        seen.add(customer_id)
    return customer_id


def alias_lookup(aliases: pd.DataFrame) -> dict[str, str]:
    """alias -> current customer id, from a customer_aliases frame."""
    if aliases.empty:
        return {}
    return dict(
        zip(
            aliases["alias_customer_id"].astype(str).tolist(),
            aliases["customer_id"].astype(str).tolist(),
            strict=True,
        )
    )


def _events(
    rows: Iterable[tuple[str, str, str | None, str]], run_id: str, now: datetime
) -> pd.DataFrame:
    rows = list(rows)
    if not rows:
        return empty_history()
    types, ids, related, causes = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "occurred_at": pd.Series([now] * len(rows), dtype="datetime64[us, UTC]"),
            "run_id": pd.Series([run_id] * len(rows), dtype="str"),
            "event_type": pd.Series(types, dtype="str"),
            "customer_id": pd.Series(ids, dtype="str"),
            "related_customer_id": pd.Series(related, dtype="str"),
            "cause": pd.Series(causes, dtype="str"),
        }
    )


@dataclass(frozen=True)
class _Claim:
    """One provisional id won by a cluster: when it was linked and how many records back it."""

    customer_id: str
    linked_at: pd.Timestamp
    records: int


_NEVER: Final[pd.Timestamp] = pd.Timestamp.max.tz_localize("UTC")


def _text_or_none(values: pd.Series) -> list[str | None]:
    """Stripped strings, None for null or empty (claims come from another process's file)."""
    out: list[str | None] = []
    for value in values.tolist():
        text = None if value is None or pd.isna(value) else str(value).strip()
        out.append(text or None)
    return out


def _claims_by_cluster(
    claims: pd.DataFrame | None,
    record_identifiers: pd.DataFrame | None,
    clusters: pd.DataFrame,
    anchors: pd.Series,
    taken: set[str],
    stats: dict[str, Any],
) -> tuple[dict[int, list[_Claim]], set[str]]:
    """Which cluster wins each claim (most records holding its identifiers; ties: smallest
    record uid), each cluster's claims ranked oldest first, and every well-formed claimed id.

    Malformed rows (an id not shaped like a customer id, no identifier) are counted in
    ``claims_invalid``; claims on ids issued before and claims no record supports are counted
    and ignored.
    """
    if claims is None or claims.empty:
        return {}, set()
    missing = [c for c in CLAIM_COLUMNS[:3] if c not in claims]
    if missing:
        raise ValueError(f"claims need columns {list(CLAIM_COLUMNS[:3])}; missing {missing}")
    linked = (
        pd.to_datetime(claims["linked_at"], utc=True)
        if "linked_at" in claims
        else pd.Series(pd.NaT, index=claims.index, dtype="datetime64[us, UTC]")
    )
    frame = pd.DataFrame(
        {
            "claim_id": np.array(_text_or_none(claims["customer_id"]), dtype=object),
            "identifier_type": np.array(_text_or_none(claims["identifier_type"]), dtype=object),
            "identifier_value": np.array(_text_or_none(claims["identifier_value"]), dtype=object),
            "linked_at": linked.reset_index(drop=True),
        }
    )
    valid = (
        frame["identifier_type"].notna()
        & frame["identifier_value"].notna()
        & np.array(
            [bool(c and CUSTOMER_ID_PATTERN.match(c)) for c in frame["claim_id"]], dtype=bool
        )
    )
    stats["claims_invalid"] = int((~valid).sum())
    frame = frame[valid]
    claimed_ids = set(frame["claim_id"].tolist())
    issued = claimed_ids & taken
    stats["claims"] = len(claimed_ids)
    stats["claims_already_issued"] = len(issued)
    frame = frame[~frame["claim_id"].isin(issued)]
    if frame.empty or record_identifiers is None or record_identifiers.empty:
        stats["claims_unmatched"] = int(frame["claim_id"].nunique())
        return {}, claimed_ids
    held = pd.DataFrame(
        {column: _objects(record_identifiers[column]) for column in RECORD_IDENTIFIER_COLUMNS}
    )
    holders = frame[["claim_id", "identifier_type", "identifier_value"]].merge(
        held, on=["identifier_type", "identifier_value"]
    )[["claim_id", "record_uid"]]
    # only the clusters of records holding a claimed value: a few among millions
    members = clusters[clusters["record_uid"].isin(set(holders["record_uid"].tolist()))]
    members = members.assign(record_uid=_objects(members["record_uid"]))
    support = (
        holders.merge(members, on="record_uid")[["claim_id", "cluster", "record_uid"]]
        .drop_duplicates()
        .groupby(["claim_id", "cluster"])
        .size()
        .rename("records")
        .reset_index()
    )
    support["anchor"] = anchors.reindex(support["cluster"]).to_numpy()
    winners = support.sort_values(
        ["claim_id", "records", "anchor"], ascending=[True, False, True]
    ).drop_duplicates("claim_id")
    stats["claims_unmatched"] = int(frame["claim_id"].nunique()) - len(winners)
    born = frame.groupby("claim_id")["linked_at"].min()
    by_cluster: dict[int, list[_Claim]] = {}
    for claim_id, cluster, records in zip(
        winners["claim_id"], winners["cluster"], winners["records"], strict=True
    ):
        linked_at = born.get(claim_id)
        by_cluster.setdefault(int(cluster), []).append(
            _Claim(str(claim_id), _NEVER if pd.isna(linked_at) else linked_at, int(records))
        )
    for ranked in by_cluster.values():
        ranked.sort(key=lambda c: (c.linked_at, -c.records, c.customer_id))
    return by_cluster, claimed_ids


def assign_customer_ids(
    clusters: pd.DataFrame,
    previous: PreviousState | None,
    *,
    salt: str,
    run_id: str,
    now: datetime,
    merge_causes: Mapping[int, str] | None = None,
    split_causes: Mapping[int, str] | None = None,
    claims: pd.DataFrame | None = None,
    record_identifiers: pd.DataFrame | None = None,
) -> IdAssignment:
    """Give every cluster a customer id, inheriting previous ids where records overlap.

    ``clusters`` has ``record_uid`` and ``cluster`` (any integer label). ``merge_causes`` /
    ``split_causes`` map a cluster label to a human-readable cause for history events.
    ``claims`` (:data:`CLAIM_COLUMNS`) are the real-time path's provisional ids, matched to
    clusters through ``record_identifiers`` (:data:`RECORD_IDENTIFIER_COLUMNS`, values
    normalized as the claims' are); see the module docstring for who keeps which id.

    Raises:
        ValueError: ``claims`` lacks one of its columns.
    """
    merge_causes = merge_causes or {}
    split_causes = split_causes or {}
    clusters = clusters[["record_uid", "cluster"]].reset_index(drop=True)
    anchors = clusters.groupby("cluster")["record_uid"].min()
    taken: set[str] = previous.issued_ids() if previous is not None else set()
    cluster_to_id: dict[int, str] = {}
    event_rows: list[tuple[str, str, str | None, str]] = []
    new_aliases: list[tuple[str, str, str]] = []
    stats: dict[str, Any] = {
        "customers": len(anchors),
        "created": 0,
        "merged": 0,
        "split": 0,
        "retired": 0,
        "provisional": 0,
        "provisional_merged": 0,
        "claims": 0,
        "claims_invalid": 0,
        "claims_already_issued": 0,
        "claims_unmatched": 0,
        "previous_customers": 0,
        "previous_ids_kept": 0,
        "previous_records_same_id": None,
    }
    claimed, claimed_ids = _claims_by_cluster(
        claims, record_identifiers, clusters, anchors, taken, stats
    )
    prev_map = (
        previous.identity_map[["record_uid", "customer_id"]].drop_duplicates("record_uid")
        if previous is not None and not previous.identity_map.empty
        else None
    )
    if prev_map is not None:
        prev_map = prev_map.assign(customer_id=_objects(prev_map["customer_id"]))
    if prev_map is not None:
        assert previous is not None
        stats["previous_customers"] = int(prev_map["customer_id"].nunique())
        joined = clusters.merge(
            prev_map.rename(columns={"customer_id": "prev_id"}), on="record_uid", how="left"
        )
        overlap = (
            joined.dropna(subset=["prev_id"])
            .groupby(["prev_id", "cluster"], sort=False)
            .size()
            .rename("n")
            .reset_index()
        )
        overlap["anchor"] = anchors.reindex(overlap["cluster"]).to_numpy()
        overlap = overlap.sort_values(["prev_id", "n", "anchor"], ascending=[True, False, True])
        heirs = overlap.drop_duplicates("prev_id").copy()
        born = previous.created_at()
        far_future = pd.Timestamp.max.tz_localize("UTC")
        heirs["born"] = [born.get(p, far_future) for p in heirs["prev_id"].tolist()]
        heirs = heirs.sort_values(
            ["cluster", "born", "n", "prev_id"], ascending=[True, True, False, True]
        )
        keepers = heirs.drop_duplicates("cluster")
        cluster_to_id.update(
            zip(keepers["cluster"].tolist(), keepers["prev_id"].astype(str).tolist(), strict=True)
        )
        stats["previous_ids_kept"] = len(keepers)
        kept = set(keepers["prev_id"].tolist())
        absorbed = heirs[np.array([p not in kept for p in heirs["prev_id"].tolist()], dtype=bool)]
        for cluster, prev_id in zip(absorbed["cluster"], absorbed["prev_id"], strict=True):
            keeper = cluster_to_id[int(cluster)]
            cause = merge_causes.get(int(cluster), "records now linked")
            event_rows.append(("merged", keeper, str(prev_id), cause))
            new_aliases.append((str(prev_id), keeper, cause))
        stats["merged"] = len(absorbed)
        # clusters that inherited nothing but hold records of previous customers: split parts
        origins = overlap[~overlap["cluster"].isin(keepers["cluster"])].sort_values(
            ["cluster", "n", "prev_id"], ascending=[True, False, True]
        )
        origin_of = dict(
            zip(
                origins.drop_duplicates("cluster")["cluster"].tolist(),
                origins.drop_duplicates("cluster")["prev_id"].astype(str).tolist(),
                strict=True,
            )
        )
        retired = sorted(set(prev_map["customer_id"].tolist()) - set(overlap["prev_id"].tolist()))
        for customer_id in retired:
            event_rows.append(("retired", customer_id, None, "no records left"))
        stats["retired"] = len(retired)
    else:
        origin_of = {}

    # claims: a cluster without an inherited id keeps its oldest claim; the others are aliases
    taken |= claimed_ids
    for cluster in sorted(claimed):
        ranked = claimed[cluster]
        keeper = cluster_to_id.get(cluster)
        if keeper is None:
            keeper = ranked[0].customer_id
            ranked = ranked[1:]
            cluster_to_id[cluster] = keeper
            origin = origin_of.get(cluster)
            cause = "real-time provisional customer kept its id"
            if origin is not None:
                split_cause = split_causes.get(cluster, "evidence no longer links these records")
                cause = f"{cause}; split off: {split_cause}"
            event_rows.append(("provisional", keeper, origin, cause))
            stats["provisional"] += 1
        for claim in ranked:
            cause = "real-time provisional customer found to be this customer"
            event_rows.append(("provisional_merged", keeper, claim.customer_id, cause))
            new_aliases.append((claim.customer_id, keeper, cause))
            stats["provisional_merged"] += 1

    anchor_of = dict(zip(anchors.index.tolist(), anchors.astype("str").tolist(), strict=True))
    missing = [c for c in anchor_of if c not in cluster_to_id]
    for cluster in missing:
        customer_id = new_customer_id(anchor_of[cluster], salt, taken)
        taken.add(customer_id)
        cluster_to_id[cluster] = customer_id
        origin = origin_of.get(cluster)
        if origin is None:
            event_rows.append(("created", customer_id, None, "new records"))
            stats["created"] += 1
        else:
            cause = split_causes.get(cluster, "evidence no longer links these records")
            event_rows.append(("split", customer_id, origin, cause))
            stats["split"] += 1

    labels = clusters["cluster"].to_numpy()
    id_of = pd.Series(cluster_to_id)
    identity_map = pd.DataFrame(
        {
            "record_uid": clusters["record_uid"].astype("str"),
            "customer_id": pd.Series(id_of.reindex(labels).to_numpy(), dtype="str"),
        }
    )
    if prev_map is not None:
        both = identity_map.merge(prev_map, on="record_uid", suffixes=("", "_prev"))
        stats["previous_records_same_id"] = (
            float((both["customer_id"] == both["customer_id_prev"]).mean()) if len(both) else 1.0
        )
        stats["previous_id_retention"] = (
            stats["previous_ids_kept"] / stats["previous_customers"]
            if stats["previous_customers"]
            else 1.0
        )

    aliases = _updated_aliases(previous, new_aliases, now)
    return IdAssignment(
        identity_map=identity_map,
        events=_events(event_rows, run_id, now),
        aliases=aliases,
        stats=stats,
    )


def _updated_aliases(
    previous: PreviousState | None, new_aliases: list[tuple[str, str, str]], now: datetime
) -> pd.DataFrame:
    """Previous aliases retargeted through this run's merges, plus the new ones."""
    old = previous.aliases if previous is not None else empty_aliases()
    fresh = pd.DataFrame(
        {
            "alias_customer_id": pd.Series([a for a, _, _ in new_aliases], dtype="str"),
            "customer_id": pd.Series([c for _, c, _ in new_aliases], dtype="str"),
            "created_at": pd.Series([now] * len(new_aliases), dtype="datetime64[us, UTC]"),
            "cause": pd.Series([c for _, _, c in new_aliases], dtype="str"),
        }
    )
    frames = [f for f in (old, fresh) if not f.empty]
    if not frames:
        return empty_aliases()
    table = pd.concat(frames, ignore_index=True).drop_duplicates("alias_customer_id", keep="last")
    lookup = alias_lookup(table)
    table["customer_id"] = pd.Series(
        [resolve_alias(c, lookup) for c in table["customer_id"].astype(str).tolist()], dtype="str"
    )
    table = table[table["alias_customer_id"] != table["customer_id"]]
    table["created_at"] = table["created_at"].astype("datetime64[us, UTC]")
    return table.reset_index(drop=True)[list(ALIAS_SCHEMA)]
