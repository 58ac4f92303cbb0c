"""The identity graph: records are nodes, accepted evidence are edges, customers are components.

Two guards make a component a customer only when it is plausible: it holds at most
``max_cluster_size`` records, and never two different values of a unique identifier type (two
CRM customer numbers). A component that breaks a guard is split by removing its weakest evidence
first (model edges before rule edges, lower match probability first, then phone < email < other
identifiers < unique identifiers) until every part holds the guards; records are never dropped.

Removing edges weakest-first until a part is valid yields exactly the maximal valid clusters of
the single-linkage merge tree built strongest-first (Kruskal), so the split is computed with one
union-find pass instead of repeated connectivity checks; every edge whose endpoints end in
different parts is reported as removed, with the guard that caused it.

Connected components of the whole graph come from ``scipy.sparse.csgraph`` on integer node ids
(sub-second for millions of records); NetworkX holds the graph of each component that must be
split or explained, with every piece of evidence on its edges.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import networkx as nx
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from identity.rules import empty_edge_frame, rule_strength

logger = logging.getLogger(__name__)

SIZE_GUARD: Final[str] = "max_cluster_size"


def unique_guard(identifier_type: str) -> str:
    """Name of the guard for one unique identifier type."""
    return f"unique_{identifier_type}"


@dataclass(frozen=True)
class SplitEvent:
    """One component that broke a guard and the parts it was split into."""

    causes: tuple[str, ...]
    component_size: int
    part_sizes: tuple[int, ...]
    removed_edges: int
    record_uids: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for logs and metadata."""
        return {
            "causes": list(self.causes),
            "component_size": self.component_size,
            "part_sizes": list(self.part_sizes),
            "removed_edges": self.removed_edges,
        }


@dataclass
class ClusterResult:
    """Cluster label per record, the edges with split removals marked, and the split log."""

    clusters: pd.DataFrame
    edges: pd.DataFrame
    splits: list[SplitEvent] = field(default_factory=list)


def edge_strength(edges: pd.DataFrame, unique_types: Sequence[str]) -> pd.DataFrame:
    """Sortable strength columns: (class, probability, weight); larger is stronger."""
    is_rule = edges["evidence_type"].astype("str").eq("rule").to_numpy()
    ranks = rule_strength(edges["rule"].astype("str").tolist(), unique_types)
    return pd.DataFrame(
        {
            "strength_class": np.where(is_rule, ranks, 0).astype(np.int8),
            "strength_probability": edges["match_probability"].astype("float64").fillna(0.0),
            "strength_weight": edges["match_weight"].astype("float64").fillna(np.inf),
        },
        index=edges.index,
    )


def build_graph(
    record_uids: Sequence[str],
    edges: pd.DataFrame,
    *,
    unique_types: Sequence[str] = (),
    attributes: Mapping[str, Mapping[str, Any]] | None = None,
) -> nx.Graph:
    """A NetworkX graph of records with every piece of evidence on its edge.

    Each edge has ``evidence`` (a list of edge-frame rows as dicts, strongest first) and
    ``strength`` (the strongest evidence's sort key) so that splitting and explanations agree.
    """
    graph = nx.Graph()
    for uid in record_uids:
        graph.add_node(uid, **(dict(attributes.get(uid, {})) if attributes else {}))
    if edges.empty:
        return graph
    strength = edge_strength(edges, unique_types)
    frame = pd.concat([edges.reset_index(drop=True), strength.reset_index(drop=True)], axis=1)
    frame = frame.sort_values(
        ["strength_class", "strength_probability", "strength_weight"], ascending=False
    )
    for row in frame.to_dict("records"):
        u, v = row["record_uid_l"], row["record_uid_r"]
        key = (row["strength_class"], row["strength_probability"], row["strength_weight"])
        evidence = {k: _plain(row[k]) for k in edges.columns}
        if graph.has_edge(u, v):
            graph[u][v]["evidence"].append(evidence)
        else:
            graph.add_edge(u, v, evidence=[evidence], strength=key)
    return graph


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


class _MergeTree:
    """Union-find that remembers the merge tree and each node's guard state."""

    def __init__(self, n: int, unique_values: Sequence[Mapping[str, str]], max_size: int) -> None:
        self.parent = list(range(n))
        self.node_of_root = list(range(n))
        self.size = [1] * n
        self.values: list[dict[str, str]] = [dict(v) for v in unique_values]
        self.conflicts: list[tuple[str, ...]] = [() for _ in range(n)]
        self.children: list[tuple[int, int] | None] = [None] * n
        self.node_parent: list[int] = [-1] * n
        self.max_size = max_size

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> int:
        """Merge the sets of leaves a and b; return the merge node id."""
        ra, rb = self.find(a), self.find(b)
        na, nb = self.node_of_root[ra], self.node_of_root[rb]
        node = len(self.size)
        self.size.append(self.size[na] + self.size[nb])
        conflicts = set(self.conflicts[na]) | set(self.conflicts[nb])
        merged = dict(self.values[na])
        for type_, value in self.values[nb].items():
            if merged.setdefault(type_, value) != value:
                conflicts.add(type_)
        self.values.append(merged)
        self.conflicts.append(tuple(sorted(conflicts)))
        self.children.append((na, nb))
        self.node_parent.append(-1)
        self.node_parent[na] = node
        self.node_parent[nb] = node
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.node_of_root[ra] = node
        return node

    def node_of(self, x: int) -> int:
        return self.node_of_root[self.find(x)]

    def lowest_common(self, a: int, b: int) -> int:
        """The merge node where leaves a and b first became connected."""
        ancestors = set()
        node = a
        while node != -1:
            ancestors.add(node)
            node = self.node_parent[node]
        node = b
        while node not in ancestors:
            node = self.node_parent[node]
        return node

    def causes(self, node: int) -> tuple[str, ...]:
        """Guards a node breaks (empty when valid)."""
        causes = tuple(unique_guard(t) for t in self.conflicts[node])
        if self.size[node] > self.max_size:
            causes = (*causes, SIZE_GUARD)
        return causes

    def valid_parts(self, roots: Sequence[int], n_leaves: int) -> list[list[int]]:
        """Leaves of the maximal valid nodes below ``roots``."""
        parts: list[list[int]] = []
        stack = list(roots)
        while stack:
            node = stack.pop()
            if not self.causes(node):
                parts.append(self._leaves(node, n_leaves))
                continue
            children = self.children[node]
            if children is None:  # a single record cannot be split further
                parts.append([node])
                continue
            stack.extend(children)
        return parts

    def _leaves(self, node: int, n_leaves: int) -> list[int]:
        leaves: list[int] = []
        stack = [node]
        while stack:
            current = stack.pop()
            if current < n_leaves:
                leaves.append(current)
            else:
                children = self.children[current]
                assert children is not None
                stack.extend(children)
        return leaves


def split_component(
    graph: nx.Graph,
    unique_values: Mapping[str, Mapping[str, str]],
    max_cluster_size: int,
) -> tuple[list[list[str]], dict[tuple[str, str], str], tuple[str, ...]]:
    """Split one component so each part holds the guards, removing weakest evidence first.

    Returns the parts (lists of record uids), the removed edges mapped to the guard that removed
    them, and the guards the whole component broke.
    """
    nodes = sorted(graph.nodes)
    index = {uid: i for i, uid in enumerate(nodes)}
    tree = _MergeTree(len(nodes), [unique_values.get(uid, {}) for uid in nodes], max_cluster_size)
    ordered = sorted(
        graph.edges(data="strength"),
        key=lambda e: (-e[2][0], -e[2][1], -e[2][2], min(e[0], e[1]), max(e[0], e[1])),
    )
    for u, v, _ in ordered:
        a, b = index[u], index[v]
        if tree.find(a) != tree.find(b):
            tree.union(a, b)
    roots = sorted({tree.node_of(i) for i in range(len(nodes))})
    top_causes = tuple(sorted({c for r in roots for c in tree.causes(r)}))
    parts = tree.valid_parts(roots, len(nodes))
    part_of = {leaf: number for number, part in enumerate(parts) for leaf in part}
    removed: dict[tuple[str, str], str] = {}
    for u, v, _ in ordered:
        a, b = index[u], index[v]
        if part_of[a] != part_of[b]:
            causes = tree.causes(tree.lowest_common(a, b))
            removed[(min(u, v), max(u, v))] = causes[0] if causes else top_causes[0]
    return (
        sorted(([nodes[i] for i in part] for part in parts), key=lambda p: (-len(p), min(p))),
        removed,
        top_causes,
    )


def resolve_clusters(
    record_uids: Sequence[str] | pd.Series,
    edges: pd.DataFrame,
    *,
    unique_values: pd.DataFrame | None = None,
    unique_types: Sequence[str] = (),
    max_cluster_size: int,
) -> ClusterResult:
    """Customers as guarded components of the graph of accepted edges.

    ``edges`` is an audited edge frame (``is_accepted``, ``rejected_reason``); only accepted
    edges connect records, and edges removed by a split come back with ``is_accepted`` false
    and ``rejected_reason`` ``split:<guard>``. ``unique_values`` is a long identifier frame
    restricted to the unique types.
    """
    uids = pd.Index(pd.unique(pd.Series(record_uids, dtype="str")))
    n = len(uids)
    edges = empty_edge_frame() if edges.empty else edges.reset_index(drop=True)
    accepted = edges["is_accepted"].to_numpy(dtype=bool) if len(edges) else np.zeros(0, bool)
    live = edges[accepted]
    left = uids.get_indexer(live["record_uid_l"])
    right = uids.get_indexer(live["record_uid_r"])
    if (left < 0).any() or (right < 0).any():
        unknown = sorted(
            set(live["record_uid_l"][left < 0]) | set(live["record_uid_r"][right < 0])
        )[:5]
        raise ValueError(f"edges reference records that are not in the record frame: {unknown}")
    matrix = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(matrix, directed=False)
    labels = labels.astype(np.int64)

    sizes = np.bincount(labels)
    suspects = set(np.flatnonzero(sizes > max_cluster_size).tolist())
    per_record: dict[str, dict[str, str]] = {}
    if unique_values is not None and not unique_values.empty:
        frame = unique_values[unique_values["identifier_type"].isin(list(unique_types))]
        frame = frame.sort_values(["record_uid", "identifier_type", "identifier_value"])
        frame = frame.drop_duplicates(["record_uid", "identifier_type"])
        codes = uids.get_indexer(frame["record_uid"])
        frame = frame.assign(component=np.where(codes >= 0, labels[codes], -1))
        frame = frame[frame["component"] >= 0]
        conflicted = frame.groupby(["component", "identifier_type"])["identifier_value"].nunique()
        suspects |= {int(c) for c in conflicted[conflicted > 1].index.get_level_values(0)}
        suspect_rows = frame[frame["component"].isin(list(suspects))]
        for uid, type_, value in suspect_rows[
            ["record_uid", "identifier_type", "identifier_value"]
        ].itertuples(index=False):
            per_record.setdefault(uid, {})[type_] = value

    splits: list[SplitEvent] = []
    reasons = edges["rejected_reason"].astype("object").to_numpy().copy()
    accepted_out = accepted.copy()
    if suspects:
        next_label = int(labels.max()) + 1 if n else 0
        live_labels = labels[left] if len(left) else np.zeros(0, np.int64)
        live_positions = np.flatnonzero(accepted)
        for component in sorted(suspects):
            members = np.flatnonzero(labels == component)
            in_component = live_labels == component
            comp_edges = edges.iloc[live_positions[in_component]]
            graph = build_graph(uids[members].tolist(), comp_edges, unique_types=unique_types)
            parts, removed, causes = split_component(graph, per_record, max_cluster_size)
            for part in parts[1:]:
                labels[uids.get_indexer(part)] = next_label
                next_label += 1
            pair_keys = list(
                zip(comp_edges["record_uid_l"], comp_edges["record_uid_r"], strict=True)
            )
            for position, pair in zip(live_positions[in_component], pair_keys, strict=True):
                guard = removed.get(pair)
                if guard is not None:
                    accepted_out[position] = False
                    reasons[position] = f"split:{guard}"
            event = SplitEvent(
                causes=causes,
                component_size=len(members),
                part_sizes=tuple(len(p) for p in parts),
                removed_edges=len(removed),
                record_uids=tuple(sorted(uids[members].tolist())),
            )
            splits.append(event)
            logger.debug("split component: %s", event.as_dict())
        logger.info(
            "guards split %d component(s): %s",
            len(splits),
            Counter(cause for event in splits for cause in event.causes),
        )
    out_edges = edges.assign(
        is_accepted=accepted_out, rejected_reason=pd.Series(reasons, dtype="str")
    )
    clusters = pd.DataFrame({"record_uid": pd.Series(uids, dtype="str"), "cluster": labels})
    return ClusterResult(clusters=clusters, edges=out_edges, splits=splits)
