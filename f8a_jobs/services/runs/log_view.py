"""A run's log as the API shows it: one page of records after a cursor, and whether more can
come (the try still runs).

``try`` defaults to the latest: the run's own try count for a plain run, each task part's for
a workflow. A try has ended when its run has finished, when a later try started, or when its
row no longer runs it (it failed and waits for the next). A try's last records are committed
with its outcome, so once a try has ended, its log is complete.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, select

from f8a_jobs.core.clock import iso
from f8a_jobs.core.errors import F8aJobsError, RunNotFound
from f8a_jobs.core.states import FINISHED, WHOLE, RunStatus, TaskState
from f8a_jobs.services.runs.logs import Query, page
from f8a_jobs.storage.tables import job_runs, run_tasks

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


class TaskNotFound(F8aJobsError):
    status = 404

    def __init__(self, run_id: str, task: str) -> None:
        super().__init__(f"task: run {run_id!r} has no task {task!r}", "task")


@dataclass
class Page:
    records: list[dict[str, Any]]
    next: str | None  # None: the try ended and every record was read
    cursors: list[str]  # each record's: the page after it starts there


def read(engine: Engine, job_id: str, query: Query) -> Page:
    with engine.connect() as connection:
        run = _run(connection, job_id, query.run_id)
        workflow = run["graph"] is not None
        ended = _ended(connection, run, query, workflow)
        rows = page(connection, query, workflow)
    records = [record_json(row) for row in rows]
    more = len(rows) == query.limit or not ended
    cursor = str(rows[-1]["id"]) if rows else str(query.after)
    cursors = [str(row["id"]) for row in rows]
    return Page(records, cursor if more else None, cursors)


def after(query: Query, cursor: str | None) -> Query:
    return replace(query, after=int(cursor)) if cursor else query


def _run(connection: Connection, job_id: str, run_id: str) -> Mapping[Any, Any]:
    row = (
        connection.execute(
            select(job_runs.c.status, job_runs.c.tries, job_runs.c.graph).where(
                job_runs.c.run_id == run_id, job_runs.c.job_id == job_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise RunNotFound(job_id, run_id)
    return row


def _ended(connection: Connection, run: Mapping[str, Any], query: Query, workflow: bool) -> bool:
    """Whether the tries ``query`` reads have all ended (so their logs are complete)."""
    if query.task is not None and not workflow:
        raise TaskNotFound(query.run_id, query.task)
    if query.task is not None:
        units = _units(connection, query)
        if not units:
            raise TaskNotFound(query.run_id, query.task)
    if run["status"] in FINISHED or query.attempt is not None:
        return True
    if not workflow:
        return _try_ended(run["tries"] or 0, query.try_number, run["status"] == RunStatus.RUNNING)
    if query.task is None:
        return False
    return all(
        _try_ended(unit["tries"], query.try_number, unit["state"] == TaskState.RUNNING)
        for unit in units
    )


def _units(connection: Connection, query: Query) -> list[Mapping[Any, Any]]:
    statement = select(run_tasks.c.part, run_tasks.c.state, run_tasks.c.tries).where(
        run_tasks.c.run_id == query.run_id, run_tasks.c.task == query.task
    )
    if query.part is not None:
        statement = statement.where(run_tasks.c.part == query.part)
    return list(connection.execute(statement).mappings())


def _try_ended(tries: int, wanted: int | None, running: bool) -> bool:
    wanted = wanted or max(tries, 1)
    return tries > wanted or (tries == wanted and not running)


def record_json(row: Mapping[str, Any]) -> dict[str, Any]:
    record = {
        "ts": iso(row["ts"]),
        "level": logging.getLevelName(row["level"]),
        "logger": row["logger"],
        "message": row["message"],
        "task": row["task"] or None,
        "try": row["try_number"],
    }
    if row["part"] != WHOLE:
        record["part"] = row["part"]
    return record


def record_line(record: Mapping[str, Any]) -> str:
    """One record as a line of text (a traceback spans several)."""
    where = f"{record['task']} " if record["task"] else ""
    if "part" in record:
        where += f"part {record['part']} "
    return (
        f"{record['ts']} {record['level']} [{where}try {record['try']}] "
        f"{record['logger']}: {record['message']}\n"
    )
