"""What the API asks of a run: cancel it, or queue a finished workflow run again (a retry).

A queued run (or a remote one no worker took yet) is cancelled at once; a running workflow is
asked to stop through a flag its runner reads (``cancel_requested``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from f8a_jobs.core.states import RunStatus
from f8a_jobs.services.runs.model import IN_BROKER
from f8a_jobs.storage.bulk import among
from f8a_jobs.storage.tables import job_runs


def request_cancel(connection: Connection, run_id: str, now: datetime) -> str | None:
    """Cancel a run: a queued one at once, and a remote one no worker took yet (its message
    is revoked); a running workflow by asking its runner. Returns the run's status before, or
    None when there is no such run."""
    row = connection.execute(
        select(
            job_runs.c.status, job_runs.c.worker, job_runs.c.graph.is_not(None).label("workflow")
        )
        .where(job_runs.c.run_id == run_id)
        .with_for_update()
    ).first()
    if row is None:
        return None
    # A plain run whose message no worker took; a workflow run is the leader's runner's to
    # stop, whatever its row says of a broker (rows claimed by older versions said "").
    waiting = row.status == RunStatus.RUNNING and row.worker == IN_BROKER and not row.workflow
    if row.status == RunStatus.QUEUED or waiting:
        connection.execute(
            update(job_runs)
            .where(job_runs.c.run_id == run_id)
            .values(status=RunStatus.CANCELLED, finished_at=now, error="the run was cancelled")
        )
    elif row.status == RunStatus.RUNNING:
        connection.execute(
            update(job_runs).where(job_runs.c.run_id == run_id).values(cancel_requested=True)
        )
    return str(row.status)


def cancel_requested(connection: Connection, run_ids: list[str]) -> list[str]:
    """Of these workflow runs, those the API asked to cancel."""
    if not run_ids:
        return []
    query = select(job_runs.c.run_id).where(
        among(connection, job_runs.c.run_id, run_ids), job_runs.c.cancel_requested.is_(True)
    )
    return list(connection.execute(query).scalars())


def requeue(
    connection: Connection,
    run_id: str,
    attempts: list[dict[str, Any]],
    started_by: str,
    graph: dict[str, Any] | None = None,
) -> bool:
    """Queue a finished workflow run again (a retry), ``started_by`` the retrying user.
    ``attempts``: its history, the attempt that just ended last; ``graph``: the job's current
    definition, expanded (else the stored graph stays). The results of the tasks that are not
    run again stay."""
    values: dict[str, Any] = {
        "started_by": started_by,
        "status": RunStatus.QUEUED,
        "finished_at": None,
        "error": None,
        "cancel_requested": None,
        "owner": None,
        "attempts": attempts,
    }
    if graph is not None:
        values["graph"] = graph
    return bool(
        connection.execute(
            update(job_runs)
            .where(
                job_runs.c.run_id == run_id,
                job_runs.c.status.in_((RunStatus.FAILED, RunStatus.CANCELLED)),
                job_runs.c.graph.is_not(None),
            )
            .values(**values)
        ).rowcount
    )
