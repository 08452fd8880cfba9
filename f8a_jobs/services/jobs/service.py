"""The job service: create, read, list, pause, resume and delete jobs as rows.

The API and the default-job loader call these functions with a parsed ``JobSpec``; none of
them touches APScheduler's scheduler: the leader hears about changes through wake-ups and
reads the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Select, func, or_, select
from sqlalchemy.exc import IntegrityError

from f8a_jobs.core.access import READ, SERVICE, WRITE, Actor, Caller
from f8a_jobs.core.clock import iso, utcnow
from f8a_jobs.core.errors import DuplicateJob, JobInUse
from f8a_jobs.core.fields import NORMAL, PRIORITY_NAMES
from f8a_jobs.core.names import DOT_SEGMENTS
from f8a_jobs.core.schedules import describe, next_run_time
from f8a_jobs.core.states import JobState
from f8a_jobs.services import access, audit, runs
from f8a_jobs.services.jobs import secret_kwargs, store
from f8a_jobs.services.jobs.ownership import owned
from f8a_jobs.services.jobs.references import check_references, followers_of, workflows_using
from f8a_jobs.services.jobs.spec import JobSpec, parse_state
from f8a_jobs.services.labels import count_labelled, labelled
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.tables import jobs


def create_job(engine: Engine, job: JobSpec, actor: Actor = SERVICE) -> dict[str, Any]:
    """Store a new job, owned by the caller unless it says (``ownership``)."""
    job = owned(job, actor.caller)
    try:
        with wakeups.changing(engine, None) as connection:
            check_references(connection, job, actor.caller)
            row = store.add(connection, job, utcnow())
            wakeups.request_jobs_due(connection, row["next_run_time"])
            shown = job_json(row)
            audit.record(connection, actor, "create", job.job_id, {"job": shown})
    except IntegrityError:
        raise DuplicateJob(job.job_id) from None
    return shown


def replace_job(connection: Connection, job: JobSpec) -> None:
    """Overwrite a job's definition (a changed default job file) but its state and history."""
    check_references(connection, job, SERVICE.caller)
    store.replace(connection, job, utcnow())


def get_job(engine: Engine, job_id: str, caller: Caller = SERVICE.caller) -> dict[str, Any]:
    query = select(jobs).where(jobs.c.job_id == job_id)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return job_json(access.readable_row(caller, row, job_id))


def get_schedule(
    engine: Engine, job_id: str, caller: Caller = SERVICE.caller
) -> tuple[dict[str, Any], datetime | None, bool]:
    """A job's stored schedule spec, its next run time, and whether it has run."""
    query = select(jobs.c.schedule, jobs.c.next_run_time, jobs.c.last_run, *ACCESS)
    with engine.connect() as connection:
        row = connection.execute(query.where(jobs.c.job_id == job_id)).first()
    job = access.readable_row(caller, row, job_id)
    return job["schedule"], job["next_run_time"], job["last_run"] is not None


def list_jobs(
    engine: Engine,
    state: str | None = None,
    handler: str | None = None,
    limit: int = 100,
    offset: int = 0,
    full: bool = False,
    owner: str | None = None,
    group: str | None = None,
    caller: Caller = SERVICE.caller,
    labels: tuple[str, ...] = (),
) -> tuple[list[dict[str, Any]], int]:
    """One page of the jobs ``caller`` may read, in ``job_id`` order, and how many match in
    all; whole jobs with ``full``, else their summaries (kwargs and tasks are not read)."""
    labels = tuple(dict.fromkeys(labels))
    conditions = [] if caller.admin else [access.allowed(caller, READ)]
    if owner is not None:
        conditions.append(jobs.c.owner == owner)
    if group is not None:
        conditions.append(jobs.c.group_name == group)
    conditions += [labelled(jobs.c.job_id, name) for name in labels]
    if state:
        conditions.append(jobs.c.state == parse_state(state))
    if handler:
        conditions.append(jobs.c.handler == handler)
    # only labels: counted from their index, without reading the jobs
    by_labels = labels and len(conditions) == len(labels)
    total_query = count_labelled(labels) if by_labels else _count(conditions)
    columns = [jobs] if full else [jobs.c[name] for name in SUMMARY_COLUMNS]
    page = select(*columns).where(*conditions).order_by(jobs.c.job_id).limit(limit).offset(offset)
    shown = job_json if full else job_summary
    with engine.connect() as connection:
        rows = connection.execute(page).all()
        total = connection.execute(total_query).scalar_one()
    return [shown(row._mapping) for row in rows], total


def _count(conditions: list[Any]) -> Select[tuple[int]]:
    return select(func.count()).select_from(jobs).where(*conditions)


def set_job_state(
    engine: Engine, job_id: str, state: str, actor: Actor = SERVICE
) -> dict[str, Any]:
    """Pause (no next run) or resume (next run from the schedule, from now on) a job."""
    state = parse_state(state)
    now = utcnow()
    with wakeups.changing(engine, wakeups.JOBS) as connection:
        access.check(connection, actor.caller, job_id, WRITE)
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
        action = "resume" if state == JobState.RUNNING else "pause"
        audit.record(connection, actor, action, job_id, {"state": {"old": job["state"]}}, now)
    return job_json({**job, **values})


def delete_job(engine: Engine, job_id: str, actor: Actor = SERVICE) -> None:
    """Delete a job and its runs, queued ones included; a run still going ends unrecorded and
    its flows are dropped. Flows its earlier runs dispatched stay in the outbox. The audit
    row keeps the definition deleted."""
    with wakeups.changing(engine, wakeups.JOBS) as connection:
        access.check(connection, actor.caller, job_id, WRITE)
        stored = store.locked(connection, job_id)
        users = workflows_using(connection, job_id)
        if users:
            raise JobInUse(job_id, access.visible(connection, actor.caller, users))
        followers = followers_of(connection, job_id)
        if followers:
            shown = access.visible(connection, actor.caller, followers)
            raise JobInUse(job_id, shown, "is followed ('after') by the jobs")
        store.remove(connection, job_id)
        runs.delete_runs(connection, job_id)
        audit.record(connection, actor, "delete", job_id, {"job": job_json(stored)})


SUMMARY_COLUMNS = (
    "job_id",
    "handler",
    "state",
    "schedule",
    "next_run_time",
    "last_run",
    "source",
    "revision",
    "owner",
    "group_name",
    "permissions",
    "labels",
    "priority",
)
ACCESS = access.ACCESS_COLUMNS[1:]


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
        "owner": job["owner"],
        "group": job["group_name"],
        "permissions": job["permissions"],
        "labels": job.get("labels") or [],
        "priority": PRIORITY_NAMES.get(job.get("priority", NORMAL), "normal"),
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
        "alerts": job.get("alerts"),
        "metadata": job.get("metadata") or {},
    }


def stored_workflow(
    engine: Engine, job_id: str, caller: Caller = SERVICE.caller
) -> dict[str, Any] | None:
    """A job's workflow as stored (None: the job runs a handler), its tasks' kwargs the real
    ones: a dry run checks with them, and expanding checks them against the handlers."""
    query = select(jobs.c.workflow, *ACCESS).where(jobs.c.job_id == job_id)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return cast(dict[str, Any] | None, access.readable_row(caller, row, job_id)["workflow"])


def unreachable_job_ids(engine: Engine) -> list[str]:
    """Ids stored before ids were checked that no URL can address (``core/names.py``): those
    with a '/', and '.' and '..'. Found by the database, not by reading every id at start."""
    query = select(jobs.c.job_id).where(
        or_(jobs.c.job_id.contains("/", autoescape=True), jobs.c.job_id.in_(DOT_SEGMENTS))
    )
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())
