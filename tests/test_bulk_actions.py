"""Bulk actions: ``POST /jobs/pause``, ``/jobs/resume`` and ``/jobs/run`` over a selection (ids,
or label, handler and state filters), in one transaction, each change audited as if made one
by one, within write rights (the users and server of ``test_access``)."""

from __future__ import annotations

import pytest

from tests import test_access
from tests.test_access import create, history

# the users, the server and the keys of test_access, as fixtures of this module
api, users, keys = test_access.api, test_access.users, test_access.keys


def states(client, *job_ids):
    return [client.get(f"/jobs/{job_id}").json()["job"]["state"] for job_id in job_ids]


def test_bulk_pause_by_label_changes_only_what_the_caller_may_change(users):
    alice, carol = users["alice"], users["carol"]
    for job_id in ("etl", "report"):
        create(alice, job_id=job_id, labels=["nightly"], state="running")
    create(alice, job_id="weekly", labels=["weekly"], state="running")
    create(carol, job_id="ops-nightly", labels=["nightly"], state="running")  # alice reads it
    body = {"label": "nightly", "reason": "database maintenance"}
    response = alice.post("/jobs/pause", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"selected": 2, "changed": 2, "job_ids": ["etl", "report"]}
    assert states(alice, "etl", "report", "weekly", "ops-nightly") == [
        "paused",
        "paused",
        "running",
        "running",
    ]
    [entry] = history(alice, "etl", action="pause")
    assert entry["user"] == "alice" and entry["reason"] == "database maintenance"
    assert entry["details"]["bulk"] is True
    again = alice.post("/jobs/pause", json={"label": "nightly"}).json()
    assert again == {"selected": 2, "changed": 0, "job_ids": []}  # already paused: left alone
    resumed = alice.post("/jobs/resume", json={"job_ids": ["etl"]}).json()
    assert resumed["changed"] == 1 and states(alice, "etl") == ["running"]
    assert alice.get("/jobs/etl").json()["job"]["next_run_time"] is not None


def test_listed_ids_are_all_or_nothing(users):
    alice, carol = users["alice"], users["carol"]
    create(alice, job_id="mine", state="running")
    create(carol, job_id="theirs", state="running")  # alice may read it, not change it
    create(carol, job_id="hidden", state="running", permissions="rw----")
    refused = alice.post("/jobs/pause", json={"job_ids": ["mine", "theirs"]})
    assert refused.status_code == 403 and "theirs" in refused.json()["detail"]
    unknown = alice.post("/jobs/pause", json={"job_ids": ["mine", "hidden"]})
    assert unknown.status_code == 404  # no read right: as if there were no such job
    assert states(alice, "mine") == ["running"]  # nothing changed
    assert history(alice, "mine", action="pause") == []


def test_bulk_run_queues_one_run_each_and_audits_it(users):
    alice = users["alice"]
    for job_id in ("a", "b"):
        create(alice, job_id=job_id, handler="Noop")
    create(alice, job_id="c", handler="Chatty")
    response = alice.post("/jobs/run", json={"handler": "Noop", "state": "paused"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["job_ids"] == ["a", "b"] and set(body["runs"]) == {"a", "b"}
    for job_id, run_id in body["runs"].items():
        run = test_access.finished(alice, job_id, run_id)
        assert run["status"] == "succeeded" and run["started_by"] == "user:alice"
        [entry] = history(alice, job_id, action="run")
        assert entry["details"] == {"run_id": run_id}
    assert alice.get("/jobs/c/runs").json()["runs"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"reason": "no selection"}, "body"),
        ({"job_ids": []}, "job_ids"),
        ({"label": "a,b", "everything": True}, "everything"),
        ({"state": "sleeping"}, "state"),
        ({"job_ids": ["a/b"]}, "job_ids"),
    ],
)
def test_a_bad_selection_is_a_400_naming_the_field(users, body, field):
    response = users["alice"].post("/jobs/pause", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["field"]


def test_a_job_named_like_a_bulk_action_is_still_reachable(users):
    alice = users["alice"]
    create(alice, job_id="pause")
    assert alice.get("/jobs/pause").json()["job"]["job_id"] == "pause"
    assert alice.post("/jobs/pause/run").status_code == 202
