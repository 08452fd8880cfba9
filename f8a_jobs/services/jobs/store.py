"""The one writer of job rows: definitions from the API and default job files, and the
scheduler's progress (next run times, a pause after a failed run) in the transactions that
fire or record runs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, delete, insert, literal, select, update

from f8a_jobs.core.access import SERVICE, Actor
from f8a_jobs.core.errors import JobNotFound
from f8a_jobs.core.schedules import first_run_time
from f8a_jobs.core.states import JobState
from f8a_jobs.services import audit
from f8a_jobs.services.jobs.spec import JobSpec
from f8a_jobs.storage.bulk import among, update_rows
from f8a_jobs.storage.tables import job_labels, jobs

PAUSED_ON_FAILURE = Actor(SERVICE.caller, "a run failed its last try (pause_on_failure)")


def add(connection: Connection, job: JobSpec, now: datetime) -> dict[str, Any]:
    """A new job's row (an ``IntegrityError`` when its id is taken); the row."""
    row = {**job.row(now), "revision": 1, "created_at": now}
    connection.execute(insert(jobs), row)
    label(connection, job.job_id, job.labels)
    return row


def replace(connection: Connection, job: JobSpec, now: datetime) -> None:
    """Overwrite a job's definition (a changed default job file) but its state: a pause made
    through the API stays. Its history stays too."""
    row = job.row(now)
    del row["state"]
    upcoming = first_run_time(job.schedule)
    row["next_run_time"] = case(
        (jobs.c.state == JobState.PAUSED, None),
        else_=literal(upcoming, jobs.c.next_run_time.type),
    )
    connection.execute(
        update(jobs).where(jobs.c.job_id == job.job_id).values(**row, revision=jobs.c.revision + 1)
    )
    label(connection, job.job_id, job.labels)


def locked(connection: Connection, job_id: str) -> dict[str, Any]:
    """A job's row, locked until the transaction ends (a 404 if there is none)."""
    row = connection.execute(select(jobs).where(jobs.c.job_id == job_id).with_for_update()).first()
    if row is None:
        raise JobNotFound(job_id)
    return dict(row._mapping)


def change(connection: Connection, job_id: str, values: dict[str, Any]) -> None:
    """Change a job the caller has locked (``locked``)."""
    connection.execute(update(jobs).where(jobs.c.job_id == job_id).values(**values))
    if "labels" in values:
        label(connection, job_id, values["labels"] or ())


def remove(connection: Connection, job_id: str) -> bool:
    """Delete a job's row (and its labels); whether there was one."""
    connection.execute(delete(job_labels).where(job_labels.c.job_id == job_id))
    return bool(connection.execute(delete(jobs).where(jobs.c.job_id == job_id)).rowcount)


def label(connection: Connection, job_id: str, labels: Iterable[str]) -> None:
    """A job's labels, one row each, as ``labels`` says (the others go)."""
    connection.execute(delete(job_labels).where(job_labels.c.job_id == job_id))
    rows = [{"job_id": job_id, "label": name} for name in labels]
    if rows:
        connection.execute(insert(job_labels), rows)


def advance(connection: Connection, advances: list[dict[str, Any]]) -> set[str]:
    """A firing pass moves jobs' ``next_run_time`` and ``last_run`` on (``advances`` hold
    ``job_id``, ``revision``, ``next_run_time`` and ``last_run``); a job whose revision changed
    since the scheduler read it (paused, edited, deleted) is left alone. Returns the jobs
    advanced."""
    return set(update_rows(connection, jobs, ("job_id", "revision"), advances, returning="job_id"))


def pause(connection: Connection, job_ids: list[str]) -> None:
    """Pause jobs whose run failed after its last try (``pause_on_failure``), audited as the
    service's own change."""
    if job_ids:
        for job_id in job_ids:
            audit.record(
                connection, PAUSED_ON_FAILURE, "pause", job_id, {"cause": "pause_on_failure"}
            )
        connection.execute(
            update(jobs)
            .where(among(connection, jobs.c.job_id, job_ids))
            .values(state=JobState.PAUSED, next_run_time=None, revision=jobs.c.revision + 1)
        )
