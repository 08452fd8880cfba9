"""The job service: create, read, list, pause, resume and delete jobs as rows.

The API and the default-job loader call these functions with a parsed ``JobSpec``; none of
them touches APScheduler's scheduler: the leader hears about changes through wake-ups and
reads the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select
from sqlalchemy.exc import IntegrityError

from f8a_jobs.core.clock import iso, utcnow
from f8a_jobs.core.errors import DuplicateJob, JobInUse, JobNotFound
from f8a_jobs.core.names import DOT_SEGMENTS
from f8a_jobs.core.schedules import describe, next_run_time
from f8a_jobs.core.states import JobState
from f8a_jobs.services import runs
from f8a_jobs.services.jobs import secret_kwargs, store
from f8a_jobs.services.jobs.references import check_references, followers_of, workflows_using
from f8a_jobs.services.jobs.spec import JobSpec, parse_state
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.tables import jobs


def create_job(engine: Engine, job: JobSpec) -> dict[str, Any]:
    try:
        with wakeups.changing(engine, wakeups.JOBS) as connection:
            check_references(connection, job)
            row = store.add(connection, job, utcnow())
    except IntegrityError:
        raise DuplicateJob(job.job_id) from None
    return job_json(row)


def replace_job(connection: Connection, job: JobSpec) -> None:
    """Overwrite a job's definition (a changed default job file) but its state and history."""
    check_references(connection, job)
    store.replace(connection, job, utcnow())


def get_job(engine: Engine, job_id: str) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
    if row is None:
        raise JobNotFound(job_id)
    return job_json(row._mapping)


def get_schedule(engine: Engine, job_id: str) -> tuple[dict[str, Any], datetime | None, bool]:
    """A job's stored schedule spec, its next run time, and whether it has run."""
    query = select(jobs.c.schedule, jobs.c.next_run_time, jobs.c.last_run)
    with engine.connect() as connection:
        row = connection.execute(query.where(jobs.c.job_id == job_id)).first()
    if row is None:
        raise JobNotFound(job_id)
    return row.schedule, row.next_run_time, row.last_run is not None


def list_jobs(
    engine: Engine,
    state: str | None = None,
    handler: str | None = None,
    limit: int = 100,
    offset: int = 0,
    full: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """One page of jobs in ``job_id`` order, and how many match in all; whole jobs with
    ``full``, else their summaries (kwargs and tasks are not read)."""
    conditions = []
    if state:
        conditions.append(jobs.c.state == parse_state(state))
    if handler:
        conditions.append(jobs.c.handler == handler)
    columns = [jobs] if full else [jobs.c[name] for name in SUMMARY_COLUMNS]
    page = select(*columns).where(*conditions).order_by(jobs.c.job_id).limit(limit).offset(offset)
    shown = job_json if full else job_summary
    with engine.connect() as connection:
        rows = connection.execute(page).all()
        total = connection.execute(
            select(func.count()).select_from(jobs).where(*conditions)
        ).scalar_one()
    return [shown(row._mapping) for row in rows], total


def set_job_state(engine: Engine, job_id: str, state: str) -> dict[str, Any]:
    """Pause (no next run) or resume (next run from the schedule, from now on) a job."""
    state = parse_state(state)
    now = utcnow()
    with wakeups.changing(engine, wakeups.JOBS) as connection:
        job = store.locked(connection, job_id)
        upcoming = (
            next_run_time(job["schedule"], now, job["last_run"] is not None)
            if state == JobState.RUNNING
            else None
        )
        values = {
            "state": state,
            "next_run_time": upcoming,
            "updated_at": now,
            "revision": job["revision"] + 1,
        }
        store.change(connection, job_id, values)
    return job_json({**job, **values})


def delete_job(engine: Engine, job_id: str) -> None:
    """Delete a job and its runs, queued ones included; a run still going ends unrecorded and
    its flows are dropped. Flows its earlier runs dispatched stay in the outbox."""
    with wakeups.changing(engine, wakeups.JOBS) as connection:
        users = workflows_using(connection, job_id)
        if users:
            raise JobInUse(job_id, users)
        followers = followers_of(connection, job_id)
        if followers:
            raise JobInUse(job_id, followers, "is followed ('after') by the jobs")
        if not store.remove(connection, job_id):
            raise JobNotFound(job_id)
        runs.delete_runs(connection, job_id)


SUMMARY_COLUMNS = (
    "job_id",
    "handler",
    "state",
    "schedule",
    "next_run_time",
    "last_run",
    "source",
    "revision",
)


def job_summary(job: Mapping[Any, Any]) -> dict[str, Any]:
    """A job as a list shows it: what it is and when it runs, not its kwargs or tasks, which
    may be megabytes each."""
    return {
        "job_id": job["job_id"],
        "handler": job["handler"] or None,
        "state": job["state"],
        **describe(job["schedule"]),
        "next_run_time": iso(job["next_run_time"]),
        "last_run": iso(job.get("last_run")),
        "source": job["source"],
        "revision": job.get("revision"),
    }


def job_json(job: Mapping[Any, Any]) -> dict[str, Any]:
    """A job row as the API shows it: secret kwargs' values read ``***``."""
    return secret_kwargs.shown(job_fields(job))


def job_fields(job: Mapping[Any, Any]) -> dict[str, Any]:
    """A job row's fields as the API names them, with the values stored: what an edit
    starts from (``editing``), never shown as it is."""
    return {
        **job_summary(job),
        "kwargs": job["kwargs"],
        **(job.get("workflow") or {}),
        **(job.get("policy") or {}),
        "misfire_grace_time": job["misfire_grace_time"],
    }


def stored_workflow(engine: Engine, job_id: str) -> dict[str, Any] | None:
    """A job's workflow as stored (None: the job runs a handler), its tasks' kwargs the real
    ones: a dry run checks with them, and expanding checks them against the handlers."""
    query = select(jobs.c.workflow).where(jobs.c.job_id == job_id)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        raise JobNotFound(job_id)
    return row.workflow


def unreachable_job_ids(engine: Engine) -> list[str]:
    """Ids stored before ids were checked that no URL can address (``core/names.py``): those
    with a '/', and '.' and '..'. Found by the database, not by reading every id at start."""
    query = select(jobs.c.job_id).where(
        or_(jobs.c.job_id.contains("/", autoescape=True), jobs.c.job_id.in_(DOT_SEGMENTS))
    )
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())
