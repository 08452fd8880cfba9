"""``GET /runs``: runs across jobs, newest first, filtered, in pages a cursor continues.

The cursor is the last run's ``(scheduled_for, run_id)``; the next page starts below it (a
keyset, not an offset), so a page deep in a million runs costs what the first costs: the
index on ``(scheduled_for, run_id)`` is read from that key on. Only the runs of jobs the
caller may read are found (an admin's search also finds the runs of deleted jobs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, literal, select, tuple_

from f8a_jobs.core.access import READ, SERVICE, Caller
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.states import RunStatus, Trigger
from f8a_jobs.services import access
from f8a_jobs.services.labels import labelled
from f8a_jobs.services.runs.queries import SHOWN, run_json, started_by_condition
from f8a_jobs.storage.tables import job_runs, jobs

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RunSearch:
    status: str | None = None
    job_id: str | None = None  # a prefix
    handler: str | None = None  # the job's handler now
    trigger: str | None = None
    started_by: str | None = None
    scheduled_from: datetime | None = None  # included
    scheduled_until: datetime | None = None  # excluded
    finished_from: datetime | None = None
    finished_until: datetime | None = None
    labels: tuple[str, ...] = ()  # all of them, on the job now
    limit: int = 100
    cursor: str | None = None


def search_runs(
    engine: Engine, search: RunSearch, caller: Caller = SERVICE.caller
) -> dict[str, Any]:
    """``{"runs": [...], "next": cursor or None}``."""
    order = (job_runs.c.scheduled_for.desc(), job_runs.c.run_id.desc())
    query = select(*SHOWN).where(*_conditions(search, caller)).order_by(*order)
    with engine.connect() as connection:
        rows = connection.execute(query.limit(search.limit + 1)).all()
    page = rows[: search.limit]
    more = len(rows) > search.limit
    return {
        "runs": [run_json(row._mapping) for row in page],
        "next": cursor_of(page[-1].scheduled_for, page[-1].run_id) if more else None,
    }


def _conditions(search: RunSearch, caller: Caller) -> list[ColumnElement[bool]]:
    runs = job_runs.c
    where: list[ColumnElement[bool]] = []
    if search.status is not None:
        where.append(runs.status == _one_of(search.status, RunStatus, "status"))
    if search.trigger is not None:
        where.append(runs.trigger == _one_of(search.trigger, Trigger, "trigger"))
    if search.job_id is not None:
        where.append(runs.job_id.startswith(search.job_id, autoescape=True))
    if search.started_by is not None:
        where.append(started_by_condition(search.started_by))
    where += [labelled(runs.job_id, name) for name in search.labels]
    if search.handler is not None:
        where.append(runs.job_id.in_(select(jobs.c.job_id).where(jobs.c.handler == search.handler)))
    for column, start, end in (
        (runs.scheduled_for, search.scheduled_from, search.scheduled_until),
        (runs.finished_at, search.finished_from, search.finished_until),
    ):
        where += [column >= start] if start is not None else []
        where += [column < end] if end is not None else []
    if search.cursor is not None:
        moment, run_id = _position(search.cursor)
        key = tuple_(literal(moment, runs.scheduled_for.type), literal(run_id, runs.run_id.type))
        where.append(tuple_(runs.scheduled_for, runs.run_id) < key)
    if not caller.admin:
        where.append(runs.job_id.in_(select(jobs.c.job_id).where(access.allowed(caller, READ))))
    return where


def _one_of(value: str, kind: Any, field: str) -> str:
    if value not in tuple(kind):
        raise InvalidInput(field, f"{value!r} is not one of {', '.join(kind)}")
    return value


def cursor_of(scheduled_for: datetime, run_id: str) -> str:
    """The cursor of the page that starts after this run."""
    return f"{(scheduled_for - EPOCH) // timedelta(microseconds=1)}.{run_id}"


def _position(cursor: str) -> tuple[datetime, str]:
    micros, _, run_id = cursor.partition(".")
    try:
        if micros.isdigit() and run_id.isalnum():
            return EPOCH + timedelta(microseconds=int(micros)), run_id
    except OverflowError:  # past the year 9999: no run is there
        pass
    raise InvalidInput("cursor", f"expected the 'next' of an earlier page, got {cursor!r}")
