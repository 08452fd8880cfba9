from datetime import timedelta

from sqlalchemy import text

from f8a_jobs import runs
from f8a_jobs.jobs import create_job, parse_job
from f8a_jobs.recorder import RunRecorder
from f8a_jobs.schedules import utcnow


def stored(engine, job_id="j"):
    return {run["run_id"]: run for run in runs.list_runs(engine, job_id)[0]}


def test_a_short_run_is_written_once_with_its_final_status(engine):
    create_job(engine, parse_job({"job_id": "j", "handler": "Noop", "state": "paused"}))
    recorder = RunRecorder(engine)
    run_id = recorder.started("j", utcnow())
    recorder.succeeded(run_id)
    recorder.flush(held_back=timedelta(seconds=10))
    assert stored(engine)[run_id]["status"] == "succeeded"


def test_a_young_running_run_is_held_back_then_shown_running(engine):
    create_job(engine, parse_job({"job_id": "j", "handler": "Noop", "state": "paused"}))
    recorder = RunRecorder(engine)
    run_id = recorder.started("j", utcnow())
    recorder.flush(held_back=timedelta(seconds=10))
    assert stored(engine) == {}
    recorder.flush()
    assert stored(engine)[run_id]["status"] == "running"
    recorder.failed(run_id, ValueError("bad"), "Noop", {"x": 1})
    recorder.flush()
    assert stored(engine)[run_id]["status"] == "failed"
    assert runs.list_failed(engine)[0][0]["kwargs"] == {"x": 1}


def test_nothing_is_lost_while_the_database_refuses_writes(engine):
    create_job(engine, parse_job({"job_id": "j", "handler": "Noop", "state": "paused"}))
    recorder = RunRecorder(engine)
    first = recorder.started("j", utcnow())
    recorder.missed("j", [utcnow(), utcnow()], "coalesced")
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE job_runs RENAME TO job_runs_away"))
    try:
        try:
            recorder.flush()
        except Exception:
            pass
        else:
            raise AssertionError("the write should have failed")
        recorder.succeeded(first)  # finishes while its record waits to be written
    finally:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE job_runs_away RENAME TO job_runs"))
    recorder.flush()
    records = stored(engine)
    assert records[first]["status"] == "succeeded"
    assert sorted(run["status"] for run in records.values()) == ["missed", "succeeded"]
    assert [run["missed_count"] for run in records.values() if run["status"] == "missed"] == [2]
