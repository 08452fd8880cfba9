"""The examples of the documents f8a-jobs was designed from (``examples/jobs``), on a real
server on the embedded default (SQLite): loaded from YAML whatever the file order, run through
the API, and the same definitions posted through the API."""

from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, poll

EXAMPLES = ROOT / "examples" / "jobs"
ENDED = ("succeeded", "failed", "cancelled")


@pytest.fixture
def server(server_factory, tmp_path):
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    return server_factory(
        url, EXAMPLES, F8A_JOBS_HANDLER_MODULES="examples.handlers",
        F8A_JOBS_EXAMPLES_DIR=str(tmp_path / "marks"),
    ).start()


def run(server, job_id):
    response = server.post(f"/jobs/{job_id}/run")
    assert response.status_code == 202, response.text
    run_id = response.json()["run"]["run_id"]

    def ended():
        found = server.get(f"/jobs/{job_id}/runs/{run_id}").json()["run"]
        return found if found["status"] in ENDED else None

    found = poll(ended, timeout=30)
    assert found["status"] == "succeeded", found
    return {task["name"]: task for task in found["tasks"]}


def test_every_example_file_is_loaded_whatever_the_file_order(server):
    listed = {job["job_id"] for job in server.get("/jobs", params={"limit": 100}).json()["jobs"]}
    assert {"datatailr-example", "dojobber-example", "dagobah-job-1", "dagobah-job-2"} <= listed


def test_datatailr_results_reach_the_tasks_after(server):
    tasks = run(server, "datatailr-example")
    foo = "This is the return value of function foo"
    assert tasks["bar task"]["result"] == f"bar saw: {foo}"
    assert tasks["baz task"]["result"].startswith(f"baz saw: {foo} / bar saw: {foo}, running for 2")


def test_dojobber_invites_once_and_then_only_checks(server):
    tasks = run(server, "dojobber-example")
    assert [part["state"] for part in tasks["send-invite"]["parts"]] == ["succeeded", "succeeded"]
    assert tasks["friends-arrive"]["result"] == "['invited Wendell Bagg', 'invited Lawyer Cat']"
    assert tasks["invite-friends"]["state"] == "succeeded"
    again = run(server, "dojobber-example")
    assert [part["state"] for part in again["send-invite"]["parts"]] == ["satisfied", "satisfied"]
    # a satisfied part passes on what its check found: the invitations, as the first run's
    assert again["friends-arrive"]["result"] == tasks["friends-arrive"]["result"]


def test_dojobber_dry_run_checks_each_invite_from_the_file(server):
    def dry_run():
        response = server.post("/jobs/dojobber-example/run", params={"dry_run": "true"})
        assert response.status_code == 200, response.text
        return {task["name"]: task for task in response.json()["dry_run"]["tasks"]}

    before = dry_run()
    parts = before["send-invite"]["parts"]
    assert [(part["item"]["name"], part["would"]) for part in parts] == [
        ("Wendell Bagg", "would_run"), ("Lawyer Cat", "would_run")]
    assert before["send-invite"]["error"] == "2 of 2 parts would run; part 0: check returned False"
    assert before["friends-arrive"]["would"] == "not_checked"
    run(server, "dojobber-example")
    after = dry_run()
    assert {name: task["would"] for name, task in after.items()} == {
        "send-invite": "satisfied", "invite-friends": "nothing_to_run", "friends-arrive": "would_run"}
    assert after["friends-arrive"]["error"] == "the handler has no check"


def test_dagobah_runs_job_2_inside_job_1_in_order(server):
    tasks = run(server, "dagobah-job-1")
    order = sorted(tasks, key=lambda name: tasks[name]["finished_at"])
    assert order == ["task-1", "job-2/task-3", "job-2/task-4", "job-2", "task-2"]
    assert tasks["task-2"]["result"] == "task 2 after {'task-4': 'task 4'}"


@pytest.mark.parametrize("name", ["datatailr-example.yaml", "dojobber-example.yaml"])
def test_the_same_definitions_work_through_the_api(server, name):
    body = {**yaml.safe_load(Path(EXAMPLES / name).read_text()), "job_id": f"api-{name[:-5]}"}
    assert server.post("/jobs", json=body).status_code == 201
    tasks = run(server, body["job_id"])
    assert all(task["state"] in ("succeeded", "satisfied") for task in tasks.values())
