"""Which alerts a run's end raises, and which runs and slots are late: decided from the rows,
in the transaction that ends the run (or, for ``late``, the leader's periodic check), so an
alert is neither lost with a crash nor raised twice.

Jobs without targets cost one query per batch of ends; history (the runs before, alerts sent
within ``repeat_every``) is read only for jobs whose targets need it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, func, or_, select

from f8a_jobs.core.settings import get_settings
from f8a_jobs.core.states import JobState, RunStatus, Trigger
from f8a_jobs.services.alerts.outbox import add, alert_row
from f8a_jobs.storage.bulk import among
from f8a_jobs.storage.tables import job_runs, jobs

FINAL = (RunStatus.SUCCEEDED, RunStatus.FAILED)
LATE_BATCH = 1000  # late runs and slots a check looks at, the longest late first
TIMED_OUT = re.compile(r"ran longer than|timed out|timeout", re.IGNORECASE)
Targets = dict[str, list[dict[str, Any]]]


class Ended(NamedTuple):
    """A run that ended for good (or was recorded missed)."""

    job_id: str
    status: str
    finished_at: datetime
    run_id: str


def targets_of(connection: Connection, job_ids: Iterable[str]) -> Targets:
    """Each job's alert targets: its own, or the service's defaults when it names none."""
    defaults = list(get_settings().alerts_default)
    query = select(jobs.c.job_id, jobs.c.alerts).where(
        among(connection, jobs.c.job_id, sorted(set(job_ids)))
    )
    if not defaults:
        query = query.where(jobs.c.alerts.is_not(None))
    found = {row.job_id: row.alerts for row in connection.execute(query)}
    return {
        job: own if own is not None else defaults
        for job, own in found.items()
        if own or (own is None and defaults)
    }


def raise_ended(connection: Connection, ended: list[Ended], now: datetime) -> int:
    """Raise the alerts these ends call for; how many were raised."""
    if not ended:
        return 0
    targets = targets_of(connection, (end.job_id for end in ended))
    if not targets:
        return 0
    mine = [end for end in ended if end.job_id in targets]
    runs = _runs(connection, [end.run_id for end in mine])
    retry_for = get_settings().alert_retry_for
    rows = [
        alert_row(
            end.job_id, run.run_id, event, target, now, retry_for, _slot(run, event), _attempt(run)
        )
        for end in mine
        if (run := runs.get(end.run_id)) is not None
        for target in targets[end.job_id]
        for event in _events(connection, run, target)
    ]
    return add(connection, rows, now)


def _attempt(run: Any) -> int:
    """A run retried through the API (a workflow's) alerts again: each attempt has its own."""
    return len(run.attempts or ())


def _slot(run: Any, event: str) -> datetime | None:
    return run.scheduled_for if event == "late" else None


def _runs(connection: Connection, run_ids: list[str]) -> dict[str, Any]:
    columns = (
        job_runs.c.run_id,
        job_runs.c.job_id,
        job_runs.c.status,
        job_runs.c.error,
        job_runs.c.trigger,
        job_runs.c.scheduled_for,
        job_runs.c.started_at,
        job_runs.c.tries,
        job_runs.c.attempts,
    )
    query = select(*columns).where(among(connection, job_runs.c.run_id, run_ids))
    return {row.run_id: row for row in connection.execute(query)}


def _events(connection: Connection, run: Any, target: Mapping[str, Any]) -> list[str]:
    """The events of ``target`` that this ended run raises."""
    wanted, raised = target["on"], []
    if run.status == RunStatus.MISSED:
        return ["missed"] if "missed" in wanted else []
    if "late" in wanted and _started_late(run, target["late_after"]):
        raised.append("late")
    if run.status == RunStatus.FAILED:
        if "timeout" in wanted and TIMED_OUT.search(run.error or ""):
            raised.append("timeout")
        if "failure" in wanted and _failed_in_a_row(connection, run, target["after_failures"]):
            raised.append("failure")
    elif run.status == RunStatus.SUCCEEDED:
        if "success" in wanted:
            raised.append("success")
        if "recovery" in wanted and _before(connection, run, 1) == [RunStatus.FAILED]:
            raised.append("recovery")
    return raised


def _started_late(run: Any, late_after: float) -> bool:
    """Whether its first try started late (a retry's start is late on purpose)."""
    started = run.started_at
    return (
        run.trigger == Trigger.SCHEDULE
        and (run.tries or 0) <= 1
        and started is not None
        and started - run.scheduled_for > timedelta(seconds=late_after)
    )


def _failed_in_a_row(connection: Connection, run: Any, needed: int) -> bool:
    if needed <= 1:
        return True
    earlier = _before(connection, run, needed - 1)
    return len(earlier) == needed - 1 and all(status == RunStatus.FAILED for status in earlier)


def _before(connection: Connection, run: Any, count: int) -> list[str]:
    """The statuses of the job's ``count`` ended runs before ``run``, latest first (slots in
    order: the index of a job's runs)."""
    query = (
        select(job_runs.c.status)
        .where(
            job_runs.c.job_id == run.job_id,
            job_runs.c.status.in_(FINAL),
            or_(
                job_runs.c.scheduled_for < run.scheduled_for,
                and_(
                    job_runs.c.scheduled_for == run.scheduled_for,
                    job_runs.c.run_id < run.run_id,
                ),
            ),
        )
        .order_by(job_runs.c.scheduled_for.desc())
        .limit(count)
    )
    return list(connection.execute(query).scalars())


def raise_late(connection: Connection, now: datetime) -> int:
    """The leader's check: runs still queued past their slot by a target's ``late_after``, and
    running jobs whose next slot passed that long ago without a run (the service was down).
    A paused job is never late. Each slot alerts once."""
    shortest = _shortest_late_after(connection)
    if shortest is None:
        return 0
    cutoff = now - timedelta(seconds=shortest)
    waiting = connection.execute(
        select(job_runs.c.job_id, job_runs.c.run_id, job_runs.c.scheduled_for)
        .join(jobs, jobs.c.job_id == job_runs.c.job_id)
        .where(
            job_runs.c.status == RunStatus.QUEUED,
            job_runs.c.trigger == Trigger.SCHEDULE,
            func.coalesce(job_runs.c.tries, 0) == 0,  # a retry waits on purpose
            job_runs.c.scheduled_for <= cutoff,
            jobs.c.state == JobState.RUNNING,
        )
        .order_by(job_runs.c.scheduled_for)
        .limit(LATE_BATCH)
    ).all()
    overdue = connection.execute(
        select(jobs.c.job_id, jobs.c.next_run_time)
        .where(jobs.c.next_run_time <= cutoff, jobs.c.state == JobState.RUNNING)
        .order_by(jobs.c.next_run_time)
        .limit(LATE_BATCH)
    ).all()
    found = [(row.job_id, row.run_id, row.scheduled_for) for row in waiting]
    found += [(row.job_id, None, row.next_run_time) for row in overdue]
    targets = targets_of(connection, (job_id for job_id, _, _ in found))
    retry_for = get_settings().alert_retry_for
    rows = [
        alert_row(job_id, run_id, "late", target, now, retry_for, slot)
        for job_id, run_id, slot in found
        for target in targets.get(job_id, ())
        if "late" in target["on"] and now - slot > timedelta(seconds=target["late_after"])
    ]
    return add(connection, rows, now)


def _shortest_late_after(connection: Connection) -> float | None:
    """The shortest ``late_after`` of any target that alerts when late (None: none does)."""
    found = [
        target["late_after"] for target in get_settings().alerts_default if "late" in target["on"]
    ]
    query = select(jobs.c.alerts).where(jobs.c.alerts.is_not(None))
    for targets in connection.execute(query).scalars():
        found += [target["late_after"] for target in targets or () if "late" in target["on"]]
    return min(found, default=None)
