"""Workflow runs as the API shows them, and cancelling one (``retry`` retries one).

Cancel does not touch a running engine's state: it sets a flag the run's runner reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, select

from f8a_jobs.core.access import SERVICE, WRITE, Actor
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.errors import JobNotFound, RunConflict, RunNotFound
from f8a_jobs.core.states import FINISHED, WHOLE, RunStatus, TaskState
from f8a_jobs.services import access, alerts, audit, runs
from f8a_jobs.services.runs import IN_BROKER, tasks
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.tables import job_runs, jobs

TASK_FIELDS = (
    "state",
    "tries",
    "started_at",
    "finished_at",
    "error",
    "traceback",
    "result",
    "worker",
)


def get_run(engine: Engine, job_id: str, run_id: str) -> dict[str, Any]:
    with engine.connect() as connection:
        row = run_row(connection, job_id, run_id)
        rows = tasks.task_rows(connection, run_id) if row["graph"] else []
        raised = alerts.of_run(connection, run_id)
    # A failed run's traceback shows here, not in lists of runs (it can be long); a workflow
    # run's are its tasks'.
    traceback = row["traceback"]
    return {
        **runs.run_json(row),
        "traceback": traceback,
        "attempts": row["attempts"] or [],  # before a retry: history, oldest first
        "tasks": tasks_json(row["graph"], rows),
        "alerts": raised,
    }


def run_row(
    connection: Connection, job_id: str, run_id: str, lock: bool = False
) -> Mapping[str, Any]:
    """The run's row (``lock``: until the transaction ends); 404 naming the run or the job."""
    query = select(job_runs).where(job_runs.c.run_id == run_id, job_runs.c.job_id == job_id)
    row = connection.execute(query.with_for_update() if lock else query).mappings().first()
    if row is None:
        if connection.execute(select(jobs.c.job_id).where(jobs.c.job_id == job_id)).first():
            raise RunNotFound(job_id, run_id)
        raise JobNotFound(job_id)
    return dict(row)


def tasks_json(graph: Mapping[str, Any] | None, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per task in graph order; a for_each task lists its ``parts``."""
    if not graph:
        return []
    whole = {row["task"]: row for row in rows if row["part"] == WHOLE}
    parts: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["part"] != WHOLE:
            parts.setdefault(row["task"], []).append(_fields(row))
    entries = []
    for node in graph["tasks"]:
        row = whole.get(node["name"], {"state": TaskState.PENDING, "tries": 0})
        entry = {
            "name": node["name"],
            **_fields(row),
            "depends_on": node.get("depends_on", []),
            "handler": node.get("handler"),
            "job_id": node["job_id"],
        }
        if node.get("team_name"):
            entry["team_name"] = node["team_name"]
        if "for_each" in node:
            entry["parts"] = parts.get(node["name"], [])
        entries.append(entry)
    return entries


def _fields(row: Mapping[str, Any]) -> dict[str, Any]:
    values = {name: row.get(name) for name in TASK_FIELDS}
    for name in ("started_at", "finished_at"):
        moment = row.get(name)
        values[name] = moment.isoformat() if moment else None
    values["worker"] = values["worker"] or None  # "": its message waits in the broker
    values["waiting_for_worker"] = (
        values["state"] == TaskState.RUNNING and row.get("worker") == IN_BROKER
    )
    return values


def cancel_run(engine: Engine, job_id: str, run_id: str, actor: Actor = SERVICE) -> dict[str, Any]:
    """Cancel what has not started: a queued run (or a remote one no worker took) at once, a
    running workflow's pending tasks (the tasks running finish)."""
    now = utcnow()
    with wakeups.changing(engine, wakeups.RUNS) as connection:
        access.check(connection, actor.caller, job_id, WRITE)
        row = run_row(connection, job_id, run_id)
        if row["status"] in FINISHED:
            raise RunConflict(run_id, f"the run has already ended ({row['status']})")
        if (
            row["status"] != RunStatus.QUEUED
            and row["worker"] != IN_BROKER  # a remote run no worker took is cancelled at once
            and row["graph"] is None
            and not _is_workflow(connection, job_id)
        ):
            raise RunConflict(run_id, "a running run of a plain job cannot be cancelled")
        before = runs.request_cancel(connection, run_id, now)
        audit.record(connection, actor, "cancel", job_id, {"run_id": run_id, "status": before}, now)
    return get_run(engine, job_id, run_id)


def _is_workflow(connection: Connection, job_id: str) -> bool:
    query = select(jobs.c.workflow.is_not(None)).where(jobs.c.job_id == job_id)
    return bool(connection.execute(query).scalar())


def last_run_id(engine: Engine, job_id: str) -> str | None:
    """The newest run of a job that has a graph (it started)."""
    with engine.connect() as connection:
        query = (
            select(job_runs.c.run_id)
            .where(job_runs.c.job_id == job_id, job_runs.c.graph.is_not(None))
            .order_by(job_runs.c.started_at.desc())
            .limit(1)
        )
        return connection.execute(query).scalar()
