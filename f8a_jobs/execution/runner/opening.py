"""Workflow runs as the runner opens them: a new run expands its job's graph (fixed from then
on); a retried run, and every run under way when a term starts, resumes from its rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from f8a_jobs.core.policy import RunPolicy
from f8a_jobs.core.states import RunStatus
from f8a_jobs.services import runs
from f8a_jobs.services.runs import ClaimedRun, Unit, tasks
from f8a_jobs.services.workflows.engine import WorkflowRun
from f8a_jobs.services.workflows.expand import (
    check_acyclic,
    expand,
    graph_json,
    graph_nodes,
    job_lookup,
)
from f8a_jobs.services.workflows.spec import WorkflowSpec


def new_run(
    engine: Engine, claimed: ClaimedRun, now: datetime, max_tasks: int, max_parts: int
) -> tuple[WorkflowRun, dict[str, Any]]:
    """A run that starts: its graph expanded (``InvalidInput`` when it cannot start) and
    stored with it, its roots ready."""
    workflow = WorkflowSpec.from_json(claimed.workflow or {})
    with engine.connect() as connection:
        secrets = RunPolicy.of(claimed.policy).secret_kwargs
        nodes = expand(claimed.job_id, workflow, job_lookup(connection), max_tasks, secrets)
    check_acyclic(nodes)
    deadline = now + timedelta(seconds=workflow.timeout) if workflow.timeout else None
    run = WorkflowRun(
        claimed.run_id,
        claimed.job_id,
        claimed.scheduled_for,
        nodes,
        workflow.max_concurrent,
        deadline,
        workflow.timeout,
        max_parts,
        started_at=now,
    )
    run.begin(now)
    return run, graph_json(nodes, workflow)


def cannot_start(claimed: ClaimedRun, detail: str, now: datetime) -> dict[str, Any]:
    """The end of a run whose graph cannot be expanded (a job inside it is gone, say)."""
    return {
        "run_id": claimed.run_id,
        "job_id": claimed.job_id,
        "status": RunStatus.FAILED,
        "error": f"the workflow cannot start: {detail}",
        "result": None,
        "finished_at": now,
    }


def resumed(engine: Engine, run_ids: list[str], now: datetime, max_parts: int) -> list[WorkflowRun]:
    """Retried runs this term claimed, from their rows."""
    with engine.connect() as connection:
        rows = runs.workflow_rows(connection, run_ids)
        units = tasks.load_units(connection, run_ids)
    return [_restored(row, units[row.run_id], now, max_parts) for row in rows]


def adopted(
    engine: Engine, epoch: int, owner: str, now: datetime, max_parts: int
) -> list[WorkflowRun]:
    """Every workflow run under way, which a new term takes over and resumes."""
    with engine.begin() as connection:
        rows = runs.adopt_workflows(connection, epoch, owner)
        units = tasks.load_units(connection, [row.run_id for row in rows])
    return [_restored(row, units[row.run_id], now, max_parts) for row in rows]


def _restored(row: Any, units: list[Unit], now: datetime, max_parts: int) -> WorkflowRun:
    graph = row.graph
    timeout = graph.get("timeout")
    started = row.started_at or now
    run = WorkflowRun(
        row.run_id,
        row.job_id,
        row.scheduled_for,
        graph_nodes(graph),
        graph["max_concurrent"],
        started + timedelta(seconds=timeout) if timeout else None,
        timeout,
        max_parts,
        started_at=started,
    )
    run.restore(units, now)
    return run
