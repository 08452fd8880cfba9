"""The original endpoints take a job's whole schedule and policy in the query string, with the
same names and errors as ``POST /jobs`` (issue 19, item 4)."""

import json

import pytest

from tests.conftest import module_server, wipe

FLOWS = {"flow_name": "bayesianFlow", "flow_arguments": [{"ecosystem": "npm", "name": "serve-static"}]}
SELECTIVE = {**FLOWS, "task_names": ["github_details"]}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, pytestconfig):
    tmp = tmp_path_factory.mktemp(f"original-{request.param}")
    with module_server(request.param, tmp, pytestconfig) as server:
        yield server


@pytest.fixture
def client(api):
    wipe(api.engine)
    return api


def created(response):
    assert response.status_code == 201, response.text
    return response.json()["job"]


@pytest.mark.parametrize("path", ["/jobs/flow-scheduling", "/jobs/selective-flow-scheduling"])
def test_a_calendar_in_a_time_zone_and_a_policy_in_the_query_string(client, path):
    calendar = {"at_hours": [10, 16], "at_minutes": [30], "weekdays": ["Mon", "Wed"]}
    params = {
        "job_id": "paris", "state": "paused", "calendar": json.dumps(calendar), "timezone": "Europe/Paris",
        "tries": 3, "retry_delay": "30 seconds", "retry_backoff": 2, "timeout": "2 hours",
        "overlap": "buffer_one", "misfire_policy": "run_all", "pause_on_failure": "true",
    }
    job = created(client.post(path, params=params, json=SELECTIVE if "selective" in path else FLOWS))
    assert job["calendar"] == {**calendar, "timezone": "Europe/Paris"} and job["timezone"] == "Europe/Paris"
    assert (job["tries"], job["retry_delay"], job["retry_backoff"], job["timeout"]) == (3, 30, 2, 7200)
    assert (job["overlap"], job["misfire_policy"], job["pause_on_failure"]) == ("buffer_one", "run_all", True)
    assert job == client.get("/jobs/paris", params={}).json()["job"]


def test_after_another_job_by_its_id_or_as_json(client):
    created(client.post("/jobs", json={"job_id": "extract", "handler": "Noop", "state": "paused"}))
    by_id = created(client.post("/jobs/flow-scheduling", params={"job_id": "a", "after": "extract"}, json=FLOWS))
    assert by_id["after"] == {"job_id": "extract", "on": "success"}
    spelled = json.dumps({"job_id": "extract", "on": "always"})
    as_json = created(client.post("/jobs/flow-scheduling", params={"job_id": "b", "after": spelled}, json=FLOWS))
    assert as_json["after"] == {"job_id": "extract", "on": "always"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"calendar": "{not json"}, "calendar"),
        ({"calendar": json.dumps({"at_hours": [25]})}, "calendar.at_hours"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"after": "nobody"}, "after.job_id"),
        ({"tries": 0}, "tries"),
        ({"overlap": "sometimes"}, "overlap"),
        ({"timeout": "soon"}, "timeout"),
    ],
)
def test_a_bad_field_is_a_400_naming_it_as_post_jobs_does(client, params, field):
    answer = client.post("/jobs/flow-scheduling", params=params, json=FLOWS)
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"].split(":")[0] == field, answer.json()
    assert client.get("/jobs").json()["total"] == 0
