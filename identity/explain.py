"""Why records are (or are not) one customer, from the run's own outputs.

Explanations read the same tables the run wrote (``identity_map``, ``identity_edges``, aliases),
so what they say is what happened: the edges that joined a customer with their evidence, the
strongest path between two records, or the reason two records stayed apart (a guard rejected
the link, a split removed it, the model scored them below its threshold, or nothing links them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import networkx as nx
import orjson
import pandas as pd

from identity.graph import build_graph
from identity.ids import alias_lookup, resolve_alias
from identity.model import TrainedModel
from identity.vocabulary import AUDITED_EDGE_COLUMNS


@dataclass(frozen=True)
class Evidence:
    """One reason two records are linked (or were refused a link)."""

    record_uid_l: str
    record_uid_r: str
    evidence_type: str
    rule: str
    identifier_type: str | None
    match_probability: float
    match_weight: float | None
    details: dict[str, Any]
    is_accepted: bool = True
    rejected_reason: str | None = None

    def describe(self) -> str:
        """One line a person can read."""
        if self.evidence_type == "rule":
            value = self.details.get("value")
            text = f"{self.rule}" + (f" ({value})" if value else "")
        else:
            text = f"{self.rule} match probability {self.match_probability:.4f}"
            if self.match_weight is not None:
                text += f", weight {self.match_weight:.2f}"
        if not self.is_accepted:
            text += f" [rejected: {self.rejected_reason}]"
        return text


@dataclass(frozen=True)
class CustomerExplanation:
    """A customer's records and the evidence that holds them together."""

    customer_id: str
    requested_id: str
    records: pd.DataFrame
    edges: list[Evidence]
    rejected: list[Evidence]

    @property
    def is_alias(self) -> bool:
        """Whether the id asked for was merged into ``customer_id``."""
        return self.customer_id != self.requested_id


@dataclass(frozen=True)
class PairExplanation:
    """Whether two records are one customer, and why (or why not)."""

    record_uid_a: str
    record_uid_b: str
    same_customer: bool
    customer_id_a: str | None
    customer_id_b: str | None
    path: list[Evidence] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A short paragraph for a CLI or API response."""
        if self.same_customer:
            steps = "; ".join(
                f"{e.record_uid_l} - {e.record_uid_r}: {e.describe()}" for e in self.path
            )
            return f"same customer {self.customer_id_a} via {steps}"
        return "different customers: " + " ".join(self.reasons)


def _evidence(row: Mapping[str, Any]) -> Evidence:
    details = row.get("details")
    try:
        parsed = orjson.loads(details) if isinstance(details, str) and details else {}
    except orjson.JSONDecodeError:
        parsed = {"raw": details}
    weight = row.get("match_weight")
    reason = row.get("rejected_reason")
    identifier_type = row.get("identifier_type")
    return Evidence(
        record_uid_l=str(row["record_uid_l"]),
        record_uid_r=str(row["record_uid_r"]),
        evidence_type=str(row["evidence_type"]),
        rule=str(row["rule"]),
        identifier_type=None if pd.isna(identifier_type) else str(identifier_type),
        match_probability=float(row["match_probability"]),
        match_weight=None if weight is None or pd.isna(weight) else float(weight),
        details=parsed if isinstance(parsed, dict) else {"value": parsed},
        is_accepted=bool(row.get("is_accepted", True)),
        rejected_reason=None if reason is None or pd.isna(reason) else str(reason),
    )


def _check_edges(edges: pd.DataFrame) -> None:
    """Explanations read identity_edges as the run wrote it; say so when a column is missing.

    Raises:
        ValueError: ``edges`` lacks one of the audited edge columns.
    """
    missing = [column for column in AUDITED_EDGE_COLUMNS if column not in edges]
    if missing:
        raise ValueError(
            f"edges: missing column(s) {', '.join(missing)}; pass identity_edges as written "
            f"(columns {', '.join(AUDITED_EDGE_COLUMNS)})"
        )


def _touching(edges: pd.DataFrame, uids: Sequence[str]) -> pd.DataFrame:
    return edges[edges["record_uid_l"].isin(uids) | edges["record_uid_r"].isin(uids)]


def explain_customer(
    customer_id: str,
    *,
    identity_map: pd.DataFrame,
    edges: pd.DataFrame,
    aliases: pd.DataFrame | None = None,
    records: pd.DataFrame | None = None,
) -> CustomerExplanation:
    """A customer's records, the accepted edges between them and refused links touching them.

    ``customer_id`` may be an alias (a merged id); ``records`` (the normalized record frame)
    adds the attributes to each record row.

    Raises:
        KeyError: no customer (or alias) with that id.
        ValueError: ``edges`` is not shaped like identity_edges.
    """
    _check_edges(edges)
    current = (
        resolve_alias(customer_id, alias_lookup(aliases)) if aliases is not None else (customer_id)
    )
    members = identity_map[identity_map["customer_id"] == current]
    if members.empty:
        raise KeyError(f"no customer with id '{customer_id}'")
    uids = members["record_uid"].tolist()
    table = members.reset_index(drop=True)
    if records is not None:
        table = table.merge(
            records.drop(columns=[c for c in ("source", "record_id") if c in records]),
            on="record_uid",
            how="left",
        )
    near = _touching(edges, uids)
    inside = near[near["record_uid_l"].isin(uids) & near["record_uid_r"].isin(uids)]
    accepted = [_evidence(r) for r in inside[inside["is_accepted"]].to_dict("records")]
    rejected = [_evidence(r) for r in near[~near["is_accepted"]].to_dict("records")]
    return CustomerExplanation(
        customer_id=current,
        requested_id=customer_id,
        records=table,
        edges=accepted,
        rejected=rejected,
    )


def _cost(strength: tuple[int, float, float]) -> float:
    """Path cost: rules cost almost nothing, model edges cost -log(probability)."""
    klass, probability, _ = strength
    if klass > 0:
        return 1e-6 * (5 - klass)
    return -math.log(max(min(probability, 1.0), 1e-12)) + 1e-6


def explain_pair(
    uid_a: str,
    uid_b: str,
    *,
    identity_map: pd.DataFrame,
    edges: pd.DataFrame,
    model: TrainedModel | None = None,
    records: pd.DataFrame | None = None,
    unique_types: Sequence[str] = (),
) -> PairExplanation:
    """Whether two records are the same customer: the strongest path of evidence, or why not.

    With ``model`` and ``records`` (normalized), a pair without a model edge is scored to tell
    "below the threshold" from "never compared" (not sharing any blocking key).

    Raises:
        KeyError: a record uid that is not in the identity map.
        ValueError: ``edges`` is not shaped like identity_edges.
    """
    _check_edges(edges)
    owner = dict(zip(identity_map["record_uid"], identity_map["customer_id"], strict=True))
    for uid in (uid_a, uid_b):
        if uid not in owner:
            raise KeyError(f"no record '{uid}' in the identity map")
    customer_a, customer_b = owner[uid_a], owner[uid_b]
    if customer_a == customer_b:
        members = identity_map.loc[identity_map["customer_id"] == customer_a, "record_uid"]
        inside = _touching(edges, members.tolist())
        inside = inside[inside["is_accepted"]]
        graph = build_graph(members.tolist(), inside, unique_types=unique_types)
        path = nx.shortest_path(
            graph, uid_a, uid_b, weight=lambda _u, _v, data: _cost(data["strength"])
        )
        steps = [_evidence(graph[u][v]["evidence"][0]) for u, v in pairwise(path)]
        return PairExplanation(uid_a, uid_b, True, customer_a, customer_b, path=steps)

    reasons: list[str] = []
    direct = edges[
        (
            (edges["record_uid_l"] == min(uid_a, uid_b))
            & (edges["record_uid_r"] == max(uid_a, uid_b))
        )
    ]
    for evidence in (_evidence(r) for r in direct.to_dict("records")):
        if not evidence.is_accepted:
            reasons.append(
                f"a direct link ({evidence.rule}) was rejected by the guard "
                f"'{evidence.rejected_reason}'."
            )
    # links that existed between the two customers but were refused or removed
    members_a = identity_map.loc[identity_map["customer_id"] == customer_a, "record_uid"].tolist()
    members_b = set(
        identity_map.loc[identity_map["customer_id"] == customer_b, "record_uid"].tolist()
    )
    between = _touching(edges, members_a)
    between = between[
        (~between["is_accepted"])
        & (between["record_uid_l"].isin(members_b) | between["record_uid_r"].isin(members_b))
    ]
    indirect = between[
        ~(
            (between["record_uid_l"] == min(uid_a, uid_b))
            & (between["record_uid_r"] == max(uid_a, uid_b))
        )
    ]
    for reason, count in indirect["rejected_reason"].value_counts().items():
        reasons.append(
            f"{count} link(s) between their customers were rejected by the guard '{reason}'."
        )
    if model is not None and records is not None:
        reasons.append(_model_reason(uid_a, uid_b, model, records))
    if not reasons:
        reasons.append("no shared identifier and no model match links their customers.")
    return PairExplanation(uid_a, uid_b, False, customer_a, customer_b, reasons=reasons)


def _model_reason(uid_a: str, uid_b: str, model: TrainedModel, records: pd.DataFrame) -> str:
    # Index the whole frame so term frequencies, hence weights, equal the batch run's.
    pair = records[records["record_uid"].isin([uid_a, uid_b])]
    if len(pair) < 2:
        return "the model could not compare them (a record is missing from the record frame)."
    scorer = model.scorer(records.reset_index(drop=True))
    scored = scorer.score(pair[pair["record_uid"] == uid_a].iloc[0].to_dict())
    mine = scored[(scored["record_uid_l"] == uid_b) | (scored["record_uid_r"] == uid_b)]
    if mine.empty:
        return "the model never compared them: they share no blocking key."
    probability = float(mine["match_probability"].max())
    threshold = model.settings.match_threshold
    if probability >= threshold:
        return (
            f"the model scores them {probability:.4f} (threshold {threshold}); the link was "
            "refused or removed by a guard."
        )
    return f"the model scores them {probability:.4f}, below the threshold {threshold}."
