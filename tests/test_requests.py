"""The API's edges, over HTTP: how big a body may be, what a list shows, unknown query
parameters, what a refused request says, and the ETag a PATCH sends back."""

import json

import pytest

from f8a_jobs.core.settings import Settings
from tests.conftest import module_server, wipe

MIB = 1024 * 1024


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, pytestconfig):
    with module_server(request.param, tmp_path_factory.mktemp(f"requests-{request.param}"), pytestconfig) as server:
        yield server


@pytest.fixture
def client(api):
    wipe(api.engine)
    return api


def assert_problem(response, status, field):
    """A refusal is problem+json whose ``detail`` (and ``error``) start with the ``field``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["field"] == field and body["error"] == body["detail"], body
    assert body["detail"].startswith(f"{field}: "), body
    return body


def big_job(size):
    return {"job_id": "big", "handler": "Echo", "kwargs": {"value": "x" * size}, "state": "paused"}


def chunks(body, size=64 * 1024):
    """A body sent without Content-Length (Transfer-Encoding: chunked)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_the_body_limit_is_a_setting_of_a_few_mebibytes():
    assert Settings().max_body_bytes == 2 * MIB
    assert Settings.from_env({"F8A_JOBS_MAX_BODY_BYTES": "1000"}).max_body_bytes == 1000


def test_a_body_past_the_limit_is_413_whether_its_length_is_declared_or_not(client):
    body = json.dumps(big_job(3 * MIB)).encode()
    headers = {"Content-Type": "application/json"}
    declared = client.post("/jobs", content=body, headers=headers)
    assert "2097152 bytes" in assert_problem(declared, 413, "body")["detail"]
    assert_problem(client.post("/jobs", content=chunks(body), headers=headers), 413, "body")
    assert client.get("/jobs").json()["total"] == 0


def test_a_chunked_body_within_the_limit_is_read(client):
    body = json.dumps(big_job(MIB)).encode()
    created = client.post("/jobs", content=chunks(body), headers={"Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    assert client.get("/jobs/big").json()["job"]["kwargs"]["value"] == "x" * MIB


def test_the_job_list_is_a_summary_unless_asked_for_whole_jobs(client):
    client.post("/jobs", json={"job_id": "a", "handler": "Echo", "kwargs": {"value": "x" * 1000}, "periodically": "1 day"})
    client.post("/jobs", json={"job_id": "b", "tasks": [{"name": "t", "handler": "Noop"}], "cron": "0 3 * * *"})
    summary = client.get("/jobs").json()
    assert summary["total"] == 2 and [job["job_id"] for job in summary["jobs"]] == ["a", "b"]
    first, second = summary["jobs"]
    assert "kwargs" not in first and "tasks" not in second
    assert first["handler"] == "Echo" and first["periodically"] == "1 day" and first["state"] == "running"
    assert second["handler"] is None and second["cron"] == "0 3 * * *"
    assert first["next_run_time"] and "last_run" in first and first["revision"] == 1
    whole = client.get("/jobs", params={"full": "true", "limit": 1, "offset": 1}).json()
    assert whole["jobs"] == [client.get("/jobs/b").json()["job"]] and whole["total"] == 2


@pytest.mark.parametrize(
    ("path", "params"),
    [("/jobs", {"stat": "paused"}), ("/jobs/known/runs", {"status": "failed"}), ("/flows", {"job": "x", "limit": 5})],
)
def test_unknown_query_parameters_are_400_naming_them(client, path, params):
    client.post("/jobs", json={"job_id": "known", "handler": "Noop", "state": "paused"})
    unknown = next(name for name in params if name not in ("limit",))
    problem = assert_problem(client.get(path, params=params), 400, unknown)
    assert "unknown query parameter" in problem["detail"]


def test_the_original_endpoints_query_parameters_still_work(client):
    params = {"state": "paused", "job_id": "x", "periodically": "1 day", "misfire_grace_time": "1 hour"}
    flows = {"flow_name": "f", "flow_arguments": [{"name": "n"}]}
    created = client.post("/jobs/flow-scheduling", params=params, json=flows)
    assert created.status_code == 201, created.text
    assert created.json()["job"]["job_id"] == "x"
    assert client.get("/jobs", params={"job_type": "all", "state": "paused", "limit": 5}).json()["total"] == 1


@pytest.mark.parametrize(
    ("method", "path", "request_options", "field", "says"),
    [
        ("POST", "/jobs", {"json": {"handler": "Noop", "periodically": 0.001}}, "periodically", "from 1 second to 100 years"),
        ("POST", "/jobs", {"json": {"handler": "Noop", "periodically": 1e300}}, "periodically", "from 1 second to 100 years"),
        ("POST", "/jobs", {"json": {"handler": "Noop", "misfire_grace_time": 1e20}}, "misfire_grace_time", "from 1 second"),
        ("POST", "/jobs", {"json": {"handler": "Noop", "periodically": True}}, "body.periodically", "expected a string or a number"),
        ("POST", "/jobs", {"json": {"handler": "Noop", "timeout": [1]}}, "body.timeout", "'2 hours'"),
        ("POST", "/jobs", {"json": {"handler": "Noop", "state": "pending"}}, "body.state", "'running'"),
        ("POST", "/jobs", {"json": []}, "body", "object"),
        ("POST", "/jobs", {"content": b"{", "headers": {"Content-Type": "application/json"}}, "body", "not valid JSON"),
        ("POST", "/jobs", {"headers": {"Content-Type": "application/json"}}, "body", "required"),
        ("GET", "/jobs", {"params": {"state": "bogus"}}, "state", "'paused'"),
        ("GET", "/jobs", {"params": {"limit": 0}}, "limit", "minimum of 1"),
        ("PUT", "/jobs/known", {}, "state", "required"),
        ("POST", "/schedules/preview", {"json": {"calendar": {"in_months": [13]}}}, "body.calendar.in_months.0", "maximum of 12"),
    ],
)
def test_every_refused_request_names_the_field_and_what_is_accepted(client, method, path, request_options, field, says):
    client.post("/jobs", json={"job_id": "known", "handler": "Noop", "state": "paused"})
    problem = assert_problem(client.request(method, path, **request_options), 400, field)
    assert says in problem["detail"] and "any of the given schemas" not in problem["detail"]


@pytest.mark.parametrize(("text", "days"), [("1 year", 365), ("1 month", 30), ("2 years, 3 months", 820)])
def test_durations_in_years_and_months(client, text, days):
    created = client.post("/jobs", json={"handler": "Noop", "periodically": text, "misfire_grace_time": text})
    assert created.status_code == 201, created.text
    assert created.json()["job"]["periodically"] == text
    assert created.json()["job"]["misfire_grace_time"] == days * 86400


def test_a_job_has_an_etag_that_if_match_takes_back(client):
    created = client.post("/jobs", json={"job_id": "tagged", "handler": "Noop", "periodically": "1 hour"})
    assert created.headers["etag"] == '"1"'
    read = client.get("/jobs/tagged")
    assert read.headers["etag"] == '"1"'
    patched = client.patch("/jobs/tagged", json={"periodically": "2 hours"}, headers={"If-Match": read.headers["etag"]})
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == '"2"' == f'"{patched.json()["job"]["revision"]}"'
    stale = client.patch("/jobs/tagged", json={"periodically": "3 hours"}, headers={"If-Match": read.headers["etag"]})
    assert_problem(stale, 409, "revision")
    weak = client.patch("/jobs/tagged", json={"periodically": "3 hours"}, headers={"If-Match": 'W/"2"'})
    assert weak.status_code == 200, weak.text
    assert client.put("/jobs/tagged", params={"state": "paused"}).headers["etag"] == '"4"'
