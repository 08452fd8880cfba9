"""Runs become ``queued``: the due runs of a firing pass, run-now, backfills, and the runs of
jobs that follow (``after``) another job's ended runs.

A firing pass's runs are inserted in the transaction that advances their jobs' next run times
(the caller's), so a crash can neither lose a due run nor fire the same slot twice; runs an
executor has room for are inserted already claimed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select

from f8a_jobs.core.fields import LOWEST
from f8a_jobs.core.states import JobState, RunStatus, Trigger
from f8a_jobs.services import alerts
from f8a_jobs.services.alerts import Ended
from f8a_jobs.services.runs.fire_rules import fire_rows, overlap_of
from f8a_jobs.services.runs.model import Claimant, ClaimedRun, Fire, run_row
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.bulk import among, insert_rows
from f8a_jobs.storage.tables import job_runs, jobs

# Read once, for the hot loops: an enum member is a class-attribute lookup per use.
QUEUED, RUNNING, MISSED = RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.MISSED
ACTIVE = (QUEUED, RUNNING)
FOLLOWED_ON = {
    "success": (RunStatus.SUCCEEDED,),
    "failure": (RunStatus.FAILED,),
    "always": (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED),
}


def queue_fires(
    connection: Connection,
    epoch: int,
    due: list[Fire],
    now: datetime,
    tolerant: bool = False,
    claimant: Claimant | None = None,
) -> tuple[int, list[ClaimedRun]]:
    """Insert the runs of ``due`` fires (their jobs just advanced, under ``epoch``'s fence).
    ``tolerant``: skip a run whose slot exists already (the unique key is a safety net; the
    fast path does not expect it). Returns how many runs were queued, and those the
    ``claimant`` took at once (its to start once the transaction commits)."""
    if not due:
        return 0, []
    busy = active_jobs(connection, [item.job_id for item in due])
    counts = _run_counts(connection, [i.job_id for i in due if i.job_id in busy and i.policy])
    rows = [
        row
        for item in due
        for row in fire_rows(item, overlap_of(item, item.job_id in busy, counts), now)
    ]
    queued = sum(row["status"] == QUEUED for row in rows)
    due_by_job = {item.job_id: item for item in due}
    waiting = _highest_queued(connection) if claimant and claimant.room > 0 else None
    claimed = _claim_at_once(rows, due_by_job, epoch, claimant, now, busy, waiting)
    insert_rows(connection, job_runs, rows, skip_conflicts=tolerant)
    if queued < len(rows):
        missed = [
            Ended(r["job_id"], MISSED, now, r["run_id"]) for r in rows if r["status"] == MISSED
        ]
        alerts.raise_ended(connection, missed, now)
    return queued, claimed


def active_jobs(connection: Connection, job_ids: list[str]) -> set[str]:
    """The jobs among ``job_ids`` with a run queued or running."""
    query = select(job_runs.c.job_id).where(
        among(connection, job_runs.c.job_id, job_ids), job_runs.c.status.in_(ACTIVE)
    )
    return set(connection.execute(query).scalars())


# Built once (once a firing pass). Not max(): that reads every queued entry; this reads the
# claim index's first.
_HIGHEST_QUEUED = (
    select(job_runs.c.priority)
    .where(job_runs.c.status == QUEUED)
    .order_by(job_runs.c.priority.desc())
    .limit(1)
)


def _highest_queued(connection: Connection) -> int | None:
    """The highest priority of the runs already queued (the claim index's first entry): a
    fresh run below it must not take a thread before them."""
    return connection.execute(_HIGHEST_QUEUED).scalar()


def _run_counts(connection: Connection, job_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Queued and running runs of each job (for jobs whose policy may let runs overlap)."""
    if not job_ids:
        return {}
    query = (
        select(job_runs.c.job_id, job_runs.c.status, func.count())
        .where(among(connection, job_runs.c.job_id, job_ids))
        .where(job_runs.c.status.in_(ACTIVE))
        .group_by(job_runs.c.job_id, job_runs.c.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for job_id, status, count in connection.execute(query):
        counts.setdefault(job_id, {})[status] = count
    return {job: (by.get(QUEUED, 0), by.get(RUNNING, 0)) for job, by in counts.items()}


def _claim_at_once(
    rows: list[dict[str, Any]],
    fires: dict[str, Fire],
    epoch: int,
    claimant: Claimant | None,
    now: datetime,
    busy: set[str],
    waiting: int | None = None,
) -> list[ClaimedRun]:
    """Turn up to ``claimant.room`` queued rows into claimed ones (the job's revision was just
    checked, so its state is as the scheduler read it: the claim's checks hold), none below
    the ``waiting`` priority of runs queued before them."""
    claimed: list[ClaimedRun] = []
    if claimant is None:
        return claimed
    for row in sorted(rows, key=_first) if len(fires) > 1 else rows:
        if len(claimed) >= claimant.room:
            break
        item = fires[row["job_id"]]
        if row["status"] != QUEUED or not item.handler or row["job_id"] in busy:
            continue
        if waiting is not None and row["priority"] < waiting:
            break  # sorted: the rest are lower still
        row.update(
            status=RUNNING,
            epoch=epoch,
            owner=claimant.owner,
            started_at=now,
            heartbeat_at=now,
            tries=1,
            worker=claimant.worker,
        )
        claimed.append(
            ClaimedRun(
                row["run_id"],
                item.job_id,
                row["scheduled_for"],
                item.handler,
                item.kwargs,
                epoch,
                claimant.owner,
                policy=item.policy,
            )
        )
    return claimed


def _first(row: dict[str, Any]) -> int:
    """Rows a claimant takes at once: the highest priority first (a stable sort keeps the
    slots' order within one)."""
    return -row["priority"]


def copied(connection: Connection, job_id: str) -> dict[str, Any]:
    """What a run copies from its job: its labels and priority."""
    query = select(jobs.c.labels, jobs.c.priority).where(jobs.c.job_id == job_id)
    row = connection.execute(query).one()
    return {"labels": row.labels or None, "priority": row.priority}


def queue_manual(
    connection: Connection, job_id: str, now: datetime, started_by: str
) -> dict[str, Any]:
    """Run-now: a queued run that runs even while another run of the job goes on."""
    row = run_row(
        job_id,
        now,
        RunStatus.QUEUED,
        trigger=Trigger.MANUAL,
        started_by=started_by,
        **copied(connection, job_id),
    )
    connection.execute(insert(job_runs), row)
    return row


def queue_backfill(
    connection: Connection,
    job_id: str,
    slots: list[datetime],
    started_by: str,
    priority: int = LOWEST,
) -> list[datetime]:
    """A backfill run for each of ``slots`` (oldest first) not backfilled yet; those queued.
    Backfills run below every live run unless the request says (peers' backfills starve
    live runs)."""
    if not slots:
        return []
    existing = set(
        connection.execute(
            select(job_runs.c.scheduled_for).where(
                job_runs.c.job_id == job_id,
                job_runs.c.trigger == Trigger.BACKFILL,
                job_runs.c.scheduled_for.between(slots[0], slots[-1]),
            )
        ).scalars()
    )
    fresh = [slot for slot in slots if slot not in existing]
    values = {**copied(connection, job_id), "priority": priority}
    rows = [
        run_row(
            job_id,
            slot,
            RunStatus.QUEUED,
            trigger=Trigger.BACKFILL,
            started_by=started_by,
            **values,
        )
        for slot in fresh
    ]
    insert_rows(connection, job_runs, rows, skip_conflicts=True)
    return fresh


def after_ends(connection: Connection, ended: list[Ended], now: datetime) -> None:
    """What runs' ends set off, in their transaction: the runs of the jobs that follow them,
    and the alerts they raise."""
    queue_followers(connection, ended)
    alerts.raise_ended(connection, ended, now)


def queue_followers(connection: Connection, ended: list[Ended]) -> int:
    """Queue a run of each running job that follows (``after``) a job whose run just ended as
    it asks: one per run that ended so, due when it ended. Returns how many were queued."""
    if not ended:
        return 0
    query = select(jobs.c.job_id, jobs.c.schedule, jobs.c.labels, jobs.c.priority).where(
        among(connection, jobs.c.after_job, sorted({end.job_id for end in ended})),
        jobs.c.state == JobState.RUNNING,
    )
    followers = connection.execute(query).all()
    rows = [
        run_row(
            row.job_id,
            moment + timedelta(microseconds=n),
            RunStatus.QUEUED,
            trigger=Trigger.AFTER,
            started_by=f"after:{job_id}",
            labels=row.labels or None,
            priority=row.priority,
        )
        for row in followers
        for n, (job_id, status, moment, _) in enumerate(ended)
        if job_id == row.schedule["job_id"] and status in FOLLOWED_ON[row.schedule["on"]]
    ]
    insert_rows(connection, job_runs, rows, skip_conflicts=True)
    if rows:
        wakeups.request(connection, wakeups.RUNS)
    return len(rows)
