"""The job service: create, read, list, pause, resume and delete jobs as rows.

The API and the default-job loader call these functions; none of them touches APScheduler's
scheduler: the leader hears about changes through ``wakeups`` and reads the rows.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, case, delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from f8a_jobs import wakeups
from f8a_jobs.errors import (
    DuplicateJob,
    InvalidInput,
    JobInUse,
    JobNotFound,
    StaleRevision,
    refuse_unknown,
)
from f8a_jobs.handlers.registry import get_handler
from f8a_jobs.json_values import MAX_DEPTH, depth_exceeds
from f8a_jobs.runs import lifecycle
from f8a_jobs.runs.policy import POLICY_KEYS, RETRY_KEYS, parse_policy
from f8a_jobs.schedules import (
    describe,
    first_run_time,
    next_run_time,
    parse_duration,
    parse_schedule,
    utcnow,
)
from f8a_jobs.settings import get_settings
from f8a_jobs.storage.tables import job_runs, jobs
from f8a_jobs.workflows.expand import JobSource, expand, job_lookup
from f8a_jobs.workflows.spec import WorkflowSpec, parse_workflow

STATES = ("running", "paused")
SCHEDULE_KEYS = (
    "when",
    "periodically",
    "cron",
    "calendar",
    "timezone",
    "after",
    "misfire_grace_time",
    "state",
)
WORKFLOW_KEYS = ("tasks", "max_concurrent", "timeout")
POLICY_ONLY_KEYS = tuple(key for key in POLICY_KEYS if key not in WORKFLOW_KEYS)
JOB_KEYS = ("job_id", "handler", "kwargs", *WORKFLOW_KEYS, *POLICY_ONLY_KEYS, *SCHEDULE_KEYS)
JOB_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,255}$")


@dataclass(frozen=True)
class JobDefinition:
    """A validated job, ready to be stored."""

    job_id: str
    handler: str
    kwargs: dict[str, Any]
    schedule: dict[str, Any]
    state: str
    misfire_grace_time: int
    source: str = "api"
    source_hash: str | None = None
    workflow: dict[str, Any] | None = None  # a workflow's tasks (then handler is "")
    policy: dict[str, Any] | None = None  # tries, delays, timeout, pause_on_failure

    def row(self, now: datetime) -> dict[str, Any]:
        running = self.state == "running"
        return {
            "job_id": self.job_id,
            "handler": self.handler,
            "kwargs": self.kwargs,
            "workflow": self.workflow,
            "policy": self.policy,
            "schedule": self.schedule,
            "after_job": self.schedule["job_id"] if self.schedule["type"] == "after" else None,
            "state": self.state,
            "misfire_grace_time": self.misfire_grace_time,
            "next_run_time": first_run_time(self.schedule) if running else None,
            "source": self.source,
            "source_hash": self.source_hash,
            "updated_at": now,
        }


def parse_job(
    data: Mapping[str, Any], now: datetime | None = None, source: str = "api"
) -> JobDefinition:
    """Validate a job as the API or a YAML file gives it; errors name the field."""
    if not isinstance(data, Mapping):
        raise InvalidInput("body", f"expected an object, got {type(data).__name__}")
    refuse_unknown(data, JOB_KEYS)
    now = now or utcnow()
    handler, kwargs, workflow = _work(data)
    grace = data.get("misfire_grace_time")
    return JobDefinition(
        job_id=_job_id(data.get("job_id")),
        handler=handler,
        kwargs=kwargs,
        schedule=parse_schedule(
            data.get("when"),
            data.get("periodically"),
            data.get("cron"),
            now,
            data.get("calendar"),
            data.get("timezone"),
            data.get("after"),
        ),
        state=parse_state(data.get("state") or "running"),
        misfire_grace_time=(
            get_settings().misfire_grace_time
            if grace in (None, "")
            else parse_duration(grace, "misfire_grace_time")
        ),
        source=source,
        workflow=workflow,
        policy=parse_policy(data, workflow is not None),
    )


def _work(data: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """A handler with its kwargs, or a workflow's tasks: exactly one of them."""
    if "tasks" in data:
        for key in ("handler", "kwargs"):
            if key in data:
                raise InvalidInput(key, "a job has either 'tasks' or 'handler' and 'kwargs'")
        spec = parse_workflow(data["tasks"], data.get("max_concurrent"), data.get("timeout"))
        return "", {}, spec.json()
    if "max_concurrent" in data:
        raise InvalidInput("max_concurrent", "applies to a workflow: a job with 'tasks'")
    handler = data.get("handler")
    if not isinstance(handler, str) or not handler:
        raise InvalidInput("handler", "required: the name of a registered handler (or 'tasks')")
    kwargs = data.get("kwargs", {})
    if depth_exceeds(kwargs):
        raise InvalidInput("kwargs", f"nested more than {MAX_DEPTH} levels deep")
    get_handler(handler).validate(kwargs)
    return handler, kwargs, None


def check_references(connection: Connection, job: JobDefinition) -> None:
    """The jobs a job names exist, and none of its references closes a loop."""
    check_after(connection, job)
    check_jobs_inside(connection, job)


def check_after(connection: Connection, job: JobDefinition) -> None:
    """A job that runs after another: that one exists, and the chain of ``after`` does not
    come back to this job (``a → b → a``)."""
    if job.schedule["type"] != "after":
        return
    chain, current = [job.job_id], job.schedule["job_id"]
    while current is not None:
        chain.append(current)
        if current == job.job_id:
            raise InvalidInput("after", f"runs after itself: {' → '.join(chain)}")
        row = connection.execute(select(jobs.c.after_job).where(jobs.c.job_id == current)).first()
        if row is None:
            raise InvalidInput("after.job_id", f"unknown job {current!r}")
        current = row.after_job


def followers_of(connection: Connection, job_id: str) -> list[str]:
    query = select(jobs.c.job_id).where(jobs.c.after_job == job_id).order_by(jobs.c.job_id)
    return list(connection.execute(query).scalars())


def check_jobs_inside(connection: Connection, job: JobDefinition) -> None:
    """Refuse a workflow whose jobs are unknown, or that would contain itself (``a → b → a``),
    as it would be stored: every loop a write can close passes through the job written."""
    if job.workflow is None:
        return
    mine = JobSource(job.job_id, job.handler, job.kwargs, WorkflowSpec.from_json(job.workflow))
    stored = job_lookup(connection)

    def lookup(job_id: str) -> JobSource | None:
        return mine if job_id == job.job_id else stored(job_id)

    expand(job.job_id, mine.workflow, lookup, get_settings().workflow_max_tasks)  # type: ignore[arg-type]


def workflows_using(connection: Connection, job_id: str) -> list[str]:
    """The workflows with a task that runs ``job_id``."""
    rows = connection.execute(
        select(jobs.c.job_id, jobs.c.workflow).where(jobs.c.workflow.is_not(None))
    )
    return sorted(
        row.job_id
        for row in rows
        if row.job_id != job_id and any(task.get("job") == job_id for task in row.workflow["tasks"])
    )


def _job_id(value: Any) -> str:
    if value in (None, ""):
        return uuid.uuid4().hex
    if not isinstance(value, str) or not JOB_ID.match(value):
        raise InvalidInput("job_id", f"{value!r} must be 1 to 255 printable characters")
    return value


def parse_state(value: Any) -> str:
    if value not in STATES:
        raise InvalidInput("state", f"{value!r} is not one of {', '.join(STATES)}")
    return str(value)


def create_job(engine: Engine, job: JobDefinition) -> dict[str, Any]:
    now = utcnow()
    row = {**job.row(now), "revision": 1, "created_at": now}
    try:
        with wakeups.changing(engine, wakeups.JOBS) as connection:
            check_references(connection, job)
            connection.execute(insert(jobs), row)
    except IntegrityError:
        raise DuplicateJob(job.job_id) from None
    return job_json(row)


def replace_job(connection: Connection, job: JobDefinition) -> None:
    """Overwrite a job's definition (a changed default job file) but its state: a pause made
    through the API stays. Its history stays too."""
    check_references(connection, job)
    row = job.row(utcnow())
    del row["state"]
    upcoming = first_run_time(job.schedule)
    row["next_run_time"] = case(
        (jobs.c.state == "paused", None), else_=literal(upcoming, jobs.c.next_run_time.type)
    )
    connection.execute(
        update(jobs).where(jobs.c.job_id == job.job_id).values(**row, revision=jobs.c.revision + 1)
    )


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


def schedule_of_run(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """The schedule of the job a run belongs to (None once the job is deleted)."""
    query = select(jobs.c.schedule).join(job_runs, job_runs.c.job_id == jobs.c.job_id)
    with engine.connect() as connection:
        spec = connection.execute(query.where(job_runs.c.run_id == run_id)).scalar()
    return dict(spec) if spec is not None else None


def list_jobs(
    engine: Engine,
    state: str | None = None,
    handler: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """One page of jobs in ``job_id`` order, and how many match in all."""
    conditions = []
    if state:
        conditions.append(jobs.c.state == parse_state(state))
    if handler:
        conditions.append(jobs.c.handler == handler)
    page = select(jobs).where(*conditions).order_by(jobs.c.job_id).limit(limit).offset(offset)
    with engine.connect() as connection:
        rows = connection.execute(page).all()
        total = connection.execute(
            select(func.count()).select_from(jobs).where(*conditions)
        ).scalar_one()
    return [job_json(row._mapping) for row in rows], total


def _locked_job(connection: Connection, job_id: str) -> dict[str, Any]:
    """A job's row, locked until the transaction ends (a 404 if there is none)."""
    row = connection.execute(select(jobs).where(jobs.c.job_id == job_id).with_for_update()).first()
    if row is None:
        raise JobNotFound(job_id)
    return dict(row._mapping)


def set_job_state(engine: Engine, job_id: str, state: str) -> dict[str, Any]:
    """Pause (no next run) or resume (next run from the schedule, from now on) a job."""
    state = parse_state(state)
    now = utcnow()
    with wakeups.changing(engine, wakeups.JOBS) as connection:
        job = _locked_job(connection, job_id)
        upcoming = (
            next_run_time(job["schedule"], now, job["last_run"] is not None)
            if state == "running"
            else None
        )
        values = {
            "state": state,
            "next_run_time": upcoming,
            "updated_at": now,
            "revision": job["revision"] + 1,
        }
        connection.execute(update(jobs).where(jobs.c.job_id == job_id).values(**values))
    return job_json({**job, **values})


SCHEDULE_WORDS = ("periodically", "cron", "calendar", "after")
TOUCHES_SCHEDULE = ("when", "timezone", *SCHEDULE_WORDS)


def patch_job(
    engine: Engine, job_id: str, patch: Any, expected_revision: int | None = None
) -> dict[str, Any]:
    """Change any fields of a job, validated as at creation; with ``expected_revision`` (or a
    ``revision`` field) only if nobody changed the job since. The next run is recomputed when
    the schedule or the state changes; a scheduler pass that read the old revision does not
    overwrite the edit (its writes are guarded by the revision)."""
    if not isinstance(patch, Mapping):
        raise InvalidInput("body", f"expected an object, got {type(patch).__name__}")
    changes = {key: value for key, value in patch.items() if key != "revision"}
    expected = _revision(patch.get("revision", expected_revision))
    if changes.get("job_id", job_id) != job_id:
        raise InvalidInput("job_id", "a job's id cannot change")
    now = utcnow()
    with wakeups.changing(engine, wakeups.JOBS) as connection:
        stored = _locked_job(connection, job_id)
        if expected is not None and expected != stored["revision"]:
            raise StaleRevision(job_id, expected, stored["revision"])
        job = parse_job(_merged(stored, changes), now, source=stored["source"])
        rescheduled = any(key in changes for key in TOUCHES_SCHEDULE)
        if not rescheduled:
            job = dataclasses.replace(job, schedule=stored["schedule"])
        check_references(connection, job)
        values = {
            **job.row(now),
            "next_run_time": _next_after_patch(stored, job, rescheduled, now),
            "source_hash": stored["source_hash"],
            "revision": stored["revision"] + 1,
        }
        connection.execute(update(jobs).where(jobs.c.job_id == job_id).values(**values))
    return job_json({**stored, **values})


def _revision(value: Any) -> int | None:
    if value is None or value == "":
        return None
    text = str(value).strip().strip('"').removeprefix("W/").strip('"')
    if isinstance(value, bool) or not text.isdigit():
        raise InvalidInput("revision", f"expected the job's revision number, got {value!r}")
    return int(text)


def _merged(stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The job as the API would create it, with ``changes`` applied. Giving one schedule word
    replaces the others; giving ``tasks`` replaces the handler, and the other way round; a
    null removes a field."""
    base = {key: value for key, value in job_json(stored).items() if key in JOB_KEYS}
    base = {key: value for key, value in base.items() if value is not None}
    if "tasks" in base:
        base.pop("kwargs", None)  # a workflow's kwargs are its tasks'
    if not any(key in changes for key in TOUCHES_SCHEDULE):  # the stored schedule stays
        base = {key: value for key, value in base.items() if key not in TOUCHES_SCHEDULE}
    if any(word in changes for word in SCHEDULE_WORDS):
        base = {key: value for key, value in base.items() if key not in SCHEDULE_WORDS}
    if any(key in changes for key in TOUCHES_SCHEDULE) and "when" not in changes:
        base.pop("when", None)  # a new schedule starts now, not at the old start
    if "tasks" in changes:
        dropped = ("handler", "kwargs", *RETRY_KEYS)
        base = {key: value for key, value in base.items() if key not in dropped}
    if "handler" in changes:
        base = {key: value for key, value in base.items() if key not in WORKFLOW_KEYS}
        base.setdefault("kwargs", {})
    if base.get("calendar") and "timezone" in base and "timezone" not in changes:
        base.pop("timezone")  # the calendar names its own zone
    merged = {**base, **changes}
    return {key: value for key, value in merged.items() if value is not None}


def _next_after_patch(
    stored: Mapping[str, Any], job: JobDefinition, rescheduled: bool, now: datetime
) -> datetime | None:
    if job.state == "paused":
        return None
    if rescheduled:
        return first_run_time(job.schedule)
    if stored["state"] == "paused":
        return next_run_time(job.schedule, now, stored["last_run"] is not None)
    return cast(datetime | None, stored["next_run_time"])


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
        deleted = connection.execute(delete(jobs).where(jobs.c.job_id == job_id)).rowcount
        if not deleted:
            raise JobNotFound(job_id)
        lifecycle.delete_runs(connection, job_id)


def job_json(job: Mapping[Any, Any]) -> dict[str, Any]:
    workflow = job.get("workflow")
    return {
        "job_id": job["job_id"],
        "handler": job["handler"] or None,
        "kwargs": job["kwargs"],
        **(workflow or {}),
        **(job.get("policy") or {}),
        "state": job["state"],
        **describe(job["schedule"]),
        "misfire_grace_time": job["misfire_grace_time"],
        "next_run_time": _iso(job["next_run_time"]),
        "last_run": _iso(job.get("last_run")),
        "source": job["source"],
        "revision": job.get("revision"),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
