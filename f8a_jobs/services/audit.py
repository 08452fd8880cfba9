"""The audit trail: one row per change to a job or to the service state, written by the
service that makes the change in the same transaction, so no change lands without its row.

A row says when, who (``Actor.user``), what (``action``), to which job, why (the caller's
optional ``reason``) and ``details``: the fields an edit changed with their old and new values
(secret kwargs masked as the API shows them), the run a run-now queued, and so on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from f8a_jobs.core.access import Actor
from f8a_jobs.core.clock import iso, utcnow
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.storage.bulk import insert_rows
from f8a_jobs.storage.tables import audit_log

ACTIONS = (
    "create",
    "edit",
    "permissions",
    "pause",
    "resume",
    "delete",
    "run",
    "retry",
    "cancel",
    "backfill",
    "clean_failed",
    "service_pause",
    "service_resume",
)
MAX_REASON = 1000
INSERT = insert(audit_log)  # built once: compiled once, run with each row's values
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tabs and line breaks are text


def parse_reason(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_REASON or CONTROL.search(value):
        raise InvalidInput(
            "reason", f"expected a text of at most {MAX_REASON} characters, no control characters"
        )
    return value


def record(
    connection: Connection,
    actor: Actor,
    action: str,
    job_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Write one audit row in the caller's transaction."""
    connection.execute(INSERT, entry(actor, action, job_id, details, now))


def entry(
    actor: Actor,
    action: str,
    job_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One audit row's values: ``record`` writes one, ``record_many`` a bulk change's."""
    return {
        "at": now or utcnow(),
        "user": actor.user,
        "action": action,
        "job_id": job_id,
        "reason": actor.reason,
        "details": dict(details) if details else None,
    }


def record_many(connection: Connection, entries: list[dict[str, Any]]) -> None:
    """Write ``entry`` rows in the caller's transaction in one round trip (COPY on
    PostgreSQL): a change to ten thousand jobs is audited job by job, not query by query."""
    insert_rows(connection, audit_log, entries)


@dataclass(frozen=True)
class AuditQuery:
    """A page of the trail, newest first: ``cursor`` is the ``next`` of the page before."""

    job_id: str | None = None
    user: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    cursor: str | None = None


def read(engine: Engine, query: AuditQuery) -> dict[str, Any]:
    """``{"entries": [...], "next": cursor or None}``."""
    conditions = []
    for column, value in (("job_id", query.job_id), ("user", query.user)):
        if value is not None:
            conditions.append(audit_log.c[column] == value)
    if query.action is not None:
        if query.action not in ACTIONS:
            raise InvalidInput("action", f"{query.action!r} is not one of {', '.join(ACTIONS)}")
        conditions.append(audit_log.c.action == query.action)
    if query.since is not None:
        conditions.append(audit_log.c.at >= query.since)
    if query.until is not None:
        conditions.append(audit_log.c.at < query.until)
    if query.cursor is not None:
        conditions.append(audit_log.c.id < _cursor(query.cursor))
    page = select(audit_log).where(*conditions).order_by(audit_log.c.id.desc())
    with engine.connect() as connection:
        rows = connection.execute(page.limit(query.limit + 1)).all()
    entries = [entry_json(row._mapping) for row in rows[: query.limit]]
    more = len(rows) > query.limit
    return {"entries": entries, "next": str(rows[query.limit - 1].id) if more else None}


def _cursor(value: str) -> int:
    if not value.isdigit():
        raise InvalidInput("cursor", f"expected the 'next' of an earlier page, got {value!r}")
    return int(value)


def entry_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": iso(row["at"]),
        "user": row["user"],
        "action": row["action"],
        "job_id": row["job_id"],
        "reason": row["reason"],
        "details": row["details"],
    }
