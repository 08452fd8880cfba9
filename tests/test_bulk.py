from datetime import UTC, datetime

from sqlalchemy import select

from f8a_jobs.storage.bulk import insert_rows
from f8a_jobs.storage.tables import job_runs


def test_bulk_insert_keeps_every_value_exactly(engine):
    moment = datetime(2026, 11, 21, 12, 30, 15, 123456, tzinfo=UTC)
    awkward = "tab\there, newline\nthere, back\\slash, \\N, \"quotes\", 'single', ünïcode ✓, \r"
    rows = [
        {
            "run_id": "a",
            "job_id": awkward,
            "status": "failed",
            "scheduled_for": moment,
            "started_at": None,
            "error": "",
            "traceback": awkward,
            "kwargs": {"k": [1, None, awkward]},
            "missed_count": 3,
        },
        {
            "run_id": "b",
            "job_id": "plain",
            "status": "missed",
            "scheduled_for": moment,
            "started_at": moment,
            "error": None,
            "traceback": None,
            "kwargs": None,
            "missed_count": None,
        },
    ]
    with engine.begin() as connection:
        insert_rows(connection, job_runs, rows)
    with engine.connect() as connection:
        stored = {row.run_id: row._mapping for row in connection.execute(select(job_runs))}
    for row in rows:
        for name, value in row.items():
            assert stored[row["run_id"]][name] == value, name


def test_bulk_update_sets_values_and_nulls_only_where_all_match_columns_agree(engine):
    from f8a_jobs.services.jobs import create_job, parse_job
    from f8a_jobs.storage.bulk import update_rows
    from f8a_jobs.storage.tables import jobs

    for job_id in ("a", "b", "c"):
        create_job(
            engine, parse_job({"job_id": job_id, "handler": "Noop", "periodically": "1 hour"})
        )
    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = [
        {"job_id": "a", "revision": 1, "next_run_time": None, "last_run": moment},
        {"job_id": "b", "revision": 1, "next_run_time": moment, "last_run": moment},
        {"job_id": "c", "revision": 7, "next_run_time": None, "last_run": moment},  # stale revision
    ]
    with engine.begin() as connection:
        update_rows(connection, jobs, ("job_id", "revision"), rows)
    with engine.connect() as connection:
        stored = {row.job_id: row for row in connection.execute(select(jobs))}
    assert stored["a"].next_run_time is None and stored["a"].last_run == moment
    assert stored["b"].next_run_time == moment
    assert stored["c"].next_run_time is not None and stored["c"].last_run is None
