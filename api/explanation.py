"""Why two identity records are (or are not) one customer, from the snapshot's evidence rows.

This answers what ``identity.explain.explain_pair`` answers, over the snapshot's
``identity_records`` / ``identity_evidence`` rows instead of the lake's frames, because
``identity.explain`` works on pandas frames (and imports pandas, NetworkX's graph helpers and the
Splink model) and the API must not load those in a serving worker for one admin-only field. The
path search is the same: records are nodes, accepted links are edges, and the strongest chain
is NetworkX's shortest path with identity's costs (a rule link costs almost nothing, stronger
rules less; a model link costs ``-log(probability)``), so rules are preferred to model scores
and likelier scores to weaker ones.

Two things only the lake has are left to ``cdp identity explain``: model scores below the
threshold (never published, so "why not" cannot say how far below), and which identifier types
are unique (the snapshot does not record them, so every ``same_<identifier>`` rule ranks alike;
the path can differ from the CLI's only between equally short rule paths).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Final

from api.repositories.database import Row

#: Rule ranks, as identity ranks them when splitting (``identity.rules.rule_strength``).
PHONE_RANK: Final[int] = 1
EMAIL_RANK: Final[int] = 2
IDENTIFIER_RANK: Final[int] = 3
UNIQUE_IDENTIFIER_RANK: Final[int] = 4
#: Why-not sentence when no scored pair is published between the two customers.
NO_MODEL_LINK: Final[str] = (
    "the model did not score any pair of their records at or above its threshold (lower "
    "scores are not published to the API; `cdp identity explain` computes them with the "
    "saved model)."
)


@dataclass(frozen=True)
class RecordInfo:
    """Where a record comes from and whose it is."""

    record_uid: str
    source: str | None
    record_id: str | None
    customer_id: str | None


@dataclass(frozen=True)
class Link:
    """Two records and the evidence rows between them (from ``record_uid``'s side)."""

    record_uid: str
    other_record_uid: str
    evidence: list[Row]


@dataclass(frozen=True)
class PairAnswer:
    """Whether two records are one customer: the path of links, or the refusals and reasons."""

    record_a: RecordInfo
    record_b: RecordInfo
    is_same_customer: bool
    path: list[Link] = field(default_factory=list)
    refused: list[Link] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    records: Mapping[str, RecordInfo] = field(default_factory=dict)

    def summary(self) -> str:
        """One sentence without personal data (sources and rules, never record ids)."""
        a, b = self.record_a, self.record_b
        if not self.is_same_customer:
            return f"different customers ({a.customer_id}, {b.customer_id}): " + " ".join(
                self.reasons
            )
        if not self.path:
            return f"one customer ({a.customer_id}): " + (
                " ".join(self.reasons) or "the same record."
            )
        steps = [self.records[self.path[0].record_uid].source or "?"]
        for link in self.path:
            rules = "/".join(dict.fromkeys(str(row["rule"]) for row in link.evidence))
            steps.append(f"-[{rules}]- {self.records[link.other_record_uid].source or '?'}")
        return f"one customer ({a.customer_id}): " + " ".join(steps)


def strength(row: Row, unique_rules: frozenset[str]) -> tuple[int, float, float]:
    """Sort key of one piece of evidence (larger is stronger), as identity's graph sorts it."""
    probability = float(row.get("match_probability") or 0.0)
    weight = row.get("match_weight")
    weight_key = math.inf if weight is None else float(weight)
    if row.get("evidence_type") != "rule":
        return (0, probability, weight_key)
    rule = str(row.get("rule"))
    if rule in unique_rules:
        rank = UNIQUE_IDENTIFIER_RANK
    elif rule == "same_phone":
        rank = PHONE_RANK
    elif rule == "same_email":
        rank = EMAIL_RANK
    else:
        rank = IDENTIFIER_RANK
    return (rank, probability, weight_key)


def cost(key: tuple[int, float, float]) -> float:
    """Path cost of a link (``identity.explain``'s): rules almost free, model -log(p)."""
    rank, probability, _ = key
    if rank > 0:
        return 1e-6 * (5 - rank)
    return -math.log(max(min(probability, 1.0), 1e-12)) + 1e-6


def _records(first: Row, second: Row, evidence: Iterable[Row]) -> dict[str, RecordInfo]:
    """Every record the evidence names (each link is stored from both of its ends)."""
    known: dict[str, RecordInfo] = {}
    for row in evidence:
        uid = str(row["other_record_uid"])
        if uid not in known:
            known[uid] = RecordInfo(
                uid,
                row.get("other_source"),
                row.get("other_record_id"),
                row.get("other_customer_id"),
            )
    for row in (first, second):
        uid = str(row["record_uid"])
        known[uid] = RecordInfo(uid, row.get("source"), row.get("record_id"), row["customer_id"])
    return known


def _grouped(rows: Iterable[Row], unique_rules: frozenset[str]) -> dict[tuple[str, str], list[Row]]:
    links: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        links.setdefault((str(row["record_uid"]), str(row["other_record_uid"])), []).append(row)
    for found in links.values():
        found.sort(key=lambda r: strength(r, unique_rules), reverse=True)
    return links


def _path(
    uid_a: str, uid_b: str, rows: Sequence[Row], unique_rules: frozenset[str]
) -> list[Link] | None:
    """The strongest chain of accepted links from a to b inside one customer; None if none."""
    import networkx as nx  # imported on first use: the API's start-up does not need it

    directed = _grouped((r for r in rows if r.get("is_accepted")), unique_rules)
    graph = nx.Graph()
    graph.add_nodes_from((uid_a, uid_b))
    for (u, v), found in directed.items():
        weight = cost(strength(found[0], unique_rules))
        if not graph.has_edge(u, v) or weight < graph[u][v]["cost"]:
            graph.add_edge(u, v, cost=weight)
    try:
        nodes = nx.shortest_path(graph, uid_a, uid_b, weight="cost")
    except nx.NetworkXNoPath:
        return None
    links = []
    for u, v in pairwise(nodes):
        found = directed.get((u, v)) or [
            {**row, "record_uid": u, "other_record_uid": v} for row in directed[(v, u)]
        ]
        links.append(Link(u, v, found))
    return links


def _refusal(reason: str | None) -> str:
    if reason and reason.startswith("split:"):
        return f"was removed when a component was split (guard '{reason.removeprefix('split:')}')"
    return f"was refused by the guard '{reason or 'unknown'}'"


def explain_records(
    record_a: Row,
    record_b: Row,
    evidence: Mapping[str, Sequence[Row]],
    *,
    unique_identifier_types: Iterable[str] = (),
) -> PairAnswer:
    """Explain two ``identity_records`` rows given ``identity_evidence`` rows by customer id.

    ``evidence`` must hold the rows of both records' customers (one row per link and direction).
    """
    unique_rules = frozenset(f"same_{t}" for t in unique_identifier_types)
    customer_a, customer_b = str(record_a["customer_id"]), str(record_b["customer_id"])
    uid_a, uid_b = str(record_a["record_uid"]), str(record_b["record_uid"])
    rows_a = list(evidence.get(customer_a, ()))
    rows_b = list(evidence.get(customer_b, ())) if customer_b != customer_a else []
    records = _records(record_a, record_b, [*rows_a, *rows_b])
    first, second = records[uid_a], records[uid_b]
    if customer_a == customer_b:
        if uid_a == uid_b:
            return PairAnswer(first, second, True, records=records)
        inside = [r for r in rows_a if r.get("other_customer_id") == customer_a]
        path = _path(uid_a, uid_b, inside, unique_rules)
        if path is None:  # a snapshot published without identity edges
            reasons = ["the snapshot holds no accepted links between their records."]
            return PairAnswer(first, second, True, reasons=reasons, records=records)
        return PairAnswer(first, second, True, path=path, records=records)

    between = [
        r for r in rows_a if r.get("other_customer_id") == customer_b and not r.get("is_accepted")
    ]
    grouped = _grouped(between, unique_rules)
    direct = grouped.pop((uid_a, uid_b), [])
    refused = [Link(uid_a, uid_b, direct)] if direct else []
    refused += [Link(u, v, rows) for (u, v), rows in grouped.items()]
    reasons = [
        f"a direct link ({row['rule']}) between the two records {_refusal(row['rejected_reason'])}."
        for row in direct
    ]
    indirect = Counter(
        str(row.get("rejected_reason") or "unknown") for rows in grouped.values() for row in rows
    )
    reasons += [
        f"{count} other link(s) between their customers {_refusal(reason)}."
        for reason, count in sorted(indirect.items())
    ]
    if not refused:
        reasons.append("no shared identifier links their customers.")
    if not any(r.get("evidence_type") == "model" for r in between):
        reasons.append(NO_MODEL_LINK)
    return PairAnswer(first, second, False, refused=refused, reasons=reasons, records=records)
