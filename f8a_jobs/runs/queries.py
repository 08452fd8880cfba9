"""Job runs as the API shows them: a job's history, failed runs, and run-now requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, func, select

from f8a_jobs import wakeups
from f8a_jobs.errors import JobNotFound
from f8a_jobs.runs import FAILED, lifecycle
from f8a_jobs.schedules import utcnow
from f8a_jobs.storage.tables import job_runs, jobs

SHOWN = [column for column in job_runs.c if column.name != "graph"]  # a graph can be large


def list_runs(
    engine: Engine, job_id: str, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """A job's runs, newest first."""
    with engine.connect() as connection:
        if connection.execute(select(jobs.c.job_id).where(jobs.c.job_id == job_id)).first() is None:
            raise JobNotFound(job_id)
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


def list_failed(
    engine: Engine, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Failed runs, newest first, with what it takes to reproduce them."""
    failed = job_runs.c.status == FAILED
    page = (
        select(*SHOWN)
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
        return lifecycle.delete_failed(connection)


def request_run(engine: Engine, job_id: str) -> dict[str, Any]:
    """Queue one run of a job now; the leader's executor picks it up. The schedule is untouched."""
    with wakeups.changing(engine, wakeups.RUNS) as connection:
        if connection.execute(select(jobs.c.job_id).where(jobs.c.job_id == job_id)).first() is None:
            raise JobNotFound(job_id)
        row = lifecycle.queue_manual(connection, job_id, utcnow())
    return run_json(row)


def run_json(run: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "run_id": run["run_id"],
        "job_id": run["job_id"],
        "trigger": run["trigger"],
        "status": run["status"],
        "scheduled_for": _iso(run["scheduled_for"]),
        "started_at": _iso(run.get("started_at")),
        "finished_at": _iso(run.get("finished_at")),
        "result": run.get("result"),
        "error": run.get("error"),
        "missed_count": run.get("missed_count"),
        "epoch": run.get("epoch"),
        "owner": run.get("owner"),
        "tries": run.get("tries"),
        "not_before": _iso(run.get("not_before")),
        "worker": run.get("worker") or None,
    }


def failed_json(run: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        **run_json(run),
        "handler": run["handler"],
        "kwargs": run["kwargs"],
        "traceback": run["traceback"],
        "time": _iso(run["finished_at"]),
    }


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None
