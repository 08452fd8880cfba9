"""Job runs as the API shows them: a job's history, failed runs, and run-now requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from f8a_jobs.core.clock import iso, utcnow
from f8a_jobs.core.errors import JobNotFound
from f8a_jobs.core.masking import masked_kwargs
from f8a_jobs.core.states import RunStatus
from f8a_jobs.services.runs.model import IN_BROKER
from f8a_jobs.services.runs.queue import queue_manual
from f8a_jobs.services.runs.remove import delete_failed
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.tables import job_runs, jobs

SHOWN = [column for column in job_runs.c if column.name != "graph"]  # a graph can be large


def list_runs(
    engine: Engine, job_id: str, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """A job's runs, newest first."""
    with engine.connect() as connection:
        _check_job(connection, job_id)
        page = (
            select(*SHOWN)
            .where(job_runs.c.job_id == job_id)
            .order_by(job_runs.c.scheduled_for.desc(), job_runs.c.started_at.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = connection.execute(page).all()
        total = connection.execute(
            select(func.count()).select_from(job_runs).where(job_runs.c.job_id == job_id)
        ).scalar_one()
    return [run_json(row._mapping) for row in rows], total


def _check_job(connection: Connection, job_id: str) -> None:
    if connection.execute(select(jobs.c.job_id).where(jobs.c.job_id == job_id)).first() is None:
        raise JobNotFound(job_id)


def list_failed(
    engine: Engine, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Failed runs, newest first, with what it takes to reproduce them (but secrets: their
    job's policy says which kwargs are)."""
    failed = job_runs.c.status == RunStatus.FAILED
    page = (
        select(*SHOWN, jobs.c.policy)
        .select_from(job_runs.outerjoin(jobs, jobs.c.job_id == job_runs.c.job_id))
        .where(failed)
        .order_by(job_runs.c.scheduled_for.desc())
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as connection:
        rows = connection.execute(page).all()
        total = connection.execute(
            select(func.count()).select_from(job_runs).where(failed)
        ).scalar_one()
    return [failed_json(row._mapping) for row in rows], total


def clean_failed(engine: Engine) -> int:
    with engine.begin() as connection:
        return delete_failed(connection)


def request_run(engine: Engine, job_id: str) -> dict[str, Any]:
    """Queue one run of a job now; the leader's executor picks it up. The schedule is untouched."""
    with wakeups.changing(engine, wakeups.RUNS) as connection:
        _check_job(connection, job_id)
        row = queue_manual(connection, job_id, utcnow())
    return run_json(row)


def schedule_of_run(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """The schedule of the job a run belongs to (None once the job is deleted)."""
    query = select(jobs.c.schedule).join(job_runs, job_runs.c.job_id == jobs.c.job_id)
    with engine.connect() as connection:
        spec = connection.execute(query.where(job_runs.c.run_id == run_id)).scalar()
    return dict(spec) if spec is not None else None


def run_json(run: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "run_id": run["run_id"],
        "job_id": run["job_id"],
        "trigger": run["trigger"],
        "status": run["status"],
        "scheduled_for": iso(run["scheduled_for"]),
        "started_at": iso(run.get("started_at")),
        "finished_at": iso(run.get("finished_at")),
        "result": run.get("result"),
        "error": run.get("error"),
        "missed_count": run.get("missed_count"),
        "epoch": run.get("epoch"),
        "owner": run.get("owner"),
        "tries": run.get("tries"),
        "not_before": iso(run.get("not_before")),
        "worker": run.get("worker") or None,
        # sent to a worker's queue, no worker took it yet: "running" in the row, not under way
        "waiting_for_worker": run["status"] == RunStatus.RUNNING and run.get("worker") == IN_BROKER,
    }


def failed_json(run: Mapping[Any, Any]) -> dict[str, Any]:
    """A failed run with its handler and kwargs (each secret one's value ``***``, by the
    names its job's ``policy`` lists and by the words any secret's name holds)."""
    listed = (run.get("policy") or {}).get("secret_kwargs", ())
    kwargs = run["kwargs"]
    return {
        **run_json(run),
        "handler": run["handler"],
        "kwargs": None if kwargs is None else masked_kwargs(kwargs, listed),
        "traceback": run["traceback"],
        "time": iso(run["finished_at"]),
    }
