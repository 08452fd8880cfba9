"""Permissions as the database applies them: which jobs a caller may read or write, as a
condition for queries over many jobs, and a check for one job. A job the caller may not read
is "not found" (404), as if it did not exist; one they may read but not change is 403."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, and_, or_, select, true

from f8a_jobs.core.access import GROUP, OTHERS, OWNER, READ, RIGHT_NAMES, WRITE, Caller, allows
from f8a_jobs.core.errors import Forbidden, JobNotFound
from f8a_jobs.storage.tables import jobs

ACCESS_COLUMNS = (jobs.c.job_id, jobs.c.owner, jobs.c.group_name, jobs.c.permissions)
CHECKED = (*ACCESS_COLUMNS, jobs.c.created_at)


def _letter(start: int, right: str) -> str:
    """A LIKE pattern: ``right`` at its place in the pair starting at ``start``."""
    place = start + (right == WRITE)
    return "_" * place + right + "_" * (5 - place)


def allowed(caller: Caller, right: str = READ) -> ColumnElement[bool]:
    """The jobs (rows of ``jobs``) on which ``caller`` has ``right``."""
    if caller.admin:
        return true()
    mine = jobs.c.owner == caller.user
    in_group = jobs.c.group_name.in_(caller.groups) if caller.groups else None
    others = ~mine if in_group is None else and_(~mine, or_(~in_group, jobs.c.group_name.is_(None)))
    clauses = [and_(mine, jobs.c.permissions.like(_letter(OWNER, right)))]
    if in_group is not None:
        clauses.append(and_(~mine, in_group, jobs.c.permissions.like(_letter(GROUP, right))))
    clauses.append(and_(others, jobs.c.permissions.like(_letter(OTHERS, right))))
    return or_(*clauses)


def check(
    connection: Connection, caller: Caller, job_id: str, right: str = READ
) -> Mapping[Any, Any]:
    """The job's access fields if ``caller`` has ``right`` on it: a 404 when they may not
    even read it (or there is no such job), a 403 naming the right otherwise. A write check
    locks the job's row until the transaction ends: permissions changed meanwhile wait."""
    query = select(*CHECKED).where(jobs.c.job_id == job_id)
    row = connection.execute(query.with_for_update() if right == WRITE else query).first()
    return checked_row(caller, None if row is None else row._mapping, job_id, right)


def checked_row(
    caller: Caller, job: Mapping[Any, Any] | None, job_id: str, right: str = READ
) -> Mapping[Any, Any]:
    """``check`` on a row read already (with ``ACCESS_COLUMNS``; None: no such job): a bulk
    write reads its jobs in one query, then holds each to the rules of a single write."""
    if job is None or not permits(caller, job, READ):
        raise JobNotFound(job_id)
    if right != READ and not permits(caller, job, right):
        raise Forbidden(
            "job_id",
            f"{caller.user!r} may read job {job_id!r} but lacks the {RIGHT_NAMES[right]} "
            f"right ({job['permissions']}, owner {job['owner']!r}, group {job['group_name']!r})",
        )
    return job


def readable_row(caller: Caller, row: Row[Any] | None, job_id: str) -> Mapping[Any, Any]:
    """A job's row (read with ``ACCESS_COLUMNS``) if ``caller`` may read it; else a 404, as
    if there were no such job."""
    if row is None or not permits(caller, row._mapping, READ):
        raise JobNotFound(job_id)
    return row._mapping


def readable(connection: Connection, caller: Caller, job_id: str) -> bool:
    """Whether the job exists for ``caller``."""
    if caller.admin:
        return True
    row = connection.execute(select(*ACCESS_COLUMNS).where(jobs.c.job_id == job_id)).first()
    return row is not None and permits(caller, row._mapping, READ)


def visible(connection: Connection, caller: Caller, job_ids: list[str]) -> list[str]:
    """Those of ``job_ids`` the caller may read (an error names no job they may not see)."""
    if caller.admin or not job_ids:
        return job_ids
    query = select(jobs.c.job_id).where(jobs.c.job_id.in_(job_ids), allowed(caller, READ))
    readable = set(connection.execute(query).scalars())
    shown = [job_id for job_id in job_ids if job_id in readable]
    hidden = len(job_ids) - len(shown)
    return shown + ([f"{hidden} more you cannot see"] if hidden else [])


def permits(caller: Caller, job: Mapping[Any, Any], right: str) -> bool:
    """``job``: a row with ``owner``, ``group_name`` and ``permissions``."""
    return allows(caller, job["owner"], job["group_name"], job["permissions"], right)
