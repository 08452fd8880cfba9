"""Job runs as the API shows them: a job's history, failed runs, and run-now requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, func, or_, select

from f8a_jobs.core.access import READ, SERVICE, WRITE, Actor, Caller
from f8a_jobs.core.clock import iso, utcnow
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.fields import NORMAL, PRIORITY_NAMES
from f8a_jobs.core.masking import masked_kwargs
from f8a_jobs.core.states import RunStatus
from f8a_jobs.services import access, audit
from f8a_jobs.services.runs.model import IN_BROKER
from f8a_jobs.services.runs.queue import queue_manual
from f8a_jobs.services.runs.remove import delete_failed
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.tables import job_runs, jobs

SHOWN = [column for column in job_runs.c if column.name != "graph"]  # a graph can be large
STARTED_BY_MAX = 160  # job_runs.started_by


def list_runs(
    engine: Engine,
    job_id: str,
    limit: int = 100,
    offset: int = 0,
    started_by: str | None = None,
    caller: Caller = SERVICE.caller,
) -> tuple[list[dict[str, Any]], int]:
    """A job's runs, newest first; ``started_by`` as runs record it (``user:alice``), or
    its kind alone (``user``: started by any user)."""
    where = [job_runs.c.job_id == job_id]
    if started_by is not None:
        where.append(started_by_condition(started_by))
    with engine.connect() as connection:
        access.check(connection, caller, job_id, READ)
        page = (
            select(*SHOWN)
            .where(*where)
            .order_by(job_runs.c.scheduled_for.desc(), job_runs.c.started_at.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = connection.execute(page).all()
        total = connection.execute(
            select(func.count()).select_from(job_runs).where(*where)
        ).scalar_one()
    return [run_json(row._mapping) for row in rows], total


def started_by_condition(value: str) -> ColumnElement[bool]:
    """Runs started so: exactly (``user:alice``), or of a kind (``user``)."""
    if not value or len(value) > STARTED_BY_MAX:
        raise InvalidInput(
            "started_by", f"expected e.g. 'schedule', 'user:alice' or 'user', got {value!r}"
        )
    if ":" in value:
        return job_runs.c.started_by == value
    return or_(
        job_runs.c.started_by == value,
        job_runs.c.started_by.startswith(f"{value}:", autoescape=True),
    )


def list_failed(
    engine: Engine, limit: int = 100, offset: int = 0, caller: Caller = SERVICE.caller
) -> tuple[list[dict[str, Any]], int]:
    """Failed runs of the jobs ``caller`` may read, newest first, with what it takes to
    reproduce them (but secrets: their job's policy says which kwargs are)."""
    failed = job_runs.c.status == RunStatus.FAILED
    if not caller.admin:  # the runs of a deleted job are for admins
        failed = and_(
            failed, job_runs.c.job_id.in_(select(jobs.c.job_id).where(access.allowed(caller)))
        )
    page = (
        select(*SHOWN, jobs.c.policy)
        .select_from(job_runs.outerjoin(jobs, jobs.c.job_id == job_runs.c.job_id))
        .where(failed)
        .order_by(job_runs.c.scheduled_for.desc())
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as connection:
        rows = connection.execute(page).all()
        total = connection.execute(
            select(func.count()).select_from(job_runs).where(failed)
        ).scalar_one()
    return [failed_json(row._mapping) for row in rows], total


def clean_failed(engine: Engine, actor: Actor = SERVICE) -> int:
    """Delete the failed runs of the jobs ``actor`` may change (an admin: every failed run)."""
    caller = actor.caller
    of_jobs = None if caller.admin else select(jobs.c.job_id).where(access.allowed(caller, WRITE))
    with engine.begin() as connection:
        removed = delete_failed(connection, of_jobs)
        audit.record(connection, actor, "clean_failed", None, {"removed": removed})
    return removed


def request_run(engine: Engine, job_id: str, actor: Actor = SERVICE) -> dict[str, Any]:
    """Queue one run of a job now; the leader's executor picks it up. The schedule is untouched."""
    now = utcnow()
    with wakeups.changing(engine, wakeups.RUNS) as connection:
        access.check(connection, actor.caller, job_id, WRITE)
        row = queue_manual(connection, job_id, now, actor.caller.started_by)
        audit.record(connection, actor, "run", job_id, {"run_id": row["run_id"]}, now)
    return run_json(row)


def schedule_of_run(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """The schedule of the job a run belongs to (None once the job is deleted)."""
    query = select(jobs.c.schedule).join(job_runs, job_runs.c.job_id == jobs.c.job_id)
    with engine.connect() as connection:
        spec = connection.execute(query.where(job_runs.c.run_id == run_id)).scalar()
    return dict(spec) if spec is not None else None


def run_json(run: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "run_id": run["run_id"],
        "job_id": run["job_id"],
        "trigger": run["trigger"],
        "started_by": run.get("started_by"),
        "status": run["status"],
        "scheduled_for": iso(run["scheduled_for"]),
        "started_at": iso(run.get("started_at")),
        "finished_at": iso(run.get("finished_at")),
        "result": run.get("result"),
        "error": run.get("error"),
        "missed_count": run.get("missed_count"),
        "epoch": run.get("epoch"),
        "owner": run.get("owner"),
        "tries": run.get("tries"),
        "not_before": iso(run.get("not_before")),
        "worker": run.get("worker") or None,
        # sent to a worker's queue, no worker took it yet: "running" in the row, not under way
        "waiting_for_worker": run["status"] == RunStatus.RUNNING and run.get("worker") == IN_BROKER,
        "labels": run.get("labels") or [],
        "priority": PRIORITY_NAMES.get(run.get("priority", NORMAL), "normal"),
    }


def failed_json(run: Mapping[Any, Any]) -> dict[str, Any]:
    """A failed run with its handler and kwargs (each secret one's value ``***``, by the
    names its job's ``policy`` lists and by the words any secret's name holds)."""
    listed = (run.get("policy") or {}).get("secret_kwargs", ())
    kwargs = run["kwargs"]
    return {
        **run_json(run),
        "handler": run["handler"],
        "kwargs": None if kwargs is None else masked_kwargs(kwargs, listed),
        "traceback": run["traceback"],
        "time": iso(run["finished_at"]),
    }
