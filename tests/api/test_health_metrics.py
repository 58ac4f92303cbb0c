"""/health and /metrics."""

from __future__ import annotations

from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from tests.support.api_harness import Api


def samples(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.client.get("/metrics", headers=api.auth("admin"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_health_reports_the_snapshot(api: Api) -> None:
    body = api.client.get("/health").json()
    current = api.state.snapshots.current
    assert body["status"] == "ok"
    assert body["snapshot_id"] == current.id
    assert datetime.fromisoformat(body["snapshot_created_at"]) == current.manifest.created_at
    assert 0 <= body["snapshot_age_seconds"] < 3600


def test_metrics_count_operations_by_name_and_status(api: Api) -> None:
    api.gql('query Lookup { customer(id: "cus_0001") { customerId } }')
    api.gql('query Lookup { customer(id: "cus_0002") { customerId } }')
    api.gql('{ segment(name: "nope") { name } }')
    api.gql('{ customer(lookup: {type: "email", value: "bad"}) { customerId } }', key="profile")
    api.gql("{ segments { name } }", key="profile")
    api.post("{ segments { name } }", key=None)
    found = samples(api)
    ops = "cdp_api_graphql_operations_total"
    assert found[(ops, (("operation", "Lookup"), ("status", "ok")))] == 2
    assert found[(ops, (("operation", "segment"), ("status", "not_found")))] == 1
    assert found[(ops, (("operation", "customer"), ("status", "bad_user_input")))] == 1
    assert found[(ops, (("operation", "segments"), ("status", "forbidden")))] == 1
    latency = "cdp_api_graphql_operation_duration_seconds_count"
    assert found[(latency, (("operation", "Lookup"),))] == 2
    http = "cdp_api_http_requests_total"
    assert found[(http, (("path", "/graphql"), ("status_code", "200")))] == 5
    assert found[(http, (("path", "/graphql"), ("status_code", "401")))] == 1
    assert (
        "cdp_api_http_request_duration_seconds_bucket",
        (("le", "0.005"), ("path", "/graphql")),
    ) in found


def test_metrics_show_snapshot_id_and_age(api: Api) -> None:
    found = samples(api)
    current = api.state.snapshots.current
    info = [
        labels
        for (name, labels), value in found.items()
        if name == "cdp_api_snapshot_info" and value == 1
    ]
    assert info == [(("as_of", ""), ("snapshot_id", current.id))]
    age = found[("cdp_api_snapshot_age_seconds", ())]
    assert abs(age - current.age_seconds()) < 60
    assert found[("cdp_api_snapshot_loaded", ())] == 1


def test_operation_labels_are_bounded(api: Api) -> None:
    for i in range(3):
        api.gql(f'query Op{i} {{ customer(id: "cus_0001") {{ customerId }} }}')
    metrics = api.state.metrics
    assert metrics.operation_label("bad label!") == "invalid"
    assert metrics.operation_label(None) == "anonymous"
    for i in range(300):
        metrics.operation_label(f"Name{i}")
    assert metrics.operation_label("OneMore") == "other"
    assert metrics.operation_label("Op1") == "Op1"
