"""Prune: the jobs an apply deletes because its list leaves them out. Only those the caller
may change, with the label given, and made through the API: a default job file owns its job
(it would come back at the next start). A deleted job no workflow may still run, and none may
still follow (``after``), as for ``DELETE /jobs/{id}``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from f8a_jobs.core.access import WRITE, Caller
from f8a_jobs.core.errors import JobInUse
from f8a_jobs.services import access
from f8a_jobs.services.jobs import store
from f8a_jobs.services.labels import labelled
from f8a_jobs.storage.bulk import among, chunked
from f8a_jobs.storage.tables import jobs


def prunable(
    connection: Connection, caller: Caller, listed: set[str], label: str | None
) -> list[dict[str, Any]]:
    """The rows of the jobs to delete, locked, in ``job_id`` order."""
    conditions = [jobs.c.source == "api"]
    if not caller.admin:
        conditions.append(access.allowed(caller, WRITE))
    if label is not None:
        conditions.append(labelled(jobs.c.job_id, label))
    query = select(jobs.c.job_id).where(*conditions).order_by(jobs.c.job_id)
    doomed = [job_id for job_id in connection.execute(query).scalars() if job_id not in listed]
    rows = store.locked_many(connection, doomed)
    return [rows[job_id] for job_id in doomed if job_id in rows]


def check_unused(connection: Connection, caller: Caller, deleted: list[str]) -> None:
    """A 409 naming the first deleted job a remaining workflow runs, or a remaining job
    follows; run once the deletes are written, so jobs deleted together may use each other."""
    if not deleted:
        return
    gone = set(deleted)
    users: dict[str, list[str]] = {}
    workflows = select(jobs.c.job_id, jobs.c.workflow).where(jobs.c.workflow.is_not(None))
    for row in connection.execute(workflows.order_by(jobs.c.job_id)):
        for task in row.workflow["tasks"]:
            if task.get("job") in gone and row.job_id not in users.setdefault(task["job"], []):
                users[task["job"]].append(row.job_id)
    for job_id in deleted:
        if users.get(job_id):
            raise JobInUse(job_id, access.visible(connection, caller, users[job_id]))
    followers: dict[str, list[str]] = {}
    for ids in chunked(deleted):
        query = select(jobs.c.job_id, jobs.c.after_job).where(
            among(connection, jobs.c.after_job, ids)
        )
        for row in connection.execute(query.order_by(jobs.c.job_id)):
            followers.setdefault(row.after_job, []).append(row.job_id)
    for job_id in deleted:
        if followers.get(job_id):
            shown = access.visible(connection, caller, followers[job_id])
            raise JobInUse(job_id, shown, "is followed ('after') by the jobs")
