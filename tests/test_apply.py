"""``POST /jobs/apply``: many jobs created, changed, left alone or pruned in one transaction,
within write rights, each change audited as the single calls audit it; over HTTP against a
real server (the users and server of ``test_access``, on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from f8a_jobs.core.clock import utcnow
from f8a_jobs.storage.tables import jobs
from tests import test_access
from tests.conftest import poll
from tests.test_access import As, create, history

# the users, the server and the keys of test_access, as fixtures of this module
api, users, keys = test_access.api, test_access.users, test_access.keys


def job(job_id: str, **fields: Any) -> dict[str, Any]:
    return {"job_id": job_id, "handler": "Noop", "periodically": "1 day", **fields}


def apply(client: As, jobs: list[dict[str, Any]], status: int = 200, **options: Any) -> Any:
    response = client.post("/jobs/apply", json={"jobs": jobs, **options})
    assert response.status_code == status, response.text
    return response.json()


def answer(created=(), changed=(), unchanged=(), deleted=(), dry_run=False) -> dict[str, Any]:
    return {
        "created": list(created),
        "changed": list(changed),
        "unchanged": list(unchanged),
        "deleted": list(deleted),
        "dry_run": dry_run,
    }


def job_ids(client: As) -> list[str]:
    return [entry["job_id"] for entry in client.get("/jobs").json()["jobs"]]


def shown(client: As, job_id: str) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()["job"]


def test_apply_creates_then_leaves_alone_then_changes_each_audited(users):
    alice = users["alice"]
    later = (utcnow() + timedelta(days=1)).isoformat()  # none fires meanwhile
    listed = [
        job("extract", labels=["etl"], when=later),
        job("load", after={"job_id": "extract"}, periodically=None),
    ]
    body = apply(alice, listed, reason="first deploy")
    assert body == answer(created=["extract", "load"])
    extract = shown(alice, "extract")
    assert extract["owner"] == "alice" and extract["group"] == "data"
    assert extract["labels"] == ["etl"] and extract["next_run_time"] is not None
    [entry] = history(alice, "extract")
    assert entry["action"] == "create" and entry["reason"] == "first deploy"
    assert entry["details"]["bulk"] is True and entry["details"]["job"]["job_id"] == "extract"

    assert apply(alice, listed) == answer(unchanged=["extract", "load"])
    assert shown(alice, "extract") == extract  # nothing written: same revision, same next run
    assert len(history(alice, "extract")) == 1  # and nothing audited

    listed[0] = job("extract", labels=["etl", "nightly"], when=later, kwargs={})
    assert apply(alice, listed) == answer(changed=["extract"], unchanged=["load"])
    changed = shown(alice, "extract")
    assert changed["labels"] == ["etl", "nightly"] and changed["revision"] == 2
    assert changed["next_run_time"] == extract["next_run_time"]  # the schedule did not change
    assert alice.get("/jobs", params={"label": "nightly"}).json()["total"] == 1
    entry = history(alice, "extract", action="edit")[0]
    assert entry["details"] == {
        "bulk": True,
        "changes": {"labels": {"old": ["etl"], "new": ["etl", "nightly"]}},
    }


def test_a_changed_schedule_is_recomputed_and_fields_left_out_keep_what_was_set(users):
    alice, bob = users["alice"], users["bob"]
    later = (utcnow() + timedelta(days=30)).replace(microsecond=0).isoformat()
    apply(alice, [job("report", when=later)])
    assert alice.put("/jobs/report", params={"state": "paused"}).status_code == 200
    # bob (alice's group) applies it without state or owner: paused it stays, alice's it stays
    assert apply(bob, [job("report", when=later)]) == answer(unchanged=["report"])
    assert shown(bob, "report")["state"] == "paused" and shown(bob, "report")["owner"] == "alice"
    apply(bob, [job("report", when=later, state="running", cron="0 6 * * *", periodically=None)])
    report = shown(bob, "report")
    assert report["state"] == "running" and report["cron"] == "0 6 * * *"
    next_run = datetime.fromisoformat(report["next_run_time"])  # from its `when` on, at 06:00
    assert next_run >= datetime.fromisoformat(later) and next_run.hour == 6


def test_a_start_date_passed_since_is_no_error_when_applied_again(api, users):
    alice = users["alice"]
    started = (utcnow() - timedelta(hours=2)).isoformat()  # long past any clock skew
    later = (utcnow() + timedelta(hours=1)).isoformat()
    apply(alice, [job("started", when=later, state="paused")])
    _restart(api.engine, "started", started)  # as if it was applied two hours ago
    again = apply(alice, [job("started", when=started, state="paused")])
    assert again == answer(unchanged=["started"])
    refused = apply(alice, [job("new-one", when=started)], status=400)
    assert refused["field"] == "jobs[0].when" and "in the past" in refused["detail"]


def _restart(engine: Any, job_id: str, start: str) -> None:
    with engine.begin() as connection:
        row = connection.execute(select(jobs.c.schedule).where(jobs.c.job_id == job_id)).one()
        schedule = {**row.schedule, "start": start}
        connection.execute(update(jobs).where(jobs.c.job_id == job_id).values(schedule=schedule))


def test_prune_deletes_the_callers_other_jobs_and_only_those_with_the_label(users):
    alice, carol = users["alice"], users["carol"]
    apply(alice, [job("keep"), job("old-a", labels=["team"]), job("old-b"), job("other")])
    create(carol, job_id="carols")  # alice may read it, not change it: never pruned
    body = apply(alice, [job("keep")], prune=True, prune_label="team")
    assert body == answer(unchanged=["keep"], deleted=["old-a"])
    trail = users["root"].get("/audit", params={"job_id": "old-a", "action": "delete"})
    [entry] = trail.json()["entries"]
    assert entry["user"] == "alice" and entry["details"]["bulk"] is True
    assert entry["details"]["job"]["job_id"] == "old-a"
    body = apply(alice, [job("keep")], prune=True)
    assert body == answer(unchanged=["keep"], deleted=["old-b", "other"])
    assert job_ids(alice) == ["carols", "keep"]


def test_a_dry_run_answers_the_same_and_writes_nothing(users):
    alice = users["alice"]
    apply(alice, [job("a"), job("b")])
    listed = [job("a", periodically="2 days"), job("c")]
    dry = apply(alice, listed, prune=True, dry_run=True)
    assert dry == answer(created=["c"], changed=["a"], deleted=["b"], dry_run=True)
    assert job_ids(alice) == ["a", "b"] and shown(alice, "a")["periodically"] == "1 day"
    assert [entry["action"] for entry in history(alice, "a")] == ["create"]
    assert apply(alice, listed, prune=True) == {**dry, "dry_run": False}


@pytest.mark.parametrize(
    ("jobs", "field"),
    [
        ([job("fine"), job("bad", periodically="often")], "jobs[1].periodically"),
        ([job("fine"), job("bad", handler="NoSuchHandler")], "jobs[1].handler"),
        ([job("fine"), job("bad", tries="x")], "jobs[1].tries"),
        ([job("fine"), job("bad", labels=5)], "jobs[1].labels"),
        ([job("fine"), job("bad", after={"job_id": "nowhere"}, periodically=None)], "jobs[1].after.job_id"),
        ([job("fine"), {"handler": "Noop"}], "jobs[1].job_id"),
        ([job("fine"), "a job"], "jobs[1]"),
        ([job("fine"), job("fine")], "jobs[1].job_id"),  # listed twice: the second is named
        ([job("fine", owner="carol")], "jobs[0].owner"),  # not an admin: 403
    ],
)
def test_bad_input_is_refused_naming_the_job_and_nothing_is_written(users, jobs, field):
    alice = users["alice"]
    response = alice.post("/jobs/apply", json={"jobs": jobs})
    assert response.status_code in (400, 403), response.text
    assert response.json()["field"] == field and response.json()["detail"].startswith(field)
    assert job_ids(alice) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "jobs"),
        ({"jobs": {}}, "jobs"),
        ({"jobs": [], "prune_label": "x"}, "prune_label"),
        ({"jobs": [], "prune": "yes"}, "prune"),
        ({"jobs": [{}] * 100_001}, "jobs"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field(users, body, field):
    response = users["alice"].post("/jobs/apply", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["field"]


def test_a_job_the_caller_may_not_change_is_a_403_or_a_404_and_nothing_changes(users):
    alice, carol = users["alice"], users["carol"]
    create(carol, job_id="theirs")  # alice may read it, not change it
    create(carol, job_id="hidden", permissions="rw----")  # alice may not even read it
    refused = apply(alice, [job("mine"), job("theirs")], status=403)
    assert refused["field"] == "jobs[1].job_id" and "'theirs'" in refused["detail"]
    unknown = apply(alice, [job("mine"), job("hidden")], status=404)
    assert unknown["field"] == "jobs[1].job_id"
    assert job_ids(alice) == ["theirs"]


def test_pruning_a_job_a_workflow_runs_is_a_409_naming_it_and_nothing_changes(users):
    alice = users["alice"]
    apply(alice, [job("step", labels=["old"])])
    create(alice, job_id="flow", handler=None, tasks=[{"name": "run-step", "job": "step"}])
    refused = apply(alice, [job("new")], prune=True, prune_label="old", status=409)
    assert "'step'" in refused["detail"] and "'flow'" in refused["detail"]
    assert job_ids(alice) == ["flow", "step"]
    # the workflow pruned with it: both go
    body = apply(alice, [job("new")], prune=True)
    assert body == answer(created=["new"], deleted=["flow", "step"])


def test_an_applied_job_is_fired_by_the_scheduler(users):
    alice = users["alice"]
    apply(alice, [job("tick", periodically="1 hour", state="running")])  # first run: now

    def succeeded() -> bool:
        runs = alice.get("/jobs/tick/runs").json()["runs"]
        return any(run["status"] == "succeeded" for run in runs)

    poll(succeeded, timeout=30)


def test_the_apply_body_may_be_larger_than_other_requests(users):
    padding = "x" * (3 * 1024 * 1024)  # past F8A_JOBS_MAX_BODY_BYTES (2 MiB)
    big = users["alice"].post("/jobs/apply", json={"jobs": [], "padding": padding})
    assert big.status_code == 400 and big.json()["field"] == "body.padding"  # read, not a 413
    too_big = users["alice"].post("/jobs", json={**job("a"), "padding": padding})
    assert too_big.status_code == 413
