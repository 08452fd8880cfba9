"""Plain jobs' run policies on both backends, through a real FiringScheduler: tries with a
growing delay (a queued row waits, no thread), a timeout, pausing the job on failure. Timing is
read from the events the handlers record."""

from datetime import datetime

import pytest

from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.services import jobs, runs
from tests import handlers as test_handlers
from tests.conftest import poll


@pytest.fixture
def scheduler(started_scheduler):
    return started_scheduler


def add(engine, **fields):
    return jobs.create_job(engine, jobs.parse_job({"state": "paused", **fields}))


def run_now(engine, scheduler, job_id):
    run_id = runs.request_run(engine, job_id)["run_id"]
    scheduler.wakeup()
    return run_id


def the_run(engine, job_id, run_id):
    return next(run for run in runs.list_runs(engine, job_id)[0] if run["run_id"] == run_id)


def ended(engine, job_id, run_id):
    run = the_run(engine, job_id, run_id)
    return run if run["status"] in ("succeeded", "failed") else None


def test_a_failed_try_waits_as_a_queued_row_and_delays_grow(engine, scheduler):
    add(engine, job_id="flaky", handler="Flaky", kwargs={"key": "k", "failures": 2},
        tries=3, retry_delay=0.3, retry_backoff=2)
    run_id = run_now(engine, scheduler, "flaky")
    waiting = poll(lambda: (run := the_run(engine, "flaky", run_id))["status"] == "queued" and run["tries"] == 1 and run)
    assert waiting["not_before"] is not None and "try 1 failed, the next starts at" in waiting["error"]
    run = poll(lambda: ended(engine, "flaky", run_id), timeout=10)
    assert run["status"] == "succeeded" and run["result"] == 3 and run["tries"] == 3
    first, second, third = [moment for what, _, moment in test_handlers.events if what == "try"]
    assert second - first >= 0.3 and third - second >= 0.6  # 0.3 s, then 0.3 × 2


def test_the_last_failed_try_fails_the_run_and_may_pause_the_job(engine, scheduler):
    add(engine, job_id="doomed", handler="Fail", kwargs={"message": "boom"}, tries=2,
        retry_delay=0.1, pause_on_failure=True, periodically="1 hour")
    jobs.set_job_state(engine, "doomed", "running")
    run_id = run_now(engine, scheduler, "doomed")
    run = poll(lambda: ended(engine, "doomed", run_id), timeout=10)
    assert run["tries"] == 2 and "boom" in run["error"] and "the job is paused (pause_on_failure)" in run["error"]
    job = jobs.get_job(engine, "doomed")
    assert job["state"] == "paused" and job["next_run_time"] is None


def test_a_run_past_the_timeout_fails_naming_it_and_its_late_result_is_ignored(engine, scheduler):
    add(engine, job_id="slow", handler="Record", kwargs={"seconds": 1.0}, timeout=0.3, tries=2,
        retry_delay=0.1)
    run_id = run_now(engine, scheduler, "slow")
    run = poll(lambda: ended(engine, "slow", run_id), timeout=10)
    assert run["status"] == "failed" and run["tries"] == 2
    assert "timed out: TimeoutError: the run ran longer than the job's timeout of 0.3 s" in run["error"]
    poll(lambda: sum(what == "end" for what, _, _ in test_handlers.events) == 2, timeout=10)
    assert the_run(engine, "slow", run_id)["status"] == "failed"  # both late ends were dropped


def test_a_run_within_its_timeout_succeeds(engine, scheduler):
    add(engine, job_id="quick", handler="Record", kwargs={"x": 1}, timeout=5)
    run_id = run_now(engine, scheduler, "quick")
    run = poll(lambda: ended(engine, "quick", run_id), timeout=10)
    assert run["status"] == "succeeded" and run["tries"] == 1


def test_policies_show_on_the_job():
    job = jobs.parse_job({"job_id": "p", "handler": "Noop", "tries": 3, "retry_delay": "30 seconds",
                          "timeout": "10 minutes", "pause_on_failure": True})
    assert job.policy.json() == {"tries": 3, "retry_delay": 30.0, "timeout": 600.0, "pause_on_failure": True}
    shown = jobs.job_json({**job.row(datetime.now().astimezone()), "revision": 1, "last_run": None})
    assert (shown["tries"], shown["retry_delay"], shown["timeout"]) == (3, 30.0, 600.0)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"handler": "Noop", "tries": 0}, "tries"),
        ({"handler": "Noop", "retry_backoff": 0.5}, "retry_backoff"),
        ({"handler": "Noop", "retry_delay": "soon"}, "retry_delay"),
        ({"handler": "Noop", "timeout": "x"}, "timeout"),
        ({"handler": "Noop", "pause_on_failure": "yes"}, "pause_on_failure"),
        ({"tasks": [{"name": "a", "handler": "Noop"}], "tries": 2}, "tries"),
    ],
)
def test_bad_policies_name_the_field(fields, field):
    with pytest.raises(InvalidInput) as caught:
        jobs.parse_job({"job_id": "bad", **fields})
    assert caught.value.field == field
