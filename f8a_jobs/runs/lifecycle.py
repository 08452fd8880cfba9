"""The run lifecycle: the one module that writes a run's state.

``queued`` (a due fire, or run-now) → ``running`` (claimed by an executor, stamped with the
leader's epoch and the claiming process) → ``succeeded`` | ``failed``; or ``missed``, with the
reason. Every function takes the connection of a transaction its caller owns, so a fire is one
transaction with the next run times it advances, and a finish one with the flows it produced.

Fencing: each leadership term bumps ``leadership.epoch``. Firing and claiming first check, under
a share lock, that the caller's epoch is still the current one, so a process that lost the lead
starts nothing new. A finish only changes a row that is still ``running`` under the same owner
and epoch, so nobody overwrites a run another term has since failed or run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import aliased

from f8a_jobs import wakeups
from f8a_jobs.json_values import storable_text
from f8a_jobs.runs import (
    AFTER,
    BACKFILL,
    CANCELLED,
    FAILED,
    MANUAL,
    MISSED,
    QUEUED,
    RUNNING,
    SCHEDULE,
    SUCCEEDED,
    new_run_id,
)
from f8a_jobs.runs.policy import (
    BUFFER_ONE,
    COALESCE,
    INTERRUPTIONS,
    ON_TIME,
    PAUSED_NOTE,
    RUN_ALL,
    SKIP,
    RunPolicy,
    overlap_refusal,
)
from f8a_jobs.storage.bulk import among, insert_rows, update_rows
from f8a_jobs.storage.tables import flow_outbox, job_runs, jobs, leadership, run_tasks

LEADER = "leader"
ERROR_LIMIT = 8_000
TRACEBACK_LIMIT = 64_000
ORPHANED = (
    "the process running it ({owner}) stopped sending heartbeats for more than {lease:g} s; "
    "the run may have done part of its work"
)
LOST_WORKER = (
    "the worker running it ({worker}) stopped sending heartbeats for more than {lease:g} s; "
    "the run may have done part of its work"
)
IN_BROKER = ""  # a remote run's worker while its message waits in the broker
RUN_COLUMNS = tuple(column.name for column in job_runs.columns)


class LostLeadership(Exception):
    """This process's term has ended: another process leads now."""

    def __init__(self, mine: int, current: int | None) -> None:
        super().__init__(f"leader term {mine} has ended (the current term is {current})")


# --- terms and fencing -------------------------------------------------------------------


def begin_term(connection: Connection, holder: str, now: datetime) -> int:
    """Start a leadership term (the caller holds the leader lock); returns its epoch."""
    epoch = connection.execute(
        update(leadership)
        .where(leadership.c.name == LEADER)
        .values(epoch=leadership.c.epoch + 1, holder=holder, since=now)
        .returning(leadership.c.epoch)
    ).scalar()
    if epoch is None:  # the migration seeds the row; an emptied table starts again
        epoch = 1
        connection.execute(
            insert(leadership).values(name=LEADER, epoch=epoch, holder=holder, since=now)
        )
    return int(epoch)


def current_term(connection: Connection) -> dict[str, Any]:
    row = connection.execute(select(leadership).where(leadership.c.name == LEADER)).first()
    if row is None:
        return {"epoch": 0, "holder": None, "since": None}
    return {"epoch": row.epoch, "holder": row.holder, "since": row.since}


def fence(connection: Connection, epoch: int) -> None:
    """Raise ``LostLeadership`` unless ``epoch`` is the current term, and keep it current until
    the transaction ends (a share lock: a new term's bump waits for it)."""
    query = select(leadership.c.epoch).where(leadership.c.name == LEADER)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    current = connection.execute(query).scalar()
    if current != epoch:
        raise LostLeadership(epoch, current)


# --- queued ------------------------------------------------------------------------------


@dataclass
class Fire:
    """APScheduler found a job due at ``run_times`` (oldest first)."""

    job_id: str
    run_times: tuple[datetime, ...]
    grace_seconds: int
    handler: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] | None = None


@dataclass(frozen=True)
class Claimant:
    """An executor that takes up to ``room`` of the runs a fire queues, as it queues them:
    they are inserted already claimed, saving a claim's round trips."""

    owner: str
    room: int
    worker: str | None = None  # IN_BROKER for a remote executor


def run_row(job_id: str, scheduled_for: datetime, status: str, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(RUN_COLUMNS)
    row.update(values, run_id=new_run_id(), job_id=job_id, scheduled_for=scheduled_for)
    row.update(status=status, trigger=values.get("trigger", SCHEDULE))
    return row


def fire(
    connection: Connection,
    epoch: int,
    advances: list[dict[str, Any]],
    fires: list[Fire],
    now: datetime,
    tolerant: bool = False,
    claimant: Claimant | None = None,
) -> tuple[int, list[ClaimedRun]]:
    """Advance jobs' next run times and insert their due runs, in the caller's transaction.

    ``advances`` hold ``job_id``, ``revision``, ``next_run_time`` and ``last_run``; a job whose
    revision changed since the scheduler read it (paused, edited, deleted) is neither advanced
    nor run. ``tolerant``: skip a run whose slot exists already (the unique key is a safety
    net; the fast path does not expect it to trigger). Returns how many runs were queued, and
    those the ``claimant`` took at once (its to start once the transaction commits).
    """
    fence(connection, epoch)
    advanced = set(
        update_rows(connection, jobs, ("job_id", "revision"), advances, returning="job_id")
    )
    due = [item for item in fires if item.job_id in advanced]
    if not due:
        return 0, []
    busy = active_jobs(connection, [item.job_id for item in due])
    counts = _run_counts(connection, [i.job_id for i in due if i.job_id in busy and i.policy])
    rows = [
        row
        for item in due
        for row in _fire_rows(item, _overlap(item, item.job_id in busy, counts), now)
    ]
    queued = sum(row["status"] == QUEUED for row in rows)
    due_by_job = {item.job_id: item for item in due}
    claimed = _claim_at_once(rows, due_by_job, epoch, claimant, now, busy)
    insert_rows(connection, job_runs, rows, skip_conflicts=tolerant)
    return queued, claimed


def _overlap(item: Fire, busy: bool, counts: dict[str, tuple[int, int]]) -> str | None:
    """Why the run due now is missed because of the runs going on (None: it is queued)."""
    if not busy:
        return None
    waiting, running = counts.get(item.job_id, (0, 0))
    return overlap_refusal(RunPolicy.of(item.policy), waiting, running)


def _run_counts(connection: Connection, job_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Queued and running runs of each job (for jobs whose policy may let runs overlap)."""
    if not job_ids:
        return {}
    query = (
        select(job_runs.c.job_id, job_runs.c.status, func.count())
        .where(among(connection, job_runs.c.job_id, job_ids))
        .where(job_runs.c.status.in_((QUEUED, RUNNING)))
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
) -> list[ClaimedRun]:
    """Turn up to ``claimant.room`` queued rows into claimed ones (the job's revision was just
    checked, so its state is as the scheduler read it: the claim's checks hold)."""
    claimed: list[ClaimedRun] = []
    if claimant is None:
        return claimed
    for row in rows:
        if len(claimed) >= claimant.room:
            break
        if row["status"] == QUEUED and fires[row["job_id"]].handler and row["job_id"] not in busy:
            row.update(
                status=RUNNING,
                epoch=epoch,
                owner=claimant.owner,
                started_at=now,
                heartbeat_at=now,
                tries=1,
                worker=claimant.worker,
            )
            item = fires[row["job_id"]]
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


def active_jobs(connection: Connection, job_ids: list[str]) -> set[str]:
    """The jobs among ``job_ids`` with a run queued or running."""
    query = select(job_runs.c.job_id).where(
        among(connection, job_runs.c.job_id, job_ids), job_runs.c.status.in_((QUEUED, RUNNING))
    )
    return set(connection.execute(query).scalars())


def _fire_rows(item: Fire, overlap: str | None, now: datetime) -> list[dict[str, Any]]:
    """The latest due time runs (or is missed, with why); the earlier ones are missed, or run
    too (``misfire_policy``: ``coalesce``, ``run_all``, ``skip``)."""
    *earlier, latest = item.run_times
    grace = timedelta(seconds=item.grace_seconds)
    misfire = RunPolicy.of(item.policy).misfire_policy if item.policy else COALESCE
    late = [moment for moment in earlier if now - moment > grace]
    within = [moment for moment in earlier if now - moment <= grace]
    rows = []
    if late:
        rows.append(
            missed_row(item.job_id, late, f"missed by more than the misfire grace time of {grace}")
        )
    if within and misfire == RUN_ALL and not overlap:
        rows.extend(run_row(item.job_id, moment, QUEUED) for moment in within)
    elif within:
        reason = f"coalesced into the run scheduled for {latest.isoformat()}"
        if misfire == SKIP:
            reason = "misfired, and skipped (misfire_policy: skip)"
        rows.append(missed_row(item.job_id, within, reason))
    if overlap:
        rows.append(missed_row(item.job_id, [latest], overlap))
    elif now - latest > grace:
        reason = f"late by {now - latest}, beyond the misfire grace time of {item.grace_seconds} s"
        rows.append(missed_row(item.job_id, [latest], reason))
    elif misfire == SKIP and now - latest > ON_TIME:
        reason = f"late by {now - latest}, and skipped (misfire_policy: skip)"
        rows.append(missed_row(item.job_id, [latest], reason))
    else:
        rows.append(run_row(item.job_id, latest, QUEUED))
    return rows


def missed_row(job_id: str, scheduled: list[datetime], reason: str) -> dict[str, Any]:
    """One ``missed`` row standing for ``len(scheduled)`` runs that will not happen."""
    if len(scheduled) > 1:
        reason += f" ({len(scheduled)} runs from {scheduled[0].isoformat()} to {scheduled[-1].isoformat()})"
    return run_row(job_id, scheduled[0], MISSED, error=reason, missed_count=len(scheduled))


def queue_manual(connection: Connection, job_id: str, now: datetime) -> dict[str, Any]:
    """Run-now: a queued run that runs even while another run of the job goes on."""
    row = run_row(job_id, now, QUEUED, trigger=MANUAL)
    connection.execute(insert(job_runs), row)
    return row


# --- running ---------------------------------------------------------------------------


@dataclass(slots=True)
class ClaimedRun:
    """A run this process now runs: what its handler needs, and the claim that fences it."""

    run_id: str
    job_id: str
    scheduled_for: datetime
    handler: str
    kwargs: dict[str, Any]
    epoch: int
    owner: str
    workflow: dict[str, Any] | None = None  # a workflow job's tasks: the runner runs it
    resumed: bool = False  # a workflow run queued again (retried): its graph is stored
    policy: dict[str, Any] | None = None  # tries, delays, timeout (runs/policy.py)
    tries: int = 1  # this try's number
    trigger: str = SCHEDULE  # what queued it


def claim(
    connection: Connection,
    epoch: int,
    owner: str,
    limit: int,
    now: datetime,
    worker: str | None = None,
) -> list[ClaimedRun]:
    """Claim up to ``limit`` queued runs, oldest first, skipping rows others are claiming.
    ``worker``: ``IN_BROKER`` when the executor sends them to remote workers.

    A scheduled run whose job was paused, or that waited beyond its misfire grace time, is
    recorded missed instead; a run whose job was deleted goes with it.
    """
    fence(connection, epoch)
    query = (
        select(
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
        .select_from(job_runs.outerjoin(jobs, jobs.c.job_id == job_runs.c.job_id))
        .where(job_runs.c.status == QUEUED)
        .where(or_(job_runs.c.not_before.is_(None), job_runs.c.not_before <= now))
        .where(or_(job_runs.c.trigger != BACKFILL, _next_backfill()))
        .where(or_(jobs.c.policy.is_(None), _not_buffered()))
        .order_by(job_runs.c.scheduled_for)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(of=job_runs, skip_locked=True)
    rows = connection.execute(query).all()
    gone = [row.run_id for row in rows if row.handler is None and not row.resumed]
    if gone:
        connection.execute(delete(job_runs).where(job_runs.c.run_id.in_(gone)))
    missed = [
        {"run_id": row.run_id, "status": MISSED, "finished_at": now, "error": reason}
        for row in rows
        if row.run_id not in gone and (reason := _not_startable(row, now))
    ]
    update_rows(connection, job_runs, ("run_id",), missed, guards={"status": QUEUED})
    skipped = {row["run_id"] for row in missed} | set(gone)
    starting = [row for row in rows if row.run_id not in skipped]
    if not starting:
        return []
    started = set(
        connection.execute(
            update(job_runs)
            .where(
                among(connection, job_runs.c.run_id, [row.run_id for row in starting]),
                job_runs.c.status == QUEUED,
            )
            .values(
                status=RUNNING,
                epoch=epoch,
                owner=owner,
                started_at=now,
                heartbeat_at=now,
                tries=func.coalesce(job_runs.c.tries, 0) + 1,
                not_before=None,
                worker=worker,
            )
            .returning(job_runs.c.run_id)
        ).scalars()
    )
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


def _next_backfill() -> ColumnElement[bool]:
    """A backfill run may start when it is its job's oldest queued one and none is running:
    backfills run one after another, oldest first, and never hold up other runs' claims."""
    other = aliased(job_runs)
    same_job = (other.c.job_id == job_runs.c.job_id) & (other.c.trigger == BACKFILL)
    running = select(other.c.run_id).where(same_job, other.c.status == RUNNING)
    older = select(other.c.run_id).where(
        same_job, other.c.status == QUEUED, other.c.scheduled_for < job_runs.c.scheduled_for
    )
    return ~running.exists() & ~older.exists()


def _not_buffered() -> ColumnElement[bool]:
    """A run of an ``overlap: buffer_one`` job waits while another run of its job runs."""
    other = aliased(job_runs)
    running = select(other.c.run_id).where(
        other.c.job_id == job_runs.c.job_id, other.c.status == RUNNING
    )
    overlap = func.coalesce(jobs.c.policy["overlap"].as_string(), SKIP)
    return or_(overlap != BUFFER_ONE, ~running.exists())


def _not_startable(row: Any, now: datetime) -> str | None:
    if row.trigger != SCHEDULE or row.resumed:
        return None
    if row.state == "paused":
        return "the job was paused before the run started"
    if row.tries or (row.policy or {}).get("overlap") == BUFFER_ONE:
        return None  # a retry is late on purpose, a buffered run waited for the previous one
    late = now - row.scheduled_for
    if late > timedelta(seconds=row.misfire_grace_time):
        return (
            f"waited {late} to start, beyond the misfire grace time of {row.misfire_grace_time} s"
        )
    return None


def heartbeat(
    connection: Connection, owner: str, run_ids: list[str], now: datetime, waiting: bool = False
) -> None:
    """Show that this process still runs ``run_ids`` (``waiting``: those of them whose message
    still waits in the broker; a worker that took one heartbeats it from then on)."""
    query = update(job_runs).where(
        among(connection, job_runs.c.run_id, run_ids),
        job_runs.c.owner == owner,
        job_runs.c.status == RUNNING,
    )
    if waiting:
        query = query.where(job_runs.c.worker == IN_BROKER)
    connection.execute(query.values(heartbeat_at=now))


def fail_orphans(connection: Connection, epoch: int, lease: float, now: datetime) -> int:
    """Settle the runs whose process has stopped sending heartbeats: it is gone.

    An in-process run fails (it may have done part of its work). A remote run still in the
    broker is queued again as the same try; one whose worker died runs again as a new try, up
    to ``INTERRUPTIONS`` times beyond its job's tries. Call it only once a term is older than
    ``lease``: a live process heartbeats within a lease of the database coming back, so a stale
    heartbeat then means a dead process. Returns how many runs it settled.
    """
    fence(connection, epoch)
    stale = connection.execute(
        select(job_runs.c.run_id, job_runs.c.owner, job_runs.c.job_id, job_runs.c.worker)
        .add_columns(job_runs.c.tries, jobs.c.policy)
        .select_from(job_runs.outerjoin(jobs, jobs.c.job_id == job_runs.c.job_id))
        .where(
            job_runs.c.status == RUNNING,
            job_runs.c.graph.is_(None),  # a workflow run is the runner's: it resumes it
            or_(
                job_runs.c.heartbeat_at < now - timedelta(seconds=lease),
                job_runs.c.heartbeat_at.is_(None),
            ),
        )
    ).all()
    failed, again = [], []
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
        failed.append({"run_id": row.run_id, "status": FAILED, "finished_at": now, "error": error})
    ended = set(
        update_rows(
            connection,
            job_runs,
            ("run_id",),
            failed,
            guards={"status": RUNNING},
            returning="run_id",
        )
    )
    queue_followers(connection, [(row.job_id, FAILED, now) for row in stale if row.run_id in ended])
    requeued = update_rows(
        connection, job_runs, ("run_id",), again, guards={"status": RUNNING}, returning="run_id"
    )
    if requeued:
        wakeups.request(connection, wakeups.RUNS)
    return len(ended) + len(requeued)


def _queued_again(run_id: str, tries: int, error: str | None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "status": QUEUED,
        "tries": tries,
        "worker": None,
        "not_before": None,
        "error": error,
    }


# --- remote runs: what the worker running one writes ----------------------------------------


# Built once: a worker takes every run with it (building costs more CPU than running it).
_TAKE = (
    update(job_runs)
    .where(
        job_runs.c.run_id == bindparam("key_run_id"),
        job_runs.c.status == RUNNING,
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


def beat_remote(connection: Connection, worker: str, run_ids: list[str], now: datetime) -> None:
    """A worker shows it still runs ``run_ids``."""
    connection.execute(
        update(job_runs)
        .where(
            among(connection, job_runs.c.run_id, run_ids),
            job_runs.c.worker == worker,
            job_runs.c.status == RUNNING,
        )
        .values(heartbeat_at=now)
    )


# --- finished ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """How a claimed run ended, with what it produced."""

    run: ClaimedRun
    status: str
    finished_at: datetime
    started_at: datetime | None = None  # when the handler started (after the claim)
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    flows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def retry_at(self) -> datetime | None:
        """When the next try starts, for a failed try with tries left."""
        if self.status != FAILED:
            return None
        return RunPolicy.of(self.run.policy).retry_at(self.run.tries, self.finished_at)

    @property
    def pauses_job(self) -> bool:
        return (
            self.status == FAILED
            and self.retry_at is None
            and RunPolicy.of(self.run.policy).pause_on_failure
        )

    def row(self) -> dict[str, Any]:
        failed = self.status == FAILED
        retry_at = self.retry_at
        error = self.error
        if retry_at is not None:
            error = (
                f"try {self.run.tries} failed, the next starts at {retry_at.isoformat()}: {error}"
            )
        elif self.pauses_job:
            error = f"{error}{PAUSED_NOTE}"
        return {
            "run_id": self.run.run_id,
            "owner": self.run.owner,
            "epoch": self.run.epoch,
            "tries": self.run.tries,
            "status": QUEUED if retry_at is not None else self.status,
            "not_before": retry_at,
            "started_at": self.started_at,
            "finished_at": None if retry_at is not None else self.finished_at,
            "result": self.result,
            "error": storable_text(error, ERROR_LIMIT),
            "traceback": storable_text(self.traceback, TRACEBACK_LIMIT),
            "handler": self.run.handler if failed else None,
            "kwargs": self.run.kwargs if failed else None,
        }


def finish(connection: Connection, outcomes: list[Outcome], tolerant: bool = False) -> set[str]:
    """Record how runs ended and write their flows, in the caller's transaction.

    Only runs still ``running`` under the claim (owner and epoch) that started them change;
    the flows of any other run are dropped with it. ``tolerant``: skip flows whose key exists
    already. Returns the runs recorded.
    """
    rows = [outcome.row() for outcome in outcomes]
    recorded = set(
        update_rows(
            connection,
            job_runs,
            ("run_id", "owner", "epoch", "tries"),
            rows,
            guards={"status": RUNNING},
            returning="run_id",
        )
    )
    ended = [o for o in outcomes if o.run.run_id in recorded and o.retry_at is None]
    pause_jobs(connection, [outcome.run.job_id for outcome in ended if outcome.pauses_job])
    queue_followers(connection, [(o.run.job_id, o.status, o.finished_at) for o in ended])
    flows = [
        flow for outcome in outcomes if outcome.run.run_id in recorded for flow in outcome.flows
    ]
    insert_rows(connection, flow_outbox, flows, skip_conflicts=tolerant)
    return recorded


def pause_jobs(connection: Connection, job_ids: list[str]) -> None:
    """Pause jobs whose run failed after its last try (``pause_on_failure``)."""
    if job_ids:
        connection.execute(
            update(jobs)
            .where(among(connection, jobs.c.job_id, job_ids))
            .values(state="paused", next_run_time=None, revision=jobs.c.revision + 1)
        )


FOLLOWED_ON = {
    "success": (SUCCEEDED,),
    "failure": (FAILED,),
    "always": (SUCCEEDED, FAILED, CANCELLED),
}


Ended = tuple[str, str, datetime]  # a run's job, its final status, when it ended


def queue_followers(connection: Connection, ended: list[Ended]) -> int:
    """Queue a run of each running job that follows (``after``) a job whose run just ended as
    it asks: one per run that ended so, due when it ended. Returns how many were queued."""
    if not ended:
        return 0
    query = select(jobs.c.job_id, jobs.c.schedule).where(
        among(connection, jobs.c.after_job, sorted({job_id for job_id, _, _ in ended})),
        jobs.c.state == "running",
    )
    followers = connection.execute(query).all()
    rows = [
        run_row(row.job_id, moment + timedelta(microseconds=n), QUEUED, trigger=AFTER)
        for row in followers
        for n, (job_id, status, moment) in enumerate(ended)
        if job_id == row.schedule["job_id"] and status in FOLLOWED_ON[row.schedule["on"]]
    ]
    insert_rows(connection, job_runs, rows, skip_conflicts=True)
    if rows:
        wakeups.request(connection, wakeups.RUNS)
    return len(rows)


# --- workflow runs ---------------------------------------------------------------------------


def record_graph(connection: Connection, run: ClaimedRun, graph: dict[str, Any]) -> bool:
    """Fix a workflow run's expanded graph (later edits of its jobs do not change it)."""
    return bool(
        connection.execute(
            update(job_runs)
            .where(
                job_runs.c.run_id == run.run_id,
                job_runs.c.owner == run.owner,
                job_runs.c.status == RUNNING,
            )
            .values(graph=graph)
        ).rowcount
    )


def adopt_workflows(connection: Connection, epoch: int, owner: str) -> Sequence[Any]:
    """A new term takes over every workflow run under way, to resume it."""
    fence(connection, epoch)
    return connection.execute(
        update(job_runs)
        .where(job_runs.c.status == RUNNING, job_runs.c.graph.is_not(None))
        .values(owner=owner, epoch=epoch)
        .returning(
            job_runs.c.run_id,
            job_runs.c.job_id,
            job_runs.c.scheduled_for,
            job_runs.c.started_at,
            job_runs.c.graph,
        )
    ).all()


def workflow_rows(connection: Connection, run_ids: list[str]) -> Sequence[Any]:
    return connection.execute(
        select(
            job_runs.c.run_id,
            job_runs.c.job_id,
            job_runs.c.scheduled_for,
            job_runs.c.started_at,
            job_runs.c.graph,
        ).where(among(connection, job_runs.c.run_id, run_ids))
    ).all()


def finish_workflows(connection: Connection, epoch: int, rows: list[dict[str, Any]]) -> None:
    """Record the end of workflow runs this term runs (``run_id``, ``job_id``, ``status``,
    ``error``, ``result``, ``finished_at``); pause and follow their jobs as they ask."""
    pausing = _pausing(connection, [row["job_id"] for row in rows if row["status"] == FAILED])
    changes = [
        {
            **{name: value for name, value in row.items() if name != "job_id"},
            "error": storable_text(
                f"{row['error']}{PAUSED_NOTE}" if row["job_id"] in pausing else row["error"],
                ERROR_LIMIT,
            ),
        }
        for row in rows
    ]
    recorded = set(
        update_rows(
            connection,
            job_runs,
            ("run_id",),
            changes,
            guards={"status": RUNNING, "epoch": epoch},
            returning="run_id",
        )
    )
    ended = [row for row in rows if row["run_id"] in recorded]
    pause_jobs(connection, sorted({row["job_id"] for row in ended} & pausing))
    queue_followers(
        connection, [(row["job_id"], row["status"], row["finished_at"]) for row in ended]
    )


def _pausing(connection: Connection, job_ids: list[str]) -> set[str]:
    """Of these jobs, those that pause when a run fails (``pause_on_failure``)."""
    if not job_ids:
        return set()
    query = select(jobs.c.job_id).where(
        among(connection, jobs.c.job_id, job_ids),
        jobs.c.policy["pause_on_failure"].as_boolean().is_(True),
    )
    return set(connection.execute(query).scalars())


def cancel_requested(connection: Connection, run_ids: list[str]) -> list[str]:
    if not run_ids:
        return []
    query = select(job_runs.c.run_id).where(
        among(connection, job_runs.c.run_id, run_ids), job_runs.c.cancel_requested.is_(True)
    )
    return list(connection.execute(query).scalars())


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
    if row.status == QUEUED or (row.status == RUNNING and row.worker == IN_BROKER):
        connection.execute(
            update(job_runs)
            .where(job_runs.c.run_id == run_id)
            .values(status=CANCELLED, finished_at=now, error="the run was cancelled")
        )
    elif row.status == RUNNING:
        connection.execute(
            update(job_runs).where(job_runs.c.run_id == run_id).values(cancel_requested=True)
        )
    return str(row.status)


def requeue(connection: Connection, run_id: str) -> bool:
    """Queue a finished workflow run again (a retry): its stored graph and results stay."""
    return bool(
        connection.execute(
            update(job_runs)
            .where(
                job_runs.c.run_id == run_id,
                job_runs.c.status.in_((FAILED, CANCELLED)),
                job_runs.c.graph.is_not(None),
            )
            .values(status=QUEUED, finished_at=None, error=None, cancel_requested=None, owner=None)
        ).rowcount
    )


# --- removed ------------------------------------------------------------------------------


def delete_runs(connection: Connection, job_id: str) -> None:
    """A deleted job's runs go with it; a run still going finishes unrecorded (``finish``
    finds no row), and its flows are dropped."""
    runs = select(job_runs.c.run_id).where(job_runs.c.job_id == job_id)
    connection.execute(delete(run_tasks).where(run_tasks.c.run_id.in_(runs)))
    connection.execute(delete(job_runs).where(job_runs.c.job_id == job_id))


def delete_failed(connection: Connection) -> int:
    failed = select(job_runs.c.run_id).where(job_runs.c.status == FAILED)
    connection.execute(delete(run_tasks).where(run_tasks.c.run_id.in_(failed)))
    return connection.execute(delete(job_runs).where(job_runs.c.status == FAILED)).rowcount
