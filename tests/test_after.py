"""Jobs that run after another job's runs (Datatailr's run_after_job_*), on both backends,
through a real FiringScheduler: each condition, retries, paused followers, workflows, loops."""

import pytest
import yaml

from f8a_jobs.core.errors import InvalidInput, JobInUse
from f8a_jobs.services import jobs, runs
from tests.conftest import poll


@pytest.fixture
def scheduler(started_scheduler):
    return started_scheduler


def add(engine, job_id, **fields):
    return jobs.create_job(engine, jobs.parse_job({"job_id": job_id, "handler": "Noop", **fields}))


def statuses(engine, job_id):
    return sorted((run["trigger"], run["status"]) for run in runs.list_runs(engine, job_id)[0])


def run_and_wait(engine, scheduler, job_id):
    run_id = runs.request_run(engine, job_id)["run_id"]
    scheduler.wakeup()
    return poll(lambda: next((r for r in runs.list_runs(engine, job_id)[0]
                              if r["run_id"] == run_id and r["status"] in ("succeeded", "failed")), None))


def test_followers_run_on_the_condition_they_ask_for(engine, scheduler):
    add(engine, "ok", state="paused")
    add(engine, "bad", handler="Fail", kwargs={"message": "no"}, state="paused")
    add(engine, "after-ok", after={"job_id": "ok"})
    add(engine, "after-bad-success", after={"job_id": "bad", "on": "success"})
    add(engine, "after-bad-failure", after={"job_id": "bad", "on": "on failure"})
    add(engine, "after-bad-always", after={"job_id": "bad", "on": "always"})
    run_and_wait(engine, scheduler, "ok")
    run_and_wait(engine, scheduler, "bad")
    for follower in ("after-ok", "after-bad-failure", "after-bad-always"):
        poll(lambda follower=follower: statuses(engine, follower) == [("after", "succeeded")])
    assert statuses(engine, "after-bad-success") == []
    assert jobs.get_job(engine, "after-ok")["after"] == {"job_id": "ok", "on": "success"}


def test_a_retried_run_is_followed_once_when_it_finally_ends(engine, scheduler):
    add(engine, "flaky", handler="Flaky", kwargs={"key": "f", "failures": 1}, tries=2,
        retry_delay=0.1, state="paused")
    add(engine, "next", after={"job_id": "flaky"})
    run = run_and_wait(engine, scheduler, "flaky")
    assert run["status"] == "succeeded" and run["tries"] == 2
    poll(lambda: statuses(engine, "next") == [("after", "succeeded")])


def test_a_paused_follower_is_not_queued(engine, scheduler):
    add(engine, "first", state="paused")
    add(engine, "held", after={"job_id": "first"}, state="paused")
    add(engine, "witness", after={"job_id": "first"})
    run_and_wait(engine, scheduler, "first")
    poll(lambda: statuses(engine, "witness") == [("after", "succeeded")])
    assert statuses(engine, "held") == []


def test_a_workflow_run_is_followed_too(engine, scheduler):
    jobs.create_job(engine, jobs.parse_job({
        "job_id": "flow", "state": "paused",
        "tasks": [{"name": "a", "handler": "Noop"}, {"name": "b", "handler": "Noop", "depends_on": ["a"]}],
    }))
    add(engine, "report", after={"job_id": "flow"})
    run_and_wait(engine, scheduler, "flow")
    poll(lambda: statuses(engine, "report") == [("after", "succeeded")])


def test_loops_of_after_are_refused_naming_the_chain(engine):
    add(engine, "a", state="paused")
    add(engine, "b", after={"job_id": "a"})
    add(engine, "c", after={"job_id": "b"})
    with pytest.raises(InvalidInput) as caught:
        jobs.patch_job(engine, "a", {"after": {"job_id": "c"}})
    assert caught.value.field == "after" and "a → c → b → a" in caught.value.detail
    with pytest.raises(InvalidInput) as itself:
        add(engine, "d", after={"job_id": "d"})
    assert "d → d" in itself.value.detail
    with pytest.raises(JobInUse) as in_use:
        jobs.delete_job(engine, "b")
    assert "followed ('after') by the jobs 'c'" in in_use.value.detail


def test_a_yaml_after_with_a_bare_on_key_reads_as_written():
    data = yaml.safe_load("job_id: y\nhandler: Noop\nafter: {job_id: x, on: failure}\n")
    assert jobs.parse_job(data).schedule == {"version": 1, "type": "after", "job_id": "x", "on": "failure"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"after": {"job_id": "nope"}}, "after.job_id"),
        ({"after": {"job_id": "a", "on": "sometimes"}}, "after.on"),
        ({"after": {"job_id": "a"}, "periodically": "1 hour"}, "after"),
        ({"after": "a"}, "after"),
        ({"after": {"job_id": "a", "when": "now"}}, "after.when"),
    ],
)
def test_bad_afters_name_the_field(engine, fields, field):
    add(engine, "a", state="paused")
    with pytest.raises(InvalidInput) as caught:
        add(engine, "z", **fields)
    assert caught.value.field == field
