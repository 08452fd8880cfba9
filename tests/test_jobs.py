from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.errors import DuplicateJob, InvalidInput, JobNotFound
from f8a_jobs.services import jobs, runs, service_state
from f8a_jobs.storage.tables import job_runs

FLOW = {"flow_name": "bayesianFlow", "flow_arguments": [{"name": "serve-static"}]}


def create(engine, **fields):
    return jobs.create_job(
        engine, jobs.parse_job({"handler": "FlowScheduling", "kwargs": FLOW, **fields})
    )


def test_created_job_is_stored_as_json_and_due_at_when(engine):
    when = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    job = create(engine, job_id="weekly", when=when.isoformat(), periodically="1 week")
    assert job == jobs.get_job(engine, "weekly")
    assert job["kwargs"] == FLOW
    assert job["periodically"] == "1 week"
    assert job["next_run_time"] == when.isoformat()
    assert job["misfire_grace_time"] == 3600
    assert job["state"] == "running" and job["last_run"] is None


def test_job_id_is_generated_when_omitted(engine):
    first, second = create(engine), create(engine)
    assert first["job_id"] != second["job_id"]


def test_duplicate_job_id_is_a_conflict_and_keeps_the_first(engine):
    create(engine, job_id="once")
    with pytest.raises(DuplicateJob):
        create(engine, job_id="once", periodically="1 hour")
    assert jobs.get_job(engine, "once")["periodically"] is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"handler": "Nope"}, "handler"),
        ({"state": "pending"}, "state"),
        ({"colour": "red"}, "colour"),
        ({"job_id": "a\x00b"}, "job_id"),
        ({"job_id": "x" * 256}, "job_id"),
        ({"misfire_grace_time": "soon"}, "misfire_grace_time"),
        ({"kwargs": {"flow_name": "f"}}, "kwargs"),
    ],
)
def test_invalid_jobs_are_refused_naming_the_field(engine, fields, field):
    with pytest.raises(InvalidInput) as caught:
        create(engine, **fields)
    assert caught.value.field == field
    assert jobs.list_jobs(engine)[1] == 0


def test_pause_clears_next_run_and_resume_restores_it(engine):
    create(engine, job_id="p", periodically="1 hour")
    paused = jobs.set_job_state(engine, "p", "paused")
    assert paused["state"] == "paused" and paused["next_run_time"] is None
    resumed = jobs.set_job_state(engine, "p", "running")
    assert resumed["state"] == "running" and resumed["next_run_time"] is not None
    with pytest.raises(JobNotFound):
        jobs.set_job_state(engine, "missing", "paused")


def test_listing_pages_in_sql_and_filters(engine):
    for number in range(7):
        create(engine, job_id=f"job-{number}", state="paused" if number % 2 else "running")
    jobs.create_job(engine, jobs.parse_job({"handler": "Noop", "job_id": "noop"}))
    page, total = jobs.list_jobs(engine, limit=3, offset=2)
    assert [job["job_id"] for job in page] == ["job-2", "job-3", "job-4"] and total == 8
    assert jobs.list_jobs(engine, state="paused")[1] == 3
    assert [job["job_id"] for job in jobs.list_jobs(engine, handler="Noop")[0]] == ["noop"]


def test_delete_removes_job_and_history(engine):
    create(engine, job_id="gone")
    runs.request_run(engine, "gone")
    jobs.delete_job(engine, "gone")
    with pytest.raises(JobNotFound):
        jobs.get_job(engine, "gone")
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(job_runs)).scalar() == 0
    with pytest.raises(JobNotFound):
        jobs.delete_job(engine, "gone")


def test_failed_runs_are_listed_and_cleaned(engine):
    create(engine, job_id="f")
    now = utcnow()
    row = {"job_id": "f", "trigger": "schedule", "handler": "FlowScheduling", "kwargs": FLOW}
    with engine.begin() as connection:
        connection.execute(
            insert(job_runs),
            [
                {
                    **row,
                    "run_id": "a",
                    "scheduled_for": now - timedelta(minutes=1),
                    "status": "failed",
                    "error": "RuntimeError: x",
                    "traceback": "tb",
                    "finished_at": now,
                },
                {
                    **row,
                    "run_id": "b",
                    "scheduled_for": now,
                    "status": "succeeded",
                    "error": None,
                    "traceback": None,
                    "finished_at": now,
                },
            ],
        )
    failed, total = runs.list_failed(engine)
    assert total == 1
    assert (
        failed[0]["error"] == "RuntimeError: x"
        and failed[0]["kwargs"] == FLOW
        and failed[0]["traceback"] == "tb"
    )
    assert runs.clean_failed(engine) == 1
    assert runs.list_failed(engine)[1] == 0
    assert runs.list_runs(engine, "f")[1] == 1


def test_service_state_is_stored(engine):
    assert service_state.get_state(engine) == "running"
    service_state.set_state(engine, "paused")
    assert service_state.get_state(engine) == "paused"
    with pytest.raises(InvalidInput):
        service_state.set_state(engine, "asleep")
