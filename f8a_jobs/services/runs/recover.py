"""Runs whose process is alive say so, and runs whose process is gone are settled.

Processes heartbeat the runs they run. A run whose heartbeat lapsed is failed (in-process:
it may have done part of its work), queued again as the same try (a remote run still in the
broker), or run again as a new try (a remote run whose worker died, up to ``INTERRUPTIONS``
times beyond its job's tries). A new term adopts the workflow runs under way, to resume them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, or_, select, update

from f8a_jobs.core.policy import INTERRUPTIONS, RunPolicy
from f8a_jobs.core.states import RunStatus
from f8a_jobs.services.alerts import Ended
from f8a_jobs.services.runs.model import IN_BROKER
from f8a_jobs.services.runs.queue import after_ends
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.bulk import among, update_rows
from f8a_jobs.storage.fencing import fence
from f8a_jobs.storage.tables import job_runs, jobs

ORPHANED = (
    "the process running it ({owner}) stopped sending heartbeats for more than {lease:g} s; "
    "the run may have done part of its work"
)
LOST_WORKER = (
    "the worker running it ({worker}) stopped sending heartbeats for more than {lease:g} s; "
    "the run may have done part of its work"
)
WORKFLOW_RUN = (
    job_runs.c.run_id,
    job_runs.c.job_id,
    job_runs.c.scheduled_for,
    job_runs.c.started_at,
    job_runs.c.graph,
)


def heartbeat(
    connection: Connection, owner: str, run_ids: list[str], now: datetime, waiting: bool = False
) -> None:
    """Show that this process still runs ``run_ids`` (``waiting``: those of them whose message
    still waits in the broker; a worker that took one heartbeats it from then on)."""
    query = update(job_runs).where(
        among(connection, job_runs.c.run_id, run_ids),
        job_runs.c.owner == owner,
        job_runs.c.status == RunStatus.RUNNING,
    )
    if waiting:
        query = query.where(job_runs.c.worker == IN_BROKER)
    connection.execute(query.values(heartbeat_at=now))


def beat_remote(connection: Connection, worker: str, run_ids: list[str], now: datetime) -> None:
    """A worker shows it still runs ``run_ids``."""
    connection.execute(
        update(job_runs)
        .where(
            among(connection, job_runs.c.run_id, run_ids),
            job_runs.c.worker == worker,
            job_runs.c.status == RunStatus.RUNNING,
        )
        .values(heartbeat_at=now)
    )


def fail_orphans(connection: Connection, epoch: int, lease: float, now: datetime) -> int:
    """Settle the runs whose process has stopped sending heartbeats: it is gone.

    Call it only once a term is older than ``lease``: a live process heartbeats within a lease
    of the database coming back, so a stale heartbeat then means a dead process. Returns how
    many runs it settled.
    """
    fence(connection, epoch)
    failed, again = [], []
    stale = connection.execute(_stale(lease, now)).all()
    for row in stale:
        tries = row.tries or 1
        if row.worker is None:
            error = ORPHANED.format(owner=row.owner, lease=lease)
        elif row.worker == IN_BROKER:  # never started: the same try, sent again
            again.append(_queued_again(row.run_id, tries - 1, None))
            continue
        else:
            error = LOST_WORKER.format(worker=row.worker, lease=lease)
            if tries < RunPolicy.of(row.policy).tries + INTERRUPTIONS:
                again.append(_queued_again(row.run_id, tries, error))
                continue
        failed.append(
            {"run_id": row.run_id, "status": RunStatus.FAILED, "finished_at": now, "error": error}
        )
    guards = {"status": RunStatus.RUNNING}
    ended = set(update_rows(connection, job_runs, ("run_id",), failed, guards, "run_id"))
    ended_jobs = [
        Ended(row.job_id, RunStatus.FAILED, now, row.run_id) for row in stale if row.run_id in ended
    ]
    after_ends(connection, ended_jobs, now)
    requeued = update_rows(connection, job_runs, ("run_id",), again, guards, "run_id")
    if requeued:
        wakeups.request(connection, wakeups.RUNS)
    return len(ended) + len(requeued)


def _stale(lease: float, now: datetime) -> Any:
    return (
        select(job_runs.c.run_id, job_runs.c.owner, job_runs.c.job_id, job_runs.c.worker)
        .add_columns(job_runs.c.tries, jobs.c.policy)
        .select_from(job_runs.outerjoin(jobs, jobs.c.job_id == job_runs.c.job_id))
        .where(
            job_runs.c.status == RunStatus.RUNNING,
            job_runs.c.graph.is_(None),  # a workflow run is the runner's: it resumes it
            or_(
                job_runs.c.heartbeat_at < now - timedelta(seconds=lease),
                job_runs.c.heartbeat_at.is_(None),
            ),
        )
    )


def _queued_again(run_id: str, tries: int, error: str | None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "status": RunStatus.QUEUED,
        "tries": tries,
        "worker": None,
        "not_before": None,
        "error": error,
    }


def adopt_workflows(connection: Connection, epoch: int, owner: str) -> Sequence[Any]:
    """A new term takes over every workflow run under way, to resume it."""
    fence(connection, epoch)
    return connection.execute(
        update(job_runs)
        .where(job_runs.c.status == RunStatus.RUNNING, job_runs.c.graph.is_not(None))
        .values(owner=owner, epoch=epoch)
        .returning(*WORKFLOW_RUN)
    ).all()


def workflow_rows(connection: Connection, run_ids: list[str]) -> Sequence[Any]:
    """The rows of workflow runs to resume (a retried run this term claimed)."""
    query = select(*WORKFLOW_RUN).where(among(connection, job_runs.c.run_id, run_ids))
    return connection.execute(query).all()
