"""The API end to end: a real ``f8a-jobs serve`` process, spoken to over HTTP."""

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from f8a_jobs.core.clock import utcnow
from tests.conftest import module_server, poll, wipe

README_FLOWS = {
    "flow_arguments": [
        {"ecosystem": "npm", "force": True, "name": "serve-static", "version": "1.7.1"},
        {"ecosystem": "maven", "force": True, "name": "net.iharder:base64", "version": "2.3.9"},
    ],
    "flow_name": "bayesianFlow",
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, pytestconfig):
    with module_server(request.param, tmp_path_factory.mktemp(f"api-{request.param}"), pytestconfig) as server:
        yield server


@pytest.fixture
def client(api):
    wipe(api.engine)
    api.put("/service/state", params={"state": "running"})
    return api


def runs_of(client, job_id):
    return client.get(f"/jobs/{job_id}/runs").json()["runs"]


def assert_problem(response, status, field):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["detail"].startswith(f"{field}:"), body
    return body


def test_probes(client):
    assert client.get("/liveness").json() == {"alive": True}
    assert client.get("/readiness").json() == {"ready": True}


def test_swagger_ui_and_spec_are_served(client):
    ui = client.get("/ui/")
    assert ui.status_code == 200 and "swagger" in ui.text.lower()
    spec = client.get("/openapi.json").json()
    assert "/jobs/flow-scheduling" in spec["paths"]


def test_readme_curl_example_dispatches_two_flows(client):
    created = client.post("/jobs/flow-scheduling", params={"state": "running"}, json=README_FLOWS)
    assert created.status_code == 201, created.text
    job = created.json()["job"]
    assert job["handler"] == "FlowScheduling" and job["periodically"] is None
    flows = poll(
        lambda: len(flows_of(client, job["job_id"])) == 2 and flows_of(client, job["job_id"])
    )
    assert sorted(f["arguments"]["name"] for f in flows) == ["net.iharder:base64", "serve-static"]
    assert {f["arguments"]["job_id"] for f in flows} == {job["job_id"]}
    assert poll(lambda: [r["status"] for r in runs_of(client, job["job_id"])] == ["succeeded"])


def flows_of(client, job_id):
    flows = client.get("/flows", params={"job_id": job_id}).json()["flows"]
    return [flow for flow in flows if flow["status"] == "delivered"]


def test_selective_flow_scheduling_carries_the_task_names(client):
    body = {**README_FLOWS, "task_names": ["github_details"], "run_subsequent": True}
    for path in ("/jobs/selective-flow-scheduling", "/jobs/flow-scheduling"):
        job = client.post(path, json=body).json()["job"]
        assert job["handler"] == "SelectiveFlowScheduling"
        flows = poll(
            lambda job=job: (
                len(flows_of(client, job["job_id"])) == 2 and flows_of(client, job["job_id"])
            )
        )
        assert all(f["task_names"] == ["github_details"] and f["run_subsequent"] for f in flows)


def test_generic_post_get_list_pause_resume_delete(client):
    when = (utcnow() + timedelta(hours=1)).replace(microsecond=0).isoformat()
    body = {
        "job_id": "weekly",
        "handler": "Noop",
        "when": when,
        "periodically": "1 week",
        "misfire_grace_time": "1 hour",
    }
    job = client.post("/jobs", json=body).json()["job"]
    assert job["next_run_time"] == when and job["misfire_grace_time"] == 3600
    assert client.get("/jobs/weekly").json()["job"] == job
    listing = client.get("/jobs").json()
    assert (
        listing["total"] == 1
        and listing["jobs_count"] == 1
        and listing["jobs"][0]["job_id"] == "weekly"
    )
    paused = client.put("/jobs/weekly", params={"state": "paused"}).json()["job"]
    assert paused["state"] == "paused" and paused["next_run_time"] is None
    assert client.get("/jobs", params={"state": "paused"}).json()["total"] == 1
    resumed = client.put("/jobs/weekly", params={"state": "running"}).json()["job"]
    assert resumed["next_run_time"] == when
    assert client.delete("/jobs/weekly").json() == {"job_id": "weekly", "deleted": True}
    assert client.get("/jobs/weekly").status_code == 404


def test_listing_is_paged(client):
    for number in range(12):
        assert (
            client.post(
                "/jobs", json={"job_id": f"j{number:02}", "handler": "Noop", "state": "paused"}
            ).status_code
            == 201
        )
    page = client.get("/jobs", params={"limit": 5, "offset": 10}).json()
    assert [job["job_id"] for job in page["jobs"]] == ["j10", "j11"]
    assert page["total"] == 12 and page["jobs_count"] == 2


def test_run_now_and_run_history(client):
    client.post(
        "/jobs",
        json={
            "job_id": "later",
            "handler": "Noop",
            "periodically": "1 day",
            "when": (utcnow() + timedelta(days=1)).isoformat(),
        },
    )
    before = client.get("/jobs/later").json()["job"]["next_run_time"]
    queued = client.post("/jobs/later/run")
    assert queued.status_code == 202 and queued.json()["run"]["status"] == "queued"
    assert poll(lambda: [r["status"] for r in runs_of(client, "later")] == ["succeeded"])
    assert client.get("/jobs/later").json()["job"]["next_run_time"] == before


def test_failed_runs_are_listed_with_traceback_and_cleaned(client):
    client.post("/jobs", json={"job_id": "boom", "handler": "Fail", "kwargs": {"message": "kaput"}})
    failed = poll(lambda: client.get("/jobs", params={"job_type": "failed"}).json()["jobs"])
    assert failed[0]["job_id"] == "boom" and failed[0]["error"] == "RuntimeError: kaput"
    assert failed[0]["kwargs"] == {"message": "kaput"} and "RuntimeError" in failed[0]["traceback"]
    run = client.get(f"/jobs/boom/runs/{failed[0]['run_id']}").json()["run"]
    assert run["status"] == "failed" and run["traceback"] == failed[0]["traceback"]
    assert client.delete("/jobs/clean-failed").json() == {"removed": 1}
    assert client.get("/jobs", params={"job_type": "failed"}).json()["total"] == 0


def test_service_pause_stops_firing_until_resumed(client):
    state = poll(lambda: client.get("/service/state").json()["scheduler"] == "leader" and client.get("/service/state").json())
    assert state["state"] == "running" and state["leader"]["epoch"] >= 1
    assert client.put("/service/state", params={"state": "paused"}).json()["state"] == "paused"
    client.post("/jobs", json={"job_id": "held", "handler": "Noop"})
    client.post("/jobs", json={"job_id": "probe", "handler": "Noop", "state": "paused"})
    client.post("/jobs/probe/run")  # a run-now still runs: it shows the leader saw the change
    poll(lambda: [r["status"] for r in runs_of(client, "probe")] == ["succeeded"])
    assert runs_of(client, "held") == []
    client.put("/service/state", params={"state": "running"})
    assert poll(lambda: [r["status"] for r in runs_of(client, "held")] == ["succeeded"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"handler": "Nope"}, "handler"),
        ({"kwargs": {}}, "handler"),
        ({"handler": "Noop", "tasks": [{"handler": "Noop", "name": "a"}]}, "handler"),
        ({"tasks": []}, "body.tasks"),
        ({"tasks": [{"name": "a", "handler": "Noop", "depends_on": ["job9"]}]}, "tasks[0].depends_on[0]"),
        ({"tasks": [{"name": "a", "handler": "Noop"}, {"name": "a", "handler": "Noop"}]}, "tasks[1].name"),
        ({"tasks": [{"name": "a", "handler": "Noop", "depends_on": ["a"]}]}, "tasks[0].depends_on[0]"),
        (
            {"tasks": [
                {"name": "extract", "handler": "Noop", "depends_on": ["publish"]},
                {"name": "publish", "handler": "Noop", "depends_on": ["extract"]},
            ]},
            "tasks",
        ),
        ({"tasks": [{"name": "a", "handler": "Nope"}]}, "tasks[0].handler"),
        ({"tasks": [{"name": "a", "job": "nojob"}]}, "tasks[0].job"),
        ({"tasks": [{"name": "a", "handler": "Noop", "job": "x"}]}, "tasks[0].job"),
        ({"tasks": [{"name": "a", "handler": "Fail", "kwargs": {"message": 1}}]}, "tasks[0].kwargs.message"),
        ({"tasks": [{"name": "a", "handler": "Fail", "for_each": "x"}]}, "body.tasks.0.for_each"),
        ({"tasks": [{"name": "a", "handler": "Noop", "tries": 0}]}, "body.tasks.0.tries"),
        (
            {"tasks": [
                {"name": "a", "handler": "Noop"},
                {"name": "b", "handler": "Fail", "kwargs": {"message": {"$result": "a"}}},
            ]},
            "tasks[1].kwargs.message",
        ),
        ({"handler": "FlowScheduling", "kwargs": {"flow_name": "f"}}, "kwargs"),
        (
            {"handler": "FlowScheduling", "kwargs": {"flow_name": "f", "flow_arguments": "x"}},
            "kwargs.flow_arguments",
        ),
        ({"handler": "Noop", "when": "someday"}, "when"),
        ({"handler": "Noop", "when": "2001-02-03T04:05:06Z"}, "when"),
        ({"handler": "Noop", "periodically": "every so often"}, "periodically"),
        ({"handler": "Noop", "cron": "* * *"}, "cron"),
        ({"handler": "Noop", "state": "pending"}, "body.state"),
        ({"handler": "Noop", "colour": "red"}, "body.colour"),
        ({"handler": "Noop", "misfire_grace_time": "-1"}, "misfire_grace_time"),
    ],
)
def test_bad_jobs_get_400_naming_the_field_and_store_nothing(client, body, field):
    problem = assert_problem(client.post("/jobs", json=body), 400, field)
    if field == "tasks" and "tasks" in body and body["tasks"]:
        assert "extract → publish → extract" in problem["detail"] or "publish → extract → publish" in problem["detail"]
    assert client.get("/jobs").json()["total"] == 0


def test_malformed_requests_get_400(client):
    response = client.post(
        "/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "body")
    assert_problem(client.get("/jobs", params={"state": "bogus"}), 400, "state")
    assert_problem(client.get("/jobs", params={"limit": 0}), 400, "limit")
    assert_problem(client.put("/service/state", params={"state": "sleepy"}), 400, "state")
    assert_problem(
        client.post("/jobs/flow-scheduling", params={"periodically": "never"}, json=README_FLOWS),
        400,
        "periodically",
    )


def test_unknown_ids_get_404_and_duplicates_409(client):
    for method, path in [
        ("GET", "/jobs/nope"),
        ("PUT", "/jobs/nope?state=paused"),
        ("DELETE", "/jobs/nope"),
        ("POST", "/jobs/nope/run"),
        ("GET", "/jobs/nope/runs"),
    ]:
        assert_problem(client.request(method, path), 404, "job_id")
    assert client.post("/jobs", json={"job_id": "twin", "handler": "Noop"}).status_code == 201
    body = assert_problem(
        client.post("/jobs", json={"job_id": "twin", "handler": "Noop"}), 409, "job_id"
    )
    assert "twin" in body["detail"]


def nested_filter(depth):
    query = {"table": "t"}
    for _ in range(depth - 1):
        query = {"table": "t", "where": {"id in": {"$filter": query}}}
    return {"$filter": query}


@pytest.mark.parametrize("depth", [17, 300])
def test_a_filter_nested_too_deep_is_a_400_naming_the_depth(client, depth):
    body = {"handler": "FlowScheduling", "kwargs": {"flow_name": "f", "flow_arguments": [nested_filter(depth)]}}
    response = client.post("/jobs", json=body)
    assert response.status_code == 400, response.text
    assert "nested more than" in response.json()["detail"]
    response = client.post("/debug/show-select-query", json=nested_filter(depth))
    assert response.status_code == 400 and "nested more than" in response.json()["detail"]


def test_a_body_nested_thousands_of_levels_deep_is_a_400(client):
    body = '{"handler": "Noop", "kwargs": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    response = client.post("/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["detail"].startswith("body: nested more than")


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"label": "a"}, 201, None),
        ({"label": "c"}, 400, "kwargs.label"),
        ({"label": "a", "run_id": "mine"}, 400, "kwargs.run_id"),
    ],
)
def test_plugin_type_hints_such_as_literal_are_checked_without_a_500(client, kwargs, status, field):
    response = client.post("/jobs", json={"handler": "Context", "kwargs": kwargs, "state": "paused"})
    assert response.status_code == status, response.text
    if field:
        assert_problem(response, 400, field)


def test_feb_29_means_the_next_feb_29(client):
    response = client.post("/jobs", json={"handler": "Noop", "when": "Feb 29, 10:00", "state": "paused"})
    assert response.status_code == 201, response.text
    when = response.json()["job"]["when"]
    assert when[5:16] == "02-29T10:00" and int(when[:4]) % 4 == 0


def test_a_run_shows_its_result_trigger_and_the_process_that_ran_it(client):
    client.post("/jobs", json={"job_id": "ctx", "handler": "Context", "kwargs": {"label": "b"}})
    (run,) = poll(lambda: [r for r in runs_of(client, "ctx") if r["status"] == "succeeded"])
    assert run["result"]["run_id"] == run["run_id"] and run["trigger"] == "schedule"
    assert run["owner"] and run["epoch"] >= 1


DATATAILR_CALENDAR = {
    "at_minutes": [30], "at_hours": [10, 16], "weekdays": ["Mon", "Wed"],
    "first_last": {"weekday": "Fri", "which": "Last"}, "timezone": "Europe/Paris",
}


def test_a_calendar_job_shows_its_calendar_and_next_runs_in_local_time(client):
    body = {"job_id": "paris", "handler": "Noop", "calendar": DATATAILR_CALENDAR, "state": "paused"}
    created = client.post("/jobs", json=body)
    assert created.status_code == 201, created.text
    job = created.json()["job"]
    assert job["calendar"] == DATATAILR_CALENDAR and job["timezone"] == "Europe/Paris"
    listed = client.get("/jobs/paris/next-runs", params={"count": 6}).json()
    assert listed["timezone"] == "Europe/Paris" and len(listed["next_runs"]) == 6
    for slot in listed["next_runs"]:
        moment = datetime.fromisoformat(slot["local"])
        assert moment.strftime("%H:%M") in ("10:30", "16:30") and moment.strftime("%a") in ("Mon", "Wed", "Fri")
        assert datetime.fromisoformat(slot["utc"]) == moment


def test_a_schedule_preview_lists_fire_times_without_saving(client):
    body = {"cron": "0 3 1 * 1", "timezone": "America/New_York"}
    preview = client.post("/schedules/preview", params={"count": 3}, json=body)
    assert preview.status_code == 200, preview.text
    local = [datetime.fromisoformat(slot["local"]) for slot in preview.json()["next_runs"]]
    assert all(moment.hour == 3 and (moment.day == 1 or moment.weekday() == 0) for moment in local)
    assert client.get("/jobs").json()["total"] == 0


@pytest.mark.parametrize(
    ("path", "params", "body", "field"),
    [
        ("/schedules/preview", {}, {"calendar": {"weekdays": ["Funday"]}}, "body.calendar.weekdays.0"),
        ("/schedules/preview", {}, {"calendar": {"day_of_month": [30], "in_months": [2]}}, "calendar"),
        ("/schedules/preview", {}, {"cron": "0 0 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ("/schedules/preview", {"count": 1001}, {"cron": "0 0 * * *"}, "count"),
        ("/jobs", {}, {"job_id": "x", "handler": "Noop", "calendar": {"every_minute": 0}}, "body.calendar.every_minute"),
        ("/jobs", {}, {"job_id": "x", "handler": "Noop", "periodically": "1 hour", "timezone": "UTC"}, "timezone"),
    ],
)
def test_bad_schedules_are_400_naming_the_field(client, path, params, body, field):
    assert_problem(client.post(path, params=params, json=body), 400, field)


def test_next_runs_of_an_unknown_job_is_404(client):
    assert client.get("/jobs/nope/next-runs").status_code == 404


def test_a_handler_gets_the_rundate_in_the_calendars_zone_with_its_offset(client):
    calendar = {"at_hours": [12], "timezone": "Pacific/Auckland", "rundate_offset": -1}
    client.post("/jobs", json={"job_id": "dated", "handler": "Rundate", "calendar": calendar, "state": "paused"})
    client.post("/jobs/dated/run")
    run = poll(lambda: [r for r in runs_of(client, "dated") if r["status"] == "succeeded"])[0]
    slot = datetime.fromisoformat(run["result"]["scheduled_for"])
    expected = slot.astimezone(ZoneInfo("Pacific/Auckland")).date() - timedelta(days=1)
    assert run["result"]["rundate"] == expected.isoformat()


def test_patch_changes_fields_revalidates_and_reschedules(client):
    created = client.post("/jobs", json={"job_id": "edit", "handler": "Noop", "periodically": "1 hour"}).json()["job"]
    poll(lambda: client.get("/jobs/edit").json()["job"]["last_run"])  # its first run, at once, recorded
    patched = client.patch("/jobs/edit", json={"cron": "0 3 * * *", "timezone": "Europe/Paris"})
    assert patched.status_code == 200, patched.text
    job = patched.json()["job"]
    assert job["cron"] == "0 3 * * *" and job["periodically"] is None and job["timezone"] == "Europe/Paris"
    assert job["revision"] == created["revision"] + 1
    assert datetime.fromisoformat(job["next_run_time"]).astimezone(ZoneInfo("Europe/Paris")).hour == 3
    assert client.get("/jobs/edit").json()["job"] == job
    kept = client.patch("/jobs/edit", json={"misfire_grace_time": "5 minutes"}).json()["job"]
    assert kept["next_run_time"] == job["next_run_time"] and kept["misfire_grace_time"] == 300


def test_patch_with_a_stale_revision_is_409_and_changes_nothing(client):
    job = client.post("/jobs", json={"job_id": "guarded", "handler": "Noop", "periodically": "1 hour"}).json()["job"]
    fresh = client.patch("/jobs/guarded", json={"periodically": "2 hours"}, headers={"If-Match": str(job["revision"])})
    assert fresh.status_code == 200, fresh.text
    stale = client.patch("/jobs/guarded", json={"periodically": "3 hours", "revision": job["revision"]})
    assert_problem(stale, 409, "revision")
    assert client.get("/jobs/guarded").json()["job"]["periodically"] == "2 hours"


def test_patch_can_turn_a_handler_job_into_a_workflow_and_pause_it(client):
    client.post("/jobs", json={"job_id": "grow", "handler": "Noop", "periodically": "1 hour"})
    tasks = [{"name": "a", "handler": "Noop"}, {"name": "b", "handler": "Noop", "depends_on": ["a"]}]
    job = client.patch("/jobs/grow", json={"tasks": tasks, "state": "paused"}).json()["job"]
    assert job["handler"] is None and [t["name"] for t in job["tasks"]] == ["a", "b"]
    assert job["state"] == "paused" and job["next_run_time"] is None
    back = client.patch("/jobs/grow", json={"state": "running", "max_concurrent": 1}).json()["job"]
    assert back["next_run_time"] is not None and back["max_concurrent"] == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"cron": "61 * * * *"}, 400, "cron"),
        ({"job_id": "other"}, 400, "job_id"),
        ({"handler": "Nope"}, 400, "handler"),
        ({"revision": "x"}, 400, "body.revision"),
        ({"tasks": [{"name": "a", "depends_on": ["a"]}]}, 400, "tasks[0].depends_on[0]"),
    ],
)
def test_bad_patches_name_the_field(client, body, status, field):
    client.post("/jobs", json={"job_id": "target", "handler": "Noop", "periodically": "1 hour"})
    assert_problem(client.patch("/jobs/target", json=body), status, field)
    assert client.get("/jobs/target").json()["job"]["revision"] == 1


def test_patch_of_an_unknown_job_is_404(client):
    assert client.patch("/jobs/nope", json={"state": "paused"}).status_code == 404


def test_backfill_runs_every_slot_in_the_range_one_after_another(client):
    client.post("/jobs", json={"job_id": "bf", "handler": "Rundate", "cron": "0 * * * *", "state": "paused"})
    body = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T03:00:00Z"}
    queued = client.post("/jobs/bf/backfill", json=body)
    assert queued.status_code == 202, queued.text
    assert queued.json()["backfill"] == {
        "job_id": "bf", "start": "2026-01-01T00:00:00+00:00", "end": "2026-01-01T03:00:00+00:00",
        "slots": 4, "queued": 4, "already_backfilled": 0,
        "first": "2026-01-01T00:00:00+00:00", "last": "2026-01-01T03:00:00+00:00",
    }
    done = poll(lambda: (runs := runs_of(client, "bf")) and all(r["status"] == "succeeded" for r in runs) and runs)
    done.sort(key=lambda run: run["scheduled_for"])
    assert [run["trigger"] for run in done] == ["backfill"] * 4
    assert [run["result"]["scheduled_for"][11:16] for run in done] == ["00:00", "01:00", "02:00", "03:00"]
    assert {run["result"]["rundate"] for run in done} == {"2026-01-01"}
    for earlier, later in itertools.pairwise(done):  # one after another, oldest first
        assert later["started_at"] >= earlier["finished_at"]
    again = client.post("/jobs/bf/backfill", json=body).json()["backfill"]
    assert (again["queued"], again["already_backfilled"]) == (0, 4)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-31T00:00:00Z"}, "end", "43,201 slots"),
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "end", "before start"),
        ({"start": "yesterday", "end": "2026-01-01T00:00:00Z"}, "start", "ISO 8601"),
    ],
)
def test_bad_backfills_say_why(client, body, field, words):
    client.post("/jobs", json={"job_id": "minutely", "handler": "Noop", "cron": "* * * * *", "state": "paused"})
    problem = assert_problem(client.post("/jobs/minutely/backfill", json=body), 400, field)
    assert words in problem["detail"]
    assert runs_of(client, "minutely") == []


def test_backfill_of_an_unknown_job_is_404(client):
    body = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T03:00:00Z"}
    assert client.post("/jobs/nope/backfill", json=body).status_code == 404
