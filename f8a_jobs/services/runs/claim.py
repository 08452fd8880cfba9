"""Runs become ``running``: an executor claims queued runs, and a worker takes a remote run.

A claim is one transaction under the leader's fence: rows others are claiming are skipped
(``FOR UPDATE SKIP LOCKED``), and each claimed row is stamped with the term's epoch and the
claiming process, which fence its finish.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    bindparam,
    case,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.orm import aliased

from f8a_jobs.core.policy import BUFFER_ONE, SKIP
from f8a_jobs.core.states import JobState, RunStatus, Trigger
from f8a_jobs.services import alerts
from f8a_jobs.services.alerts import Ended
from f8a_jobs.services.runs.model import IN_BROKER, ClaimedRun
from f8a_jobs.storage.bulk import among, update_rows
from f8a_jobs.storage.fencing import fence
from f8a_jobs.storage.tables import job_runs, jobs

# Read once, for the hot loops: an enum member is a class-attribute lookup per use.
SCHEDULE, PAUSED = Trigger.SCHEDULE, JobState.PAUSED
CLAIMED = (
    job_runs.c.run_id,
    job_runs.c.job_id,
    job_runs.c.trigger,
    job_runs.c.scheduled_for,
    jobs.c.handler,
    jobs.c.kwargs,
    jobs.c.workflow,
    jobs.c.state,
    jobs.c.misfire_grace_time,
    jobs.c.policy,
    job_runs.c.tries,
    job_runs.c.graph.is_not(None).label("resumed"),
)


def claim(
    connection: Connection,
    epoch: int,
    owner: str,
    limit: int,
    now: datetime,
    worker: str | None = None,
) -> list[ClaimedRun]:
    """Claim up to ``limit`` queued runs, the highest priority first, then the oldest slot,
    skipping rows others are claiming.
    ``worker``: ``IN_BROKER`` when the executor sends plain runs to remote workers.

    A scheduled run whose job was paused, or that waited beyond its misfire grace time, is
    recorded missed instead; a run whose job was deleted goes with it.
    """
    fence(connection, epoch)
    rows = connection.execute(_claimable(connection, limit, now)).all()
    gone = [row.run_id for row in rows if row.handler is None and not row.resumed]
    if gone:
        connection.execute(delete(job_runs).where(job_runs.c.run_id.in_(gone)))
    missed = [
        {"run_id": row.run_id, "status": RunStatus.MISSED, "finished_at": now, "error": reason}
        for row in rows
        if row.run_id not in gone and (reason := _not_startable(row, now))
    ]
    recorded = update_rows(
        connection, job_runs, ("run_id",), missed, {"status": RunStatus.QUEUED}, "run_id"
    )
    jobs_of = {row.run_id: row.job_id for row in rows}
    ends = [Ended(jobs_of[run_id], RunStatus.MISSED, now, run_id) for run_id in recorded]
    alerts.raise_ended(connection, ends, now)
    skipped = {row["run_id"] for row in missed} | set(gone)
    starting = [row for row in rows if row.run_id not in skipped]
    if not starting:
        return []
    started = _start(connection, starting, epoch, owner, now, worker)
    return [
        ClaimedRun(
            row.run_id,
            row.job_id,
            row.scheduled_for,
            row.handler or "",
            row.kwargs or {},
            epoch,
            owner,
            row.workflow,
            bool(row.resumed),
            row.policy,
            (row.tries or 0) + 1,
            row.trigger,
        )
        for row in starting
        if row.run_id in started
    ]


def _claimable(connection: Connection, limit: int, now: datetime) -> Any:
    query = (
        select(*CLAIMED)
        .select_from(job_runs.outerjoin(jobs, jobs.c.job_id == job_runs.c.job_id))
        .where(job_runs.c.status == RunStatus.QUEUED)
        .where(or_(job_runs.c.not_before.is_(None), job_runs.c.not_before <= now))
        .where(or_(job_runs.c.trigger != Trigger.BACKFILL, _next_backfill()))
        .where(or_(jobs.c.policy.is_(None), _not_buffered()))
        .order_by(job_runs.c.priority.desc(), job_runs.c.scheduled_for)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(of=job_runs, skip_locked=True)
    return query


def _start(
    connection: Connection,
    rows: list[Any],
    epoch: int,
    owner: str,
    now: datetime,
    worker: str | None,
) -> set[str]:
    run_ids = [row.run_id for row in rows]
    statement = (
        update(job_runs)
        .where(among(connection, job_runs.c.run_id, run_ids), job_runs.c.status == RunStatus.QUEUED)
        .values(
            status=RunStatus.RUNNING,
            epoch=epoch,
            owner=owner,
            started_at=now,
            heartbeat_at=now,
            tries=func.coalesce(job_runs.c.tries, 0) + 1,
            not_before=None,
            worker=_worker_shown(rows, worker),
        )
        .returning(job_runs.c.run_id)
    )
    return set(connection.execute(statement).scalars())


def _worker_shown(rows: list[Any], worker: str | None) -> Any:
    """``worker`` for plain runs only: the leader's runner runs a workflow run (its tries go to
    workers), so a workflow run's row never shows it waits in the broker."""
    here = [row.run_id for row in rows if row.workflow is not None or row.resumed]
    if worker is None or not here:
        return worker
    return case((job_runs.c.run_id.in_(here), null()), else_=literal(worker))


def _next_backfill() -> ColumnElement[bool]:
    """A backfill run may start when it is its job's oldest queued one and none is running:
    backfills run one after another, oldest first, and never hold up other runs' claims."""
    other = aliased(job_runs)
    same_job = (other.c.job_id == job_runs.c.job_id) & (other.c.trigger == Trigger.BACKFILL)
    running = select(other.c.run_id).where(same_job, other.c.status == RunStatus.RUNNING)
    older = select(other.c.run_id).where(
        same_job,
        other.c.status == RunStatus.QUEUED,
        other.c.scheduled_for < job_runs.c.scheduled_for,
    )
    return ~running.exists() & ~older.exists()


def _not_buffered() -> ColumnElement[bool]:
    """A run of an ``overlap: buffer_one`` job waits while another run of its job runs."""
    other = aliased(job_runs)
    running = select(other.c.run_id).where(
        other.c.job_id == job_runs.c.job_id, other.c.status == RunStatus.RUNNING
    )
    overlap = func.coalesce(jobs.c.policy["overlap"].as_string(), SKIP)
    return or_(overlap != BUFFER_ONE, ~running.exists())


def _not_startable(row: Any, now: datetime) -> str | None:
    if row.trigger != SCHEDULE or row.resumed:
        return None
    if row.state == PAUSED:
        return "the job was paused before the run started"
    if row.tries or (row.policy or {}).get("overlap") == BUFFER_ONE:
        return None  # a retry is late on purpose, a buffered run waited for the previous one
    late = now - row.scheduled_for
    if late > timedelta(seconds=row.misfire_grace_time):
        return (
            f"waited {late} to start, beyond the misfire grace time of {row.misfire_grace_time} s"
        )
    return None


# Built once: a worker takes every run with it (building costs more CPU than running it).
_TAKE = (
    update(job_runs)
    .where(
        job_runs.c.run_id == bindparam("key_run_id"),
        job_runs.c.status == RunStatus.RUNNING,
        job_runs.c.tries == bindparam("try_number"),
        job_runs.c.worker == IN_BROKER,
        job_runs.c.cancel_requested.is_not(True),
    )
    .values(worker=bindparam("taker"), started_at=bindparam("now"), heartbeat_at=bindparam("now"))
)


def start_remote(
    connection: Connection, run_id: str, tries: int, worker: str, now: datetime
) -> bool:
    """A worker takes a run whose message it received: False when the message is stale (the
    run ended, another worker took it, or it runs as another try), and must be dropped."""
    parameters = {"key_run_id": run_id, "try_number": tries, "taker": worker, "now": now}
    return bool(connection.execute(_TAKE, parameters).rowcount)
