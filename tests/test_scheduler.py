import dataclasses
import itertools
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.settings import get_settings
from f8a_jobs.execution.firing import FireBatch
from f8a_jobs.execution.jobstore import JobRowStore
from f8a_jobs.execution.scheduler import FiringScheduler
from f8a_jobs.services import jobs, runs
from f8a_jobs.services.flows import outbox
from f8a_jobs.services.runs.backfill import backfill
from f8a_jobs.storage import fencing
from f8a_jobs.storage.tables import job_runs
from f8a_jobs.storage.tables import jobs as jobs_table
from tests import handlers as test_handlers
from tests.conftest import poll

FLOW = {"flow_name": "bayesianFlow", "flow_arguments": [{"name": "a"}, {"name": "b"}]}


def new_term(engine):
    with engine.begin() as connection:
        return fencing.begin_term(connection, "test", utcnow())


@pytest.fixture
def scheduler(engine):
    firing = FiringScheduler(engine, get_settings(), new_term(engine), "test-owner", lambda: None)
    yield firing
    test_handlers.release.set()
    firing.stop()
    test_handlers.release.clear()


def add(engine, handler="Noop", kwargs=None, **fields):
    job = jobs.parse_job({"handler": handler, "kwargs": kwargs or {}, **fields})
    return jobs.create_job(engine, job)["job_id"]


def run_statuses(engine, job_id):
    return [(run["status"], run["missed_count"]) for run in runs.list_runs(engine, job_id)[0]]


def set_next_run(engine, job_id, when):
    """Stand-in for downtime: the job's next run lies in the past."""
    with engine.begin() as connection:
        connection.execute(
            update(jobs_table).where(jobs_table.c.job_id == job_id).values(next_run_time=when)
        )


def test_one_shot_job_fires_once_records_its_run_and_its_flows(engine, scheduler):
    job_id = add(engine, "FlowScheduling", FLOW)
    scheduler.start(paused=False)
    assert poll(lambda: run_statuses(engine, job_id) == [("succeeded", None)])
    job = jobs.get_job(engine, job_id)
    assert job["next_run_time"] is None and job["last_run"] is not None
    flows = poll(
        lambda: [
            f
            for f in outbox.list_flows(engine, job_id, None, 10, 0)[0]
            if f["status"] == "delivered"
        ]
    )
    assert sorted(flow["arguments"]["name"] for flow in flows) == ["a", "b"]
    assert all(flow["arguments"]["job_id"] == job_id for flow in flows)


def test_a_failed_run_is_recorded_and_the_schedule_goes_on(engine, scheduler):
    job_id = add(engine, "Fail", {"message": "boom"}, periodically="1 second")
    scheduler.start(paused=False)
    failed = poll(lambda: len(runs.list_failed(engine)[0]) >= 2 and runs.list_failed(engine)[0])
    assert failed[0]["job_id"] == job_id
    assert failed[0]["error"] == "RuntimeError: boom"
    assert "raise RuntimeError(message)" in failed[0]["traceback"]
    assert failed[0]["kwargs"] == {"message": "boom"} and failed[0]["handler"] == "Fail"
    assert jobs.get_job(engine, job_id)["next_run_time"] is not None


def test_run_beyond_misfire_grace_is_recorded_missed_not_run(engine, scheduler):
    job_id = add(engine, misfire_grace_time="1 minute")
    set_next_run(engine, job_id, utcnow() - timedelta(hours=2))
    scheduler.start(paused=False)
    assert poll(lambda: run_statuses(engine, job_id) == [("missed", 1)])
    assert "misfire grace time" in runs.list_runs(engine, job_id)[0][0]["error"]


def test_missed_periodic_runs_coalesce_into_one_run(engine, scheduler):
    job_id = add(engine, periodically="1 minute", misfire_grace_time="1 hour")
    set_next_run(engine, job_id, utcnow() - timedelta(minutes=30, seconds=5))
    scheduler.start(paused=False)
    statuses = poll(lambda: ("succeeded", None) in run_statuses(engine, job_id) and run_statuses(engine, job_id))
    assert sorted(statuses, key=str) == [("missed", 30), ("succeeded", None)]
    missed = [run for run in runs.list_runs(engine, job_id)[0] if run["status"] == "missed"][0]
    assert "coalesced" in missed["error"]
    assert jobs.get_job(engine, job_id)["next_run_time"] > utcnow().isoformat()


def test_runs_beyond_grace_and_within_grace_are_told_apart(engine, scheduler):
    job_id = add(engine, periodically="10 minutes", misfire_grace_time="35 minutes")
    set_next_run(engine, job_id, utcnow() - timedelta(minutes=60, seconds=5))
    scheduler.start(paused=False)
    statuses = poll(lambda: ("succeeded", None) in run_statuses(engine, job_id) and run_statuses(engine, job_id))
    assert sorted(statuses, key=str) == [("missed", 3), ("missed", 3), ("succeeded", None)]


def test_a_run_due_while_the_previous_one_runs_is_recorded_missed(engine, scheduler):
    job_id = add(engine, "Block", {"timeout": 30}, periodically="1 second")
    scheduler.start(paused=False)
    missed = poll(lambda: [r for r in runs.list_runs(engine, job_id)[0] if r["status"] == "missed"])
    assert missed[0]["error"] == "the previous run was still running"
    assert [r["status"] for r in runs.list_runs(engine, job_id)[0]].count("running") == 1
    test_handlers.release.set()
    poll(lambda: "succeeded" in [r["status"] for r in runs.list_runs(engine, job_id)[0]])


def test_run_now_runs_once_without_touching_the_schedule(engine, scheduler):
    job_id = add(engine, periodically="1 day", when=(utcnow() + timedelta(days=1)).isoformat())
    before = jobs.get_job(engine, job_id)["next_run_time"]
    queued = runs.request_run(engine, job_id)
    assert queued["status"] == "queued" and queued["trigger"] == "manual"
    scheduler.start(paused=False)
    assert poll(lambda: run_statuses(engine, job_id) == [("succeeded", None)])
    assert runs.list_runs(engine, job_id)[0][0]["run_id"] == queued["run_id"]
    assert jobs.get_job(engine, job_id)["next_run_time"] == before
    assert scheduler.executor.claim() == 0


def test_paused_scheduler_fires_nothing_until_resumed(engine, scheduler):
    job_id = add(engine)
    scheduler.start(paused=True)
    scheduler.wakeup()
    assert runs.list_runs(engine, job_id)[1] == 0
    scheduler.set_paused(False)
    assert poll(lambda: run_statuses(engine, job_id) == [("succeeded", None)])


def test_store_never_overwrites_an_edit_made_during_a_pass(engine):
    job_id = add(engine, periodically="1 hour")
    set_next_run(engine, job_id, utcnow() - timedelta(seconds=1))
    store = JobRowStore(engine, FireBatch(engine, new_term(engine), None, print))
    (job,) = store.get_due_jobs(utcnow())
    jobs.set_job_state(engine, job_id, "paused")  # the API, between fire and flush
    job.next_run_time = utcnow() + timedelta(hours=1)
    store.update_job(job)
    store.flush()
    with engine.connect() as connection:
        row = connection.execute(select(jobs_table).where(jobs_table.c.job_id == job_id)).one()
    assert row.state == "paused" and row.next_run_time is None


def test_stopping_never_advances_a_job_it_did_not_run(engine, scheduler):
    job_id = add(engine, periodically="1 hour")
    due = jobs.get_job(engine, job_id)["next_run_time"]
    scheduler.start(paused=True)  # the job is due, but nothing fires
    scheduler.stop()
    scheduler.stop = lambda: None  # already stopped: the fixture must not stop it again
    assert runs.list_runs(engine, job_id)[1] == 0
    assert jobs.get_job(engine, job_id)["next_run_time"] == due  # still due for the next leader


def test_a_pass_larger_than_a_chunk_runs_every_job_with_its_own_handler(engine, scheduler):
    with engine.begin() as connection:
        connection.execute(jobs_table.insert(), [
            {**jobs.parse_job({"job_id": f"many-{n:03}", "handler": "Context", "kwargs": {"label": "a"}}).row(utcnow()),
             "revision": 1, "created_at": utcnow()}
            for n in range(600)  # more than FireBatch.CHUNK, so the pass is written in parts
        ])
    scheduler.start(paused=False)

    def statuses():
        with engine.connect() as connection:
            return connection.execute(select(job_runs.c.status)).scalars().all()

    poll(lambda: statuses().count("succeeded") == 600, timeout=60)
    assert set(statuses()) == {"succeeded"}


def test_a_calendar_job_fires_on_its_slot_and_moves_to_the_next(engine, scheduler):
    calendar = {"every_minute": 1, "timezone": "America/New_York"}
    job_id = add(engine, calendar=calendar)
    due = utcnow().replace(second=0, microsecond=0)
    set_next_run(engine, job_id, due)  # this minute's slot is due
    scheduler.start(paused=False)
    assert poll(lambda: run_statuses(engine, job_id) == [("succeeded", None)])
    following = poll(lambda: jobs.get_job(engine, job_id)["next_run_time"])
    assert following.endswith(":00+00:00")  # a minute's slot, after the one that ran
    assert due < datetime.fromisoformat(following) <= due + timedelta(minutes=2)


def test_overlap_buffer_one_keeps_one_run_waiting_and_starts_it_when_the_current_ends(engine, scheduler):
    job_id = add(engine, "Block", {"timeout": 30}, periodically="1 second", overlap="buffer_one")
    scheduler.start(paused=False)
    missed = poll(lambda: [r for r in runs.list_runs(engine, job_id)[0] if r["status"] == "missed"], timeout=10)
    assert missed[0]["error"] == "a run was waiting already (overlap: buffer_one)"
    statuses = [r["status"] for r in runs.list_runs(engine, job_id)[0]]
    assert statuses.count("running") == 1 and statuses.count("queued") == 1  # one waits, no more
    scheduler.set_paused(True)
    test_handlers.release.set()
    poll(lambda: [r["status"] for r in runs.list_runs(engine, job_id)[0]].count("succeeded") == 2)


@pytest.fixture
def slow_poll(engine):
    """A scheduler polling every 5 s: what starts sooner was woken, not found by a poll."""
    settings = dataclasses.replace(get_settings(), leader_poll_interval=5.0)
    firing = FiringScheduler(engine, settings, new_term(engine), "test-owner", lambda: None)
    yield firing
    test_handlers.release.set()
    firing.stop()
    test_handlers.release.clear()


def succeeded(engine, job_id):
    with engine.connect() as connection:
        query = select(func.count()).where(job_runs.c.job_id == job_id, job_runs.c.status == "succeeded")
        return connection.execute(query).scalar_one()


def test_a_backfill_slot_starts_when_the_previous_one_ends_not_at_the_next_poll(engine, slow_poll):
    job_id = add(engine, cron="* * * * *", state="paused")
    slow_poll.start(paused=False)
    body = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T03:19:00Z"}
    assert backfill(engine, job_id, body)["queued"] == 200
    poll(lambda: succeeded(engine, job_id) == 200, timeout=60)  # one slot a poll: 200 × 5 s


def test_a_buffered_run_starts_when_the_run_it_waited_for_ends(engine, slow_poll):
    job_id = add(engine, "Block", {"timeout": 30}, periodically="1 second", overlap="buffer_one")
    slow_poll.start(paused=False)
    poll(lambda: [r["status"] for r in runs.list_runs(engine, job_id)[0]].count("queued") == 1, timeout=10)
    slow_poll.set_paused(True)
    test_handlers.release.set()
    done = poll(lambda: (ended := [r for r in runs.list_runs(engine, job_id)[0] if r["status"] == "succeeded"])
                and len(ended) == 2 and ended)
    buffered, first = done  # newest first
    waited = datetime.fromisoformat(buffered["started_at"]) - datetime.fromisoformat(first["finished_at"])
    assert waited < timedelta(seconds=0.5)


def test_overlap_allow_runs_in_parallel_up_to_max_parallel(engine, scheduler):
    job_id = add(engine, "Block", {"timeout": 30}, periodically="1 second", overlap="allow", max_parallel=2)
    scheduler.start(paused=False)
    missed = poll(lambda: [r for r in runs.list_runs(engine, job_id)[0] if r["status"] == "missed"], timeout=10)
    assert missed[0]["error"] == "2 runs were going already (overlap: allow, max_parallel)"
    assert [r["status"] for r in runs.list_runs(engine, job_id)[0]].count("running") == 2
    scheduler.set_paused(True)
    test_handlers.release.set()
    poll(lambda: [r["status"] for r in runs.list_runs(engine, job_id)[0]].count("succeeded") == 2)


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"overlap": "queue"}, "overlap"), ({"max_parallel": 3}, "max_parallel"),
     ({"overlap": "allow", "max_parallel": 0}, "max_parallel"), ({"misfire_policy": "later"}, "misfire_policy")],
)
def test_bad_overlaps_name_the_field(fields, field):
    from f8a_jobs.core.errors import InvalidInput

    with pytest.raises(InvalidInput) as caught:
        jobs.parse_job({"job_id": "o", "handler": "Noop", **fields})
    assert caught.value.field == field


def test_misfire_policy_run_all_runs_every_missed_slot_within_the_grace_time(engine, scheduler):
    job_id = add(engine, periodically="10 minutes", misfire_grace_time="35 minutes", misfire_policy="run_all")
    set_next_run(engine, job_id, utcnow() - timedelta(minutes=60, seconds=5))
    scheduler.start(paused=False)
    statuses = poll(lambda: run_statuses(engine, job_id).count(("succeeded", None)) == 4 and run_statuses(engine, job_id))
    assert sorted(statuses, key=str) == [("missed", 3)] + [("succeeded", None)] * 4  # 3 beyond grace


def test_misfire_policy_skip_runs_none_of_the_missed_slots(engine, scheduler):
    job_id = add(engine, periodically="10 minutes", misfire_grace_time="35 minutes", misfire_policy="skip")
    set_next_run(engine, job_id, utcnow() - timedelta(minutes=60, seconds=5))
    scheduler.start(paused=False)
    statuses = poll(lambda: sum(count for _, count in run_statuses(engine, job_id)) == 7 and run_statuses(engine, job_id))
    assert sorted(statuses, key=str) == [("missed", 1), ("missed", 3), ("missed", 3)]
    errors = {run["error"] for run in runs.list_runs(engine, job_id)[0]}
    assert any("skipped (misfire_policy: skip)" in error for error in errors)


def test_patches_racing_the_scheduler_lose_no_edit_and_no_slot(engine, scheduler):
    job_id = add(engine, periodically="1 second", misfire_grace_time="1 hour")
    scheduler.start(paused=False)

    def slots():
        return sorted(r["scheduled_for"] for r in runs.list_runs(engine, job_id)[0] if r["status"] == "succeeded")

    for n in range(8):  # each edit lands while the job keeps firing every second
        seen = len(slots())
        poll(lambda seen=seen: len(slots()) > seen)
        jobs.patch_job(engine, job_id, {"kwargs": {}, "misfire_grace_time": 3600 + n})
    seen = len(slots())
    poll(lambda: len(slots()) > seen + 1)
    job = jobs.get_job(engine, job_id)
    assert job["misfire_grace_time"] == 3607 and job["revision"] == 9  # no edit lost
    assert not [r for r in runs.list_runs(engine, job_id)[0] if r["status"] == "missed"]
    moments = [datetime.fromisoformat(slot) for slot in slots()]
    assert all(later - earlier == timedelta(seconds=1) for earlier, later in itertools.pairwise(moments))
