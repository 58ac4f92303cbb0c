from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from identity.graph import build_graph, resolve_clusters


def _edge(left: str, right: str, probability: float, rule: str = "splink") -> dict:
    left, right = sorted((left, right))
    return {
        "record_uid_l": left,
        "record_uid_r": right,
        "evidence_type": "model" if rule == "splink" else "rule",
        "rule": rule,
        "identifier_type": None if rule == "splink" else rule.removeprefix("same_"),
        "match_probability": probability,
        "match_weight": np.log2(probability / (1 - probability)) if probability < 1 else np.nan,
        "details": "{}",
        "is_accepted": True,
        "rejected_reason": None,
    }


def _clusters(result) -> list[set[str]]:
    grouped = result.clusters.groupby("cluster")["record_uid"].apply(set)
    return sorted(grouped.tolist(), key=lambda s: sorted(s))


def test_components_are_customers_and_isolated_records_stay():
    edges = pd.DataFrame([_edge("a", "b", 1.0, "same_email"), _edge("c", "d", 0.995)])
    result = resolve_clusters(list("abcde"), edges, max_cluster_size=20)
    assert _clusters(result) == [{"a", "b"}, {"c", "d"}, {"e"}]
    assert result.splits == []
    assert result.edges["is_accepted"].all()


def test_rejected_edges_do_not_connect():
    rejected = _edge("a", "b", 1.0, "same_phone") | {
        "is_accepted": False,
        "rejected_reason": "max_distinct_names_per_phone",
    }
    result = resolve_clusters(["a", "b"], pd.DataFrame([rejected]), max_cluster_size=20)
    assert _clusters(result) == [{"a"}, {"b"}]


def test_unique_identifier_conflict_removes_the_weakest_evidence():
    # a-b (email) - c (weak model edge) - d (phone) - e (strong model); a and e hold different
    # loyalty ids, so the weakest link on the path (b-c) must go, and only it.
    edges = pd.DataFrame(
        [
            _edge("a", "b", 1.0, "same_email"),
            _edge("b", "c", 0.991),
            _edge("c", "d", 1.0, "same_phone"),
            _edge("d", "e", 0.9999),
        ]
    )
    unique = pd.DataFrame(
        {
            "record_uid": ["a", "e"],
            "identifier_type": "loyalty_id",
            "identifier_value": ["L1", "L2"],
        }
    )
    result = resolve_clusters(
        list("abcdef"),
        edges,
        unique_values=unique,
        unique_types=["loyalty_id"],
        max_cluster_size=20,
    )
    assert _clusters(result) == [{"a", "b"}, {"c", "d", "e"}, {"f"}]
    removed = result.edges[~result.edges["is_accepted"]]
    assert list(zip(removed["record_uid_l"], removed["record_uid_r"], strict=True)) == [("b", "c")]
    assert removed["rejected_reason"].iloc[0] == "split:unique_loyalty_id"
    (event,) = result.splits
    assert event.causes == ("unique_loyalty_id",)
    assert event.component_size == 5 and event.part_sizes == (3, 2)


def test_model_edges_go_before_rule_edges():
    # both paths join L1 and L2; the model edge is removed even though its probability is high
    edges = pd.DataFrame([_edge("a", "b", 0.99999), _edge("b", "c", 1.0, "same_phone")])
    unique = pd.DataFrame(
        {
            "record_uid": ["a", "c"],
            "identifier_type": "loyalty_id",
            "identifier_value": ["L1", "L2"],
        }
    )
    result = resolve_clusters(
        list("abc"), edges, unique_values=unique, unique_types=["loyalty_id"], max_cluster_size=20
    )
    assert _clusters(result) == [{"a"}, {"b", "c"}]


def test_same_value_of_a_unique_type_is_no_conflict():
    edges = pd.DataFrame([_edge("a", "b", 0.995)])
    unique = pd.DataFrame(
        {"record_uid": ["a", "b"], "identifier_type": "loyalty_id", "identifier_value": "L1"}
    )
    result = resolve_clusters(
        ["a", "b"], edges, unique_values=unique, unique_types=["loyalty_id"], max_cluster_size=20
    )
    assert _clusters(result) == [{"a", "b"}]


@pytest.mark.parametrize("cap", [2, 5, 10])
def test_no_cluster_above_the_cap_and_no_record_lost(cap: int):
    rng = np.random.default_rng(cap)
    uids = [f"r{i:03d}" for i in range(60)]
    rows = [_edge(uids[i], uids[i + 1], float(rng.uniform(0.99, 0.99999))) for i in range(59)]
    rows += [_edge(uids[i], uids[i + 7], 1.0, "same_email") for i in range(0, 50, 9)]
    edges = pd.DataFrame(rows)
    result = resolve_clusters(uids, edges, max_cluster_size=cap)
    clusters = result.clusters
    assert sorted(clusters["record_uid"]) == uids  # every record exactly once
    sizes = clusters.groupby("cluster").size()
    assert sizes.max() <= cap
    label = dict(zip(clusters["record_uid"], clusters["cluster"], strict=True))
    kept = result.edges[result.edges["is_accepted"]]
    assert all(
        label[a] == label[b]
        for a, b in zip(kept["record_uid_l"], kept["record_uid_r"], strict=True)
    )
    removed = result.edges[~result.edges["is_accepted"]]
    assert not removed.empty
    assert set(removed["rejected_reason"]) == {"split:max_cluster_size"}
    assert all(
        label[a] != label[b]
        for a, b in zip(removed["record_uid_l"], removed["record_uid_r"], strict=True)
    )
    assert result.splits[0].causes == ("max_cluster_size",)


def test_splitting_is_deterministic():
    edges = pd.DataFrame([_edge("hub", f"n{i:02d}", 1.0, "same_phone") for i in range(30)])
    uids = ["hub", *[f"n{i:02d}" for i in range(30)]]
    first = resolve_clusters(uids, edges, max_cluster_size=10)
    second = resolve_clusters(list(reversed(uids)), edges.iloc[::-1], max_cluster_size=10)
    assert _clusters(first) == _clusters(second)
    assert first.clusters.groupby("cluster").size().max() <= 10


def test_edges_to_unknown_records_fail_clearly():
    with pytest.raises(ValueError, match="not in the record frame"):
        resolve_clusters(["a"], pd.DataFrame([_edge("a", "zz", 0.999)]), max_cluster_size=5)


def test_graph_keeps_all_evidence_strongest_first():
    edges = pd.DataFrame(
        [_edge("a", "b", 0.995), _edge("a", "b", 1.0, "same_email"), _edge("b", "c", 0.999)]
    )
    graph = build_graph(list("abcd"), edges)
    assert set(graph.nodes) == set("abcd")
    evidence = graph["a"]["b"]["evidence"]
    assert [e["rule"] for e in evidence] == ["same_email", "splink"]
    assert graph["b"]["c"]["strength"][0] == 0
