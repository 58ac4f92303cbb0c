"""The operation executor's document cache: parse and validate once per query text, bounded."""

from __future__ import annotations

from api.graphql.executor import CACHE_SIZE
from tests.support.api_harness import Api

LOOKUP = 'query L($v: String!) { customer(lookup: {type: "email", value: $v}) { customerId } }'


def test_a_query_text_is_parsed_and_validated_once(api: Api) -> None:
    executor = api.state.executor
    misses, hits = executor.cache_misses, executor.cache_hits
    first = api.gql(LOOKUP, {"v": "nobody@example.com"}, key="profile")
    second = api.gql(LOOKUP, {"v": "NOBODY@example.com"}, key="profile")
    assert first == second == {"data": {"customer": None}}
    assert executor.cache_misses == misses + 1
    assert executor.cache_hits == hits + 1
    assert executor.prepare(LOOKUP) is executor.prepare(LOOKUP)


def test_documents_that_fail_to_parse_are_not_cached(api: Api) -> None:
    executor = api.state.executor
    broken = "{ customer(id: "
    for _ in range(2):
        body = api.gql(broken)
        assert body["data"] is None
        assert "Syntax Error" in body["errors"][0]["message"]
    assert executor.prepare(broken) is not executor.prepare(broken)


def test_the_cache_is_bounded(api: Api) -> None:
    executor = api.state.executor
    for i in range(CACHE_SIZE + 20):
        executor.prepare(f"query Q{i} {{ segments {{ name }} }}")
    assert len(executor._cache) == CACHE_SIZE
    # the oldest texts were evicted, the newest kept
    misses = executor.cache_misses
    executor.prepare(f"query Q{CACHE_SIZE + 19} {{ segments {{ name }} }}")
    assert executor.cache_misses == misses
    executor.prepare("query Q0 { segments { name } }")
    assert executor.cache_misses == misses + 1


def test_a_cached_invalid_document_keeps_failing_the_same_way(api: Api) -> None:
    executor = api.state.executor
    invalid = '{ customer(id: "cus_0001") { customerId nope } }'
    first = api.gql(invalid)
    hits = executor.cache_hits
    second = api.gql(invalid)
    assert executor.cache_hits == hits + 1
    assert first["data"] is None
    assert "Cannot query field 'nope'" in first["errors"][0]["message"]
    assert second == first


def test_a_missing_required_variable_is_a_clear_error(api: Api) -> None:
    body = api.gql(LOOKUP, {}, key="profile")
    assert body["data"] is None
    assert (
        "Variable '$v' of required type 'String!' was not provided." in body["errors"][0]["message"]
    )


def test_operations_are_counted_under_their_name_when_it_is_only_in_the_document(
    api: Api,
) -> None:
    api.gql(LOOKUP, {"v": "a@example.com"}, key="profile")
    metrics = api.metrics_text()
    assert 'cdp_api_graphql_operations_total{operation="L",status="ok"}' in metrics


def test_the_least_recently_used_text_is_evicted_first(api: Api) -> None:
    executor = api.state.executor
    texts = [f"query R{i} {{ segments {{ name }} }}" for i in range(CACHE_SIZE + 1)]
    for text in texts[:CACHE_SIZE]:
        executor.prepare(text)
    executor.prepare(texts[0])  # used again: now the most recent
    executor.prepare(texts[CACHE_SIZE])  # one too many: evicts R1, not R0
    misses = executor.cache_misses
    executor.prepare(texts[0])
    assert executor.cache_misses == misses
    executor.prepare(texts[1])
    assert executor.cache_misses == misses + 1
