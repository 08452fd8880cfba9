"""``$filter`` over HTTP: debug endpoints, and a job whose flows come from a query."""

import pytest

from f8a_jobs.storage import demo
from tests.conftest import module_server, poll
from tests.test_filters import README_QUERIES


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, pytestconfig):
    tmp = tmp_path_factory.mktemp(f"filter-api-{request.param}")
    with module_server(request.param, tmp, pytestconfig, prepare=demo.load) as server:
        yield server
        demo.metadata.drop_all(server.engine)


@pytest.mark.parametrize("path", ["/debug/show-select-query", "/debug-show-select-query"])
def test_show_select_query(api, path):
    response = api.post(path, json={"$filter": README_QUERIES["count"]})
    assert response.status_code == 200, response.text
    assert response.json() == {"query": "SELECT count(*) AS count \nFROM analyses"}


@pytest.mark.parametrize("path", ["/debug/expand-filter-query", "/debug-expand-filter"])
def test_expand_filter_shows_the_rows_and_truncates(api, path):
    body = {"$filter": README_QUERIES["unfinished"], "force": True}
    everything = api.post(path, json=body).json()
    assert everything["matched_count"] == 2 and everything["truncated"] is False
    assert {"ecosystem": "npm", "name": "serve-static", "version": "1.7.2", "force": True} in everything["matched"]
    first = api.post(path, params={"limit": 1}, json=body).json()
    assert first["matched_count"] == 1 and first["truncated"] is True


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"force": True}, 400, "body.$filter"),
        ({"$filter": {"table": "jobs"}}, 403, "$filter.table"),
        ({"$filter": {"table": "analyses", "where": {"versions.id": 1}}}, 400, "$filter.where.versions.id"),
    ],
)
def test_bad_filters_get_a_clear_error(api, body, status, field):
    response = api.post("/debug/expand-filter-query", json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"].startswith(f"{field}:")


def test_a_filter_job_expands_into_one_flow_per_row(api):
    body = {"flow_name": "bayesianFlow", "flow_arguments": [{"$filter": README_QUERIES["unfinished"], "force": True}]}
    job = api.post("/jobs/flow-scheduling", json=body).json()["job"]
    flows = poll(lambda: len(delivered(api, job["job_id"])) == 2 and delivered(api, job["job_id"]))
    assert sorted(flow["arguments"]["version"] for flow in flows) == ["1.7.2", "2.3.9"]
    assert all(flow["arguments"]["force"] is True and flow["arguments"]["job_id"] == job["job_id"] for flow in flows)


def test_a_job_with_a_bad_filter_is_refused_at_creation(api):
    body = {"flow_name": "bayesianFlow", "flow_arguments": [{"$filter": {"table": "analyses", "select": "nope"}}]}
    response = api.post("/jobs/flow-scheduling", json=body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("kwargs.flow_arguments[0].$filter.select: unknown column")
    forbidden = api.post("/jobs/flow-scheduling", json={"flow_name": "f", "flow_arguments": [{"$filter": {"table": "job_runs"}}]})
    assert forbidden.status_code == 403


def delivered(api, job_id):
    return [flow for flow in api.get("/flows", params={"job_id": job_id}).json()["flows"] if flow["status"] == "delivered"]
