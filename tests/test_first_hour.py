"""What a new user met in the first hour (issue 18): input that was a 500, a job that could be
created but never reached, schedules past the end of the calendar."""

from urllib.parse import quote

import pytest

from tests.conftest import module_server, wipe


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, pytestconfig):
    tmp = tmp_path_factory.mktemp(f"first-hour-{request.param}")
    with module_server(request.param, tmp, pytestconfig) as server:
        yield server


@pytest.fixture
def client(api):
    wipe(api.engine)
    return api


def problem(response, status, field):
    """The problem names ``field``: as the body's (``body.job_id``) or as the job's (``job_id``)."""
    assert response.status_code == status, response.text
    body = response.json()
    named = body["detail"].split(":")[0]
    assert named in (field, field.removeprefix("body.")), body
    return body


def post_raw(client, path, text):
    """The JSON text as typed: ``\\ud800`` stays an escape, as a client would send it."""
    return client.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


# --- a lone surrogate -----------------------------------------------------------------------


def test_a_lone_surrogate_in_a_field_is_a_400_naming_it(client):
    body = problem(post_raw(client, "/jobs", '{"job_id": "sur\\ud800", "handler": "Noop"}'), 400, "body.job_id")
    assert "surrogate" in body["detail"]
    assert client.get("/jobs").json()["total"] == 0


def test_a_lone_surrogate_inside_kwargs_says_what_is_wrong_and_where(client):
    text = '{"flow_name": "bayesianFlow", "flow_arguments": [{"name": "x\\udc00"}]}'
    body = problem(post_raw(client, "/jobs/flow-scheduling", text), 400, "body.flow_arguments[0].name")
    assert "surrogate" in body["detail"] and "hex escape" not in body["detail"]


def test_a_surrogate_pair_is_a_character_and_is_kept(client):
    created = post_raw(client, "/jobs", '{"job_id": "smile-\\ud83d\\ude00", "handler": "Noop", "state": "paused"}')
    assert created.status_code == 201, created.text
    assert client.get(f"/jobs/{quote('smile-😀')}").json()["job"]["job_id"] == "smile-😀"


# --- the end of the calendar ----------------------------------------------------------------


def test_a_century_period_lists_the_runs_before_year_9999_and_says_it_ends(client):
    created = client.post("/jobs", json={"job_id": "century", "handler": "Noop", "periodically": 3153600000})
    assert created.status_code == 201, created.text
    listed = client.get("/jobs/century/next-runs", params={"count": 100})
    assert listed.status_code == 200, listed.text
    runs = listed.json()["next_runs"]
    assert 0 < len(runs) < 100 and runs[-1]["utc"].startswith("99")
    assert "9999" in listed.json()["ends"]


def test_a_run_on_the_last_day_then_hourly_lists_what_is_left(client):
    job = {"job_id": "last-day", "handler": "Noop", "when": "9999-12-31T20:00:00Z", "periodically": "1 hour"}
    assert client.post("/jobs", json=job).status_code == 201
    listed = client.get("/jobs/last-day/next-runs", params={"count": 100}).json()
    assert [run["utc"][11:13] for run in listed["next_runs"]] == ["20", "21", "22", "23"]
    assert "ends" in listed


def test_a_preview_past_the_end_is_not_a_500(client):
    preview = client.post("/schedules/preview", params={"count": 100}, json={"periodically": 3153600000})
    assert preview.status_code == 200, preview.text
    assert len(preview.json()["next_runs"]) < 100 and "ends" in preview.json()


def test_a_cron_in_a_zone_behind_utc_ends_with_the_calendar(client):
    preview = client.post(
        "/schedules/preview",
        params={"count": 100},
        json={"when": "9999-12-31T00:00:00Z", "cron": "0 * * * *", "timezone": "America/New_York"},
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["next_runs"][-1]["utc"] == "9999-12-31T23:00:00+00:00"


@pytest.mark.parametrize("schedule", [{"periodically": "1 day"}, {"cron": "0 12 * * *"}])
def test_a_backfill_over_december_9999_queues_its_slots(client, schedule):
    client.post("/jobs", json={"job_id": "far", "handler": "Noop", "state": "paused", **schedule})
    backfill = client.post(
        "/jobs/far/backfill", json={"start": "9999-12-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"}
    )
    assert backfill.status_code == 202, backfill.text
    assert backfill.json()["backfill"]["queued"] == 31


# --- every job can be reached ---------------------------------------------------------------


@pytest.mark.parametrize("job_id", ["a/b", "a\\b", ".", "..", " padded", "padded "])
def test_an_id_that_no_url_can_reach_is_refused_and_says_what_is_allowed(client, job_id):
    body = problem(client.post("/jobs", json={"job_id": job_id, "handler": "Noop"}), 400, "body.job_id")
    assert "'/'" in body["detail"]
    assert client.get("/jobs").json()["total"] == 0


def test_the_original_endpoints_refuse_such_an_id_too(client):
    answer = client.post("/jobs/flow-scheduling", params={"job_id": "x/y"}, json={"flow_name": "f", "flow_arguments": []})
    problem(answer, 400, "job_id")


def test_every_id_the_api_accepts_can_be_read_changed_and_deleted(client):
    for job_id in ["a b", "50%", "q?x=1", "frag#1", "ünï-☃", "a.b", "...", "+@:,;=$&'()*!~"]:
        created = client.post("/jobs", json={"job_id": job_id, "handler": "Noop", "state": "paused"})
        assert created.status_code == 201, (job_id, created.text)
        path = f"/jobs/{quote(job_id, safe='')}"
        assert client.get(path).json()["job"]["job_id"] == job_id
        assert client.put(path, params={"state": "running"}).json()["job"]["state"] == "running"
        assert client.delete(path).status_code == 200, job_id
        assert client.get(path).status_code == 404


def test_a_task_name_follows_the_same_rule(client):
    job = {"job_id": "wf", "state": "paused", "tasks": [{"name": "x/y", "handler": "Noop"}]}
    body = problem(client.post("/jobs", json=job), 400, "tasks[0].name")
    assert "'/'" in body["detail"]


# --- the seeds' own words -------------------------------------------------------------------


def test_datatailrs_schedule_fields_as_its_docs_write_them(client):
    """``day_of_month=15`` is an int in Datatailr, ``first_last`` has capitalised keys."""
    monthly = {"job_id": "ides", "handler": "Noop", "calendar": {"day_of_month": 15, "at_hours": 9}}
    created = client.post("/jobs", json=monthly)
    assert created.status_code == 201, created.text
    runs = client.get("/jobs/ides/next-runs", params={"count": 3}).json()["next_runs"]
    assert [run["utc"][8:13] for run in runs] == ["15T09"] * 3
    seed = {
        "at_minutes": [30], "at_hours": [10, 16], "weekdays": ["Mon", "Wed"],
        "first_last": {"Weekday": "Fri", "Which": "Last"}, "timezone": "Europe/Paris",
    }
    preview = client.post("/schedules/preview", json={"calendar": seed})
    assert preview.status_code == 200, preview.text


def test_a_weekday_that_the_date_does_not_fall_on_is_refused(client):
    body = problem(client.post("/jobs", json={"job_id": "x", "handler": "Noop", "when": "Mon Feb 20, 14:56"}), 400, "when")
    assert "names a Mon" in body["detail"] and "-02-20 (the date it reads as) is a" in body["detail"]


def test_the_service_starts_without_a_deprecation_warning(api):
    assert "DeprecationWarning" not in api.log_path.read_text(errors="replace")


def test_a_method_the_path_lacks_is_a_405_allowing_every_method_it_has(client):
    refused = client.request("PUT", "/jobs")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, POST, HEAD"
    assert client.request("DELETE", "/jobs/x/run").headers["allow"] == "POST"
