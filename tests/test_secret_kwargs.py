"""Secret kwargs stay out of what the API shows (their values read ``***``), survive a client
that reads a job and writes it back unchanged, and still reach handlers as they are."""

import pytest
from sqlalchemy import select

from f8a_jobs.core.masking import SHOWN, kept_items, kept_kwargs, masked_items
from f8a_jobs.storage.tables import job_runs, jobs
from tests.conftest import module_server, poll, wipe

PASSWORD = "hunter2-pw"
TOKEN = "tk-0123456789"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, pytestconfig):
    tmp = tmp_path_factory.mktemp(f"secrets-{request.param}")
    with module_server(request.param, tmp, pytestconfig) as server:
        yield server


@pytest.fixture
def client(api):
    wipe(api.engine)
    api.put("/service/state", params={"state": "running"})
    return api


def stored(client, job_id):
    """The job's row as the database holds it, not as the API shows it."""
    with client.engine.connect() as connection:
        return connection.execute(select(jobs).where(jobs.c.job_id == job_id)).mappings().one()


def created(client, body):
    response = client.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["job"]


def assert_hidden(response, *secrets):
    assert response.status_code < 300, response.text
    for secret in secrets:
        assert secret not in response.text, response.text


CHATTY = {
    "job_id": "chatty",
    "handler": "Chatty",
    "kwargs": {"password": PASSWORD, "tag": "tag-value", "lines": 2},
    "secret_kwargs": ["tag"],
    "state": "paused",
}


# --- what the API shows ---------------------------------------------------------------------


def test_every_view_of_a_job_shows_its_secret_kwargs_as_stars(client):
    job = created(client, CHATTY)
    shown = {"password": SHOWN, "tag": SHOWN, "lines": 2}
    assert job["kwargs"] == shown and job["secret_kwargs"] == ["tag"]
    got = client.get("/jobs/chatty")
    assert got.json()["job"]["kwargs"] == shown
    assert got.headers["ETag"] == f'"{job["revision"]}"'
    listed = client.get("/jobs", params={"full": True}).json()["jobs"]
    assert [entry["kwargs"] for entry in listed] == [shown]
    summaries = client.get("/jobs").json()["jobs"]
    assert "kwargs" not in summaries[0]
    resumed = client.put("/jobs/chatty", params={"state": "running"})
    assert resumed.json()["job"]["kwargs"] == shown
    for response in (got, resumed, client.get("/jobs", params={"full": True})):
        assert_hidden(response, PASSWORD, "tag-value")
    row = stored(client, "chatty")
    assert row["kwargs"] == {"password": PASSWORD, "tag": "tag-value", "lines": 2}


def test_a_workflows_tasks_show_their_secret_kwargs_and_items_as_stars(client):
    tasks = [
        {"name": "a", "handler": "Chatty", "kwargs": {"password": PASSWORD, "tag": "open"}},
        {"name": "b", "handler": "Record", "kwargs": {"conn": "conn-value"}, "depends_on": ["a"]},
        {"name": "c", "handler": "Record", "for_each": [{"token": TOKEN, "n": 1}, {"n": 2}]},
    ]
    body = {"job_id": "flow", "tasks": tasks, "secret_kwargs": ["conn"], "state": "paused"}
    job = created(client, body)
    response = client.get("/jobs/flow")
    assert_hidden(response, PASSWORD, "conn-value", TOKEN)
    assert response.json()["job"] == job
    shown = {task["name"]: task for task in job["tasks"]}
    assert shown["a"]["kwargs"] == {"password": SHOWN, "tag": "open"}
    assert shown["b"]["kwargs"] == {"conn": SHOWN}
    assert shown["c"]["for_each"] == [{"token": SHOWN, "n": 1}, {"n": 2}]
    assert stored(client, "flow")["workflow"]["tasks"] == tasks


def test_a_failed_run_shows_its_secret_kwargs_as_stars(client):
    body = {**CHATTY, "kwargs": {**CHATTY["kwargs"], "fail": True}, "state": "running"}
    created(client, body)
    failed = poll(lambda: client.get("/jobs", params={"job_type": "failed"}).json()["jobs"])
    assert failed[0]["kwargs"] == {"password": SHOWN, "tag": SHOWN, "lines": 2, "fail": True}
    with client.engine.connect() as connection:
        kept = connection.execute(select(job_runs.c.kwargs)).scalar_one()
    assert kept["password"] == PASSWORD and kept["tag"] == "tag-value"


# --- handlers get the real values -----------------------------------------------------------


def test_a_handler_runs_with_the_real_values_of_its_secret_kwargs(client, tmp_path):
    mark = tmp_path / "plain-mark"
    body = {"job_id": "touch", "handler": "Touch", "kwargs": {"path": str(mark)}}
    job = created(client, {**body, "secret_kwargs": ["path"]})
    assert job["kwargs"] == {"path": SHOWN}
    poll(mark.exists)  # written at the path it was given, not at "***"
    assert poll(lambda: [run["status"] for run in client.get("/jobs/touch/runs").json()["runs"]] == ["succeeded"])


def test_a_workflows_tasks_run_with_the_real_values_and_its_run_shows_none(client, tmp_path):
    mark = tmp_path / "task-mark"
    tasks = [{"name": "t", "handler": "Touch", "kwargs": {"path": str(mark), "value": "done"}}]
    created(client, {"job_id": "wf-touch", "tasks": tasks, "secret_kwargs": ["path"]})
    poll(mark.exists)
    run = poll(lambda: [r for r in client.get("/jobs/wf-touch/runs").json()["runs"] if r["status"] == "succeeded"])[0]
    shown = client.get(f"/jobs/wf-touch/runs/{run['run_id']}")
    assert_hidden(shown, str(mark))
    assert shown.json()["run"]["tasks"][0]["result"] == "done"
    assert_hidden(client.get("/jobs/wf-touch/graph", params={"run_id": run["run_id"]}), str(mark))


def test_a_dry_run_and_the_graph_use_the_real_values(client):
    """``Found``'s check passes when ``found`` is truthy: checked with ``***`` it would."""
    client.post("/jobs", json={"job_id": "inner", "handler": "Chatty", "state": "paused"})
    tasks = [
        {"name": "look", "handler": "Found", "kwargs": {"found": False}},
        {"name": "in", "job": "inner", "kwargs": {"lines": 4}},
    ]
    body = {"job_id": "dry", "tasks": tasks, "secret_kwargs": ["found", "lines"], "state": "paused"}
    job = created(client, body)
    assert [task["kwargs"] for task in job["tasks"]] == [{"found": SHOWN}, {"lines": SHOWN}]
    report = client.post("/jobs/dry/run", params={"dry_run": True})
    assert report.status_code == 200, report.text
    verdicts = {task["name"]: task for task in report.json()["dry_run"]["tasks"]}
    assert verdicts["look"]["would"] == "would_run" and verdicts["look"]["error"] == "check returned False"
    graph = client.get("/jobs/dry/graph")  # expanding checks `lines` against Chatty's int
    assert graph.status_code == 200, graph.text
    assert {task["name"] for task in graph.json()["tasks"]} >= {"look", "in"}


# --- writing back what was read -------------------------------------------------------------


def test_patching_back_the_kwargs_read_keeps_the_stored_secrets(client):
    created(client, {**CHATTY, "secret_kwargs": ["tag", "lines"]})
    shown = client.get("/jobs/chatty").json()["job"]
    assert shown["kwargs"] == {"password": SHOWN, "tag": SHOWN, "lines": SHOWN}
    back = client.patch("/jobs/chatty", json={"kwargs": shown["kwargs"]})  # lines: an int again
    assert back.status_code == 200, back.text
    assert back.json()["job"]["kwargs"] == shown["kwargs"]
    assert stored(client, "chatty")["kwargs"] == CHATTY["kwargs"]
    changed = {**shown["kwargs"], "password": "new-pw"}
    assert client.patch("/jobs/chatty", json={"kwargs": changed}).status_code == 200
    assert stored(client, "chatty")["kwargs"] == {**CHATTY["kwargs"], "password": "new-pw"}


def test_patching_back_the_whole_definition_read_changes_nothing_stored(client):
    created(client, CHATTY)
    before = stored(client, "chatty")
    shown = client.get("/jobs/chatty").json()["job"]
    definition = {key: shown[key] for key in ("handler", "kwargs", "secret_kwargs", "state")}
    back = client.patch("/jobs/chatty", json=definition, headers={"If-Match": client.get("/jobs/chatty").headers["ETag"]})
    assert back.status_code == 200, back.text
    after = stored(client, "chatty")
    assert after["kwargs"] == before["kwargs"] and after["policy"] == before["policy"]
    assert after["revision"] == before["revision"] + 1


def test_stars_are_a_value_where_there_is_no_secret_to_keep(client):
    """Only a secret kwarg that had a value keeps it: a new one, or one that is not secret,
    stores what was sent; a new job stores ``***`` as given."""
    job = created(client, {"job_id": "rec", "handler": "Record", "kwargs": {"api_token": SHOWN}, "state": "paused"})
    assert stored(client, "rec")["kwargs"] == {"api_token": SHOWN} and job["kwargs"] == {"api_token": SHOWN}
    assert client.patch("/jobs/rec", json={"kwargs": {"api_token": TOKEN}}).status_code == 200
    patch = {"kwargs": {"api_token": SHOWN, "db_password": SHOWN, "label": SHOWN}}
    response = client.patch("/jobs/rec", json=patch)
    assert response.status_code == 200, response.text
    assert stored(client, "rec")["kwargs"] == {"api_token": TOKEN, "db_password": SHOWN, "label": SHOWN}


def test_a_kwarg_no_longer_listed_keeps_its_value_when_sent_back_as_read(client):
    created(client, CHATTY)
    shown = client.get("/jobs/chatty").json()["job"]
    patch = {"kwargs": shown["kwargs"], "secret_kwargs": None}
    job = client.patch("/jobs/chatty", json=patch).json()["job"]
    assert stored(client, "chatty")["kwargs"] == CHATTY["kwargs"]
    assert job["kwargs"]["tag"] == "tag-value" and job["kwargs"]["password"] == SHOWN


def test_patching_back_a_workflows_tasks_keeps_their_secrets_by_task_name(client):
    tasks = [
        {"name": "a", "handler": "Chatty", "kwargs": {"password": PASSWORD, "lines": 1}},
        {"name": "c", "handler": "Record", "for_each": [{"token": TOKEN, "n": 1}, {"n": 2}]},
    ]
    created(client, {"job_id": "flow", "tasks": tasks, "secret_kwargs": ["lines"], "state": "paused"})
    shown = client.get("/jobs/flow").json()["job"]["tasks"]
    back = client.patch("/jobs/flow", json={"tasks": shown})
    assert back.status_code == 200, back.text
    assert stored(client, "flow")["workflow"]["tasks"] == tasks
    renamed = [{**shown[0], "name": "z"}, shown[1]]
    assert client.patch("/jobs/flow", json={"tasks": renamed}).status_code == 400  # lines: "***"
    renamed[0]["kwargs"] = {"password": SHOWN}
    assert client.patch("/jobs/flow", json={"tasks": renamed}).status_code == 200
    stored_tasks = stored(client, "flow")["workflow"]["tasks"]
    assert stored_tasks[0]["kwargs"] == {"password": SHOWN}  # a new task: nothing to keep
    assert stored_tasks[1]["for_each"] == tasks[1]["for_each"]


# --- the pure helpers -----------------------------------------------------------------------


def test_items_are_masked_and_kept_as_the_kwargs_of_their_parts():
    items = [{"token": "t1", "n": 1}, "plain", None]
    assert masked_items(items) == [{"token": SHOWN, "n": 1}, "plain", None]
    assert masked_items(items, ["item"]) == [{"token": SHOWN, "n": 1}, SHOWN, None]
    assert masked_items({"$result": "a"}, ["item"]) == {"$result": "a"}
    back = [{"token": SHOWN, "n": 1}, SHOWN, SHOWN, {"token": SHOWN}]
    assert kept_items(back, items, ["item"]) == [{"token": "t1", "n": 1}, "plain", SHOWN, {"token": SHOWN}]
    assert kept_items(back, items) == [{"token": "t1", "n": 1}, SHOWN, SHOWN, {"token": SHOWN}]
    assert kept_items(back, {"$result": "a"}) == back


def test_kept_kwargs_keeps_only_secret_stars_with_a_stored_value():
    before = {"password": "p", "name": "n", "extra": "x"}
    back = {"password": SHOWN, "name": SHOWN, "extra": SHOWN, "secret_new": SHOWN}
    assert kept_kwargs(back, before, ["extra"]) == {
        "password": "p",
        "name": SHOWN,
        "extra": "x",
        "secret_new": SHOWN,
    }
    assert kept_kwargs({"password": "***x"}, before) == {"password": "***x"}
