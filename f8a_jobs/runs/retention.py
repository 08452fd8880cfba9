"""Retention: finished runs and delivered flows older than ``F8A_JOBS_RUN_RETENTION`` days go,
in small batches during the leader's housekeeping, but each job keeps its last
``F8A_JOBS_RUN_KEEP_LAST`` runs whatever their age.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Connection, delete, select

from f8a_jobs.runs import FINISHED
from f8a_jobs.storage.tables import flow_outbox, job_runs, run_tasks

BATCH = 500
DELIVERED = ("delivered", "sent")


def delete_old_runs(connection: Connection, days: float, keep_last: int, now: datetime) -> int:
    """Delete up to one batch of old finished runs; how many went."""
    newer = job_runs.alias("newer")
    kept_from = (  # the scheduled time of the job's keep_last-th newest run
        select(newer.c.scheduled_for)
        .where(newer.c.job_id == job_runs.c.job_id)
        .order_by(newer.c.scheduled_for.desc())
        .offset(keep_last - 1)
        .limit(1)
        .scalar_subquery()
    )
    return _delete_batch(
        job_runs.c.run_id,
        job_runs.c.scheduled_for,
        connection,
        job_runs.c.status.in_(FINISHED),
        job_runs.c.scheduled_for < now - timedelta(days=days),
        job_runs.c.scheduled_for < kept_from,
    )


def delete_old_flows(connection: Connection, days: float, now: datetime) -> int:
    """Delete up to one batch of flows delivered more than ``days`` ago."""
    return _delete_batch(
        flow_outbox.c.id,
        flow_outbox.c.id,
        connection,
        flow_outbox.c.status.in_(DELIVERED),
        flow_outbox.c.sent_at < now - timedelta(days=days),
    )


def _delete_batch(
    key: Column[Any], order: Column[Any], connection: Connection, *conditions: Any
) -> int:
    """Delete the oldest ``BATCH`` rows matching ``conditions``; how many went."""
    keys = list(
        connection.execute(select(key).where(*conditions).order_by(order).limit(BATCH)).scalars()
    )
    if keys:
        connection.execute(delete(key.table).where(key.in_(keys)))
        if key.table is job_runs:  # a workflow run's tasks go with it
            connection.execute(delete(run_tasks).where(run_tasks.c.run_id.in_(keys)))
    return len(keys)
