"""Runs go: with their job, when the API forgets failed runs, and by retention.

Retention deletes finished runs older than ``F8A_JOBS_RUN_RETENTION`` days in small batches
during the leader's housekeeping, but each job keeps its last ``F8A_JOBS_RUN_KEEP_LAST`` runs
whatever their age. A workflow run's task rows, a run's logs and its sent alerts go with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, delete, select

from f8a_jobs.core.states import FINISHED, RunStatus
from f8a_jobs.services import alerts
from f8a_jobs.services.runs import logs
from f8a_jobs.storage.tables import job_runs, run_tasks

BATCH = 500


def delete_runs(connection: Connection, job_id: str) -> None:
    """A deleted job's runs go with it; a run still going finishes unrecorded (``finish``
    finds no row), and its flows are dropped."""
    runs = select(job_runs.c.run_id).where(job_runs.c.job_id == job_id)
    connection.execute(delete(run_tasks).where(run_tasks.c.run_id.in_(runs)))
    logs.delete_for(connection, runs)
    alerts.delete_of_job(connection, job_id)
    connection.execute(delete(job_runs).where(job_runs.c.job_id == job_id))


def delete_failed(connection: Connection, of_jobs: Select[Any] | None = None) -> int:
    """Delete failed runs: all, or those of the jobs ``of_jobs`` selects (their ids)."""
    where = [job_runs.c.status == RunStatus.FAILED]
    if of_jobs is not None:
        where.append(job_runs.c.job_id.in_(of_jobs))
    failed = select(job_runs.c.run_id).where(*where)
    connection.execute(delete(run_tasks).where(run_tasks.c.run_id.in_(failed)))
    logs.delete_for(connection, failed)
    alerts.delete_for(connection, failed)
    return connection.execute(delete(job_runs).where(*where)).rowcount


def delete_old_runs(connection: Connection, days: float, keep_last: int, now: datetime) -> int:
    """Delete up to one batch of old finished runs, oldest first; how many went."""
    newer = job_runs.alias("newer")
    kept_from = (  # the scheduled time of the job's keep_last-th newest run
        select(newer.c.scheduled_for)
        .where(newer.c.job_id == job_runs.c.job_id)
        .order_by(newer.c.scheduled_for.desc())
        .offset(keep_last - 1)
        .limit(1)
        .scalar_subquery()
    )
    oldest = (
        select(job_runs.c.run_id)
        .where(
            job_runs.c.status.in_(FINISHED),
            job_runs.c.scheduled_for < now - timedelta(days=days),
            job_runs.c.scheduled_for < kept_from,
        )
        .order_by(job_runs.c.scheduled_for)
        .limit(BATCH)
    )
    run_ids = list(connection.execute(oldest).scalars())
    if run_ids:
        connection.execute(delete(job_runs).where(job_runs.c.run_id.in_(run_ids)))
        connection.execute(delete(run_tasks).where(run_tasks.c.run_id.in_(run_ids)))
        logs.delete_for(connection, run_ids)
        alerts.delete_for(connection, run_ids)
    return len(run_ids)
