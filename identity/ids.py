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

Every event goes to ``customer_id_history`` with the run, the time and a cause.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from identity._frames import empty_frame
from identity.vocabulary import ALIAS_SCHEMA, HISTORY_SCHEMA

CUSTOMER_ID_PREFIX: Final[str] = "cus_"


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
        born = self.history[np.isin(events, ["created", "split"])]
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


def assign_customer_ids(
    clusters: pd.DataFrame,
    previous: PreviousState | None,
    *,
    salt: str,
    run_id: str,
    now: datetime,
    merge_causes: Mapping[int, str] | None = None,
    split_causes: Mapping[int, str] | None = None,
) -> IdAssignment:
    """Give every cluster a customer id, inheriting previous ids where records overlap.

    ``clusters`` has ``record_uid`` and ``cluster`` (any integer label). ``merge_causes`` /
    ``split_causes`` map a cluster label to a human-readable cause for history events.
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
        "previous_customers": 0,
        "previous_ids_kept": 0,
        "previous_records_same_id": None,
    }
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
