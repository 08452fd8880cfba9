"""Workflow benchmarks on our side: W1 (a root, 1,000 parts fanned out, a final task taking
their 1,000 results through ``$result``) and W2 (a chain of 200 tasks), every task transition
persisted in PostgreSQL. Timed from the run-now request to the run's recorded success."""

from __future__ import annotations

import time

from sqlalchemy import Engine, select

from bench.ours import firing_scheduler, migrated
from f8a_jobs import jobs
from f8a_jobs.runs import queries as runs
from f8a_jobs.storage.tables import job_runs

THREADS = 20


def fanout_job(width: int) -> dict:
    return {
        "job_id": f"w1-{width}",
        "state": "paused",
        "max_concurrent": THREADS,
        "tasks": [
            {"name": "root", "handler": "Noop"},
            {"name": "fan", "handler": "Echo", "depends_on": ["root"],
             "for_each": [{"value": n} for n in range(width)]},
            {"name": "final", "handler": "Count", "depends_on": ["fan"],
             "kwargs": {"values": {"$result": "fan"}}},
        ],
    }


def chain_job(length: int) -> dict:
    tasks = [{"name": "t0", "handler": "Noop"}]
    tasks += [{"name": f"t{n}", "handler": "Noop", "depends_on": [f"t{n - 1}"]} for n in range(1, length)]
    return {"job_id": f"w2-{length}", "state": "paused", "tasks": tasks}


def seconds_to_success(url: str, job: dict) -> float:
    engine = migrated(url)
    jobs.create_job(engine, jobs.parse_job(job))
    scheduler = firing_scheduler(engine, THREADS)
    scheduler.start(paused=False)
    try:
        started = time.perf_counter()
        run_id = runs.request_run(engine, job["job_id"])["run_id"]
        scheduler.wakeup()  # what the service's NOTIFY listener does
        status = _wait(engine, run_id)
        elapsed = time.perf_counter() - started
        assert status == "succeeded", status
        return elapsed
    finally:
        scheduler.stop()
        engine.dispose()


def _wait(engine: Engine, run_id: str, timeout: float = 300.0) -> str:
    deadline = time.monotonic() + timeout
    query = select(job_runs.c.status).where(job_runs.c.run_id == run_id)
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            status = connection.execute(query).scalar()
        if status in ("succeeded", "failed", "cancelled"):
            return str(status)
        time.sleep(0.002)
    raise TimeoutError(f"run {run_id} did not end within {timeout} s")
