"""Who the caller is (``/whoami``), and who did what: a job's history and the whole trail."""

from __future__ import annotations

from datetime import datetime

import connexion

from f8a_jobs.api.auth import caller, readable
from f8a_jobs.api.context import Response, engine, reply
from f8a_jobs.core.errors import Forbidden
from f8a_jobs.core.fields import parse_moment
from f8a_jobs.services import audit


def get_whoami() -> Response:
    return reply(caller().json())


def get_history(
    job_id: str, limit: int = 100, cursor: str | None = None, action: str | None = None
) -> Response:
    """A job's changes, newest first: for those who may read the job, since it was created
    (an earlier job of the same id, deleted, is not this one: admins read it in ``/audit``)."""
    created = readable(job_id)
    query = audit.AuditQuery(
        job_id=job_id, action=action, since=created, limit=limit, cursor=cursor
    )
    return reply(audit.read(engine(), query))


def get_audit(
    job_id: str | None = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Response:
    """The whole trail, for admins. The ``user`` filter is read from the query string: Connexion
    passes the caller's name to a parameter called ``user``."""
    if not caller().admin:
        raise Forbidden("audit", "only an admin may read the whole audit trail")
    user = connexion.request.query_params.get("user")
    query = audit.AuditQuery(
        job_id, user, action, _optional(since, "since"), _optional(until, "until"), limit, cursor
    )
    return reply(audit.read(engine(), query))


def _optional(value: str | None, field: str) -> datetime | None:
    return None if value is None else parse_moment(value, field)
