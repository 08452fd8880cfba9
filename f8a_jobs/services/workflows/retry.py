"""Retrying a finished workflow run: its failed, upstream-failed and cancelled tasks run again,
the others keep their results, and the attempt that ended is kept as history.

By default a retry runs the definition stored with the run (its graph, fixed when it started):
what failed is tried again as it was. ``definition="current"`` expands the job as it is now,
for a retry after a fix: the tasks that succeeded and are still in it keep their results, the
rest (and tasks new to it) run.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from f8a_jobs.core.access import SERVICE, WRITE, Actor
from f8a_jobs.core.clock import iso, utcnow
from f8a_jobs.core.errors import InvalidInput, RunConflict
from f8a_jobs.core.settings import get_settings
from f8a_jobs.core.states import DONE, WHOLE, RunStatus
from f8a_jobs.services import access, audit, runs
from f8a_jobs.services.runs import logs as run_logs
from f8a_jobs.services.runs import tasks
from f8a_jobs.services.workflows.expand import check_acyclic, expand, graph_json, job_lookup
from f8a_jobs.services.workflows.queries import get_run, run_row
from f8a_jobs.storage import wakeups

DEFINITIONS = ("snapshot", "current")
TASK_HISTORY = ("state", "tries", "started_at", "finished_at", "error", "worker")


def retry_run(
    engine: Engine, job_id: str, run_id: str, definition: str = "snapshot", actor: Actor = SERVICE
) -> Any:
    """Queue a failed or cancelled workflow run again; returns the run as the API shows it.
    The run is started by the retrying user now; its attempts keep who started each."""
    if definition not in DEFINITIONS:
        raise InvalidInput("definition", f"{definition!r} is not one of {', '.join(DEFINITIONS)}")
    now = utcnow()
    with wakeups.changing(engine, wakeups.RUNS) as connection:
        access.check(connection, actor.caller, job_id, WRITE)
        row = run_row(connection, job_id, run_id, lock=True)
        if row["graph"] is None:
            raise RunConflict(run_id, "only a workflow run that started can be retried")
        if row["status"] not in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise RunConflict(
                run_id, f"the run is {row['status']}; only a failed or cancelled run is retried"
            )
        rows = tasks.task_rows(connection, run_id)
        graph = _current_graph(connection, job_id) if definition == "current" else None
        names = {node["name"] for node in (graph or row["graph"])["tasks"]}
        attempt = _ended_attempt(row, rows, names, now, definition)
        if graph is None:
            tasks.reset_for_retry(connection, run_id, now)
        else:
            tasks.reset_to_graph(connection, run_id, [node["name"] for node in graph["tasks"]])
        attempts = [*(row["attempts"] or []), attempt]
        runs.requeue(connection, run_id, attempts, actor.caller.started_by, graph)
        run_logs.keep_as_attempt(connection, run_id, attempt["attempt"])
        details = {"run_id": run_id, "attempt": attempt["attempt"], "definition": definition}
        audit.record(connection, actor, "retry", job_id, details, now)
    return get_run(engine, job_id, run_id)


def _current_graph(connection: Connection, job_id: str) -> dict[str, Any]:
    """The job's workflow as it is now, expanded as a new run would expand it."""
    lookup = job_lookup(connection)
    source = lookup(job_id)
    if source is None or source.workflow is None:
        raise RunConflict(job_id, "the job no longer runs a workflow of tasks")
    max_tasks = get_settings().workflow_max_tasks
    nodes = expand(job_id, source.workflow, lookup, max_tasks, source.secret_kwargs)
    check_acyclic(nodes)
    return graph_json(nodes, source.workflow)


def _ended_attempt(
    run: Mapping[str, Any],
    rows: list[dict[str, Any]],
    names: set[str],
    now: datetime,
    definition: str,
) -> dict[str, Any]:
    """The attempt that ended, as history: its times and error, and the tries of every task
    the retry changes (all but those that succeeded and stay)."""
    changed = [row for row in rows if row["state"] not in DONE or row["task"] not in names]
    return {
        "attempt": len(run["attempts"] or []) + 1,
        "status": run["status"],
        "started_by": run["started_by"],
        "started_at": iso(run["started_at"]),
        "finished_at": iso(run["finished_at"]),
        "error": run["error"],
        "tasks": [_task_history(row) for row in changed],
        "retried_at": iso(now),
        "retried_with": definition,
    }


def _task_history(row: Mapping[str, Any]) -> dict[str, Any]:
    entry = {"name": row["task"], **{name: row[name] for name in TASK_HISTORY}}
    if row["part"] != WHOLE:
        entry["part"] = row["part"]
    for name in ("started_at", "finished_at"):
        entry[name] = iso(entry[name])
    entry["worker"] = entry["worker"] or None
    return entry
