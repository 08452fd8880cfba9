"""Jobs that name other jobs: a workflow's ``job`` tasks, and ``after``. The jobs named exist
and the caller may read them (else they are unknown, as if they did not exist), no reference
closes a loop, and a job others use cannot be deleted."""

from __future__ import annotations

from sqlalchemy import Connection, select

from f8a_jobs.core.access import WRITE, Caller
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.settings import get_settings
from f8a_jobs.services import access
from f8a_jobs.services.access import check
from f8a_jobs.services.jobs.spec import JobSpec
from f8a_jobs.services.workflows.expand import JobSource, expand, job_lookup
from f8a_jobs.services.workflows.spec import WorkflowSpec
from f8a_jobs.storage.tables import jobs


def check_references(connection: Connection, job: JobSpec, caller: Caller) -> None:
    """The jobs a job names exist, ``caller`` may read them, and none of its references
    closes a loop."""
    check_after(connection, job, caller)
    check_jobs_inside(connection, job, caller)


def check_after(connection: Connection, job: JobSpec, caller: Caller) -> None:
    """A job that runs after another: that one exists (for ``caller``), and the chain of
    ``after`` does not come back to this job (``a → b → a``)."""
    if job.schedule["type"] != "after":
        return
    followed = job.schedule["job_id"]
    if followed != job.job_id and not access.readable(connection, caller, followed):
        raise InvalidInput("after.job_id", f"unknown job {followed!r}")
    chain, current = [job.job_id], job.schedule["job_id"]
    while current is not None:
        chain.append(current)
        if current == job.job_id:
            raise InvalidInput("after", f"runs after itself: {' → '.join(chain)}")
        row = connection.execute(select(jobs.c.after_job).where(jobs.c.job_id == current)).first()
        if row is None:
            raise InvalidInput("after.job_id", f"unknown job {current!r}")
        current = row.after_job


def check_jobs_inside(connection: Connection, job: JobSpec, caller: Caller) -> None:
    """Refuse a workflow whose jobs are unknown (to ``caller``), or that would contain itself
    (``a → b → a``), as it would be stored: every loop a write can close passes through the
    job written."""
    workflow = job.workflow
    if workflow is None:
        return
    mine = JobSource(job.job_id, job.handler, job.kwargs, workflow)
    stored = job_lookup(connection)

    def lookup(job_id: str) -> JobSource | None:
        if job_id == job.job_id:
            return mine
        return stored(job_id) if access.readable(connection, caller, job_id) else None

    _check_overrides(connection, workflow, caller)
    expand(job.job_id, workflow, lookup, get_settings().workflow_max_tasks)


def _check_overrides(connection: Connection, workflow: WorkflowSpec, caller: Caller) -> None:
    """A task that runs another job with kwargs of its own needs the write right on that job:
    it would run the job's handler, with the job's secret kwargs, as the writer chose."""
    for task in workflow.tasks:
        if task.job is not None and task.kwargs and access.readable(connection, caller, task.job):
            check(connection, caller, task.job, WRITE)


def followers_of(connection: Connection, job_id: str) -> list[str]:
    """The jobs that run after ``job_id``'s runs."""
    query = select(jobs.c.job_id).where(jobs.c.after_job == job_id).order_by(jobs.c.job_id)
    return list(connection.execute(query).scalars())


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
