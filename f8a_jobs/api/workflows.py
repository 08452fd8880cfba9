"""Operations on workflow runs: a run with its tasks, retry, cancel, the graph, a dry run."""

from __future__ import annotations

from typing import Any

from f8a_jobs.api.auth import actor, caller, readable, writable
from f8a_jobs.api.context import Response, engine, reply
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.services import jobs, runs
from f8a_jobs.services.workflows import queries, render, retry
from f8a_jobs.services.workflows.dry_run import dry_run
from f8a_jobs.services.workflows.expand import expand, graph_json, job_lookup
from f8a_jobs.services.workflows.spec import WorkflowSpec


def post_run(job_id: str, dry_run: bool = False, reason: str | None = None) -> Response:
    if not dry_run:
        return reply({"run": runs.request_run(engine(), job_id, actor(reason))}, 202)
    return reply({"dry_run": {"job_id": job_id, "tasks": dry_run_tasks(job_id)}})


def dry_run_tasks(job_id: str) -> list[dict[str, Any]]:
    """A dry run runs the tasks' checks with the job's kwargs, secrets too: as a run, it
    needs the write right."""
    writable(job_id)
    job = _workflow_job(job_id, "dry_run")
    return dry_run(engine(), job)


def _workflow_job(job_id: str, field: str) -> dict[str, Any]:
    """The job's workflow as stored, not as ``GET /jobs/{id}`` shows it: its secret kwargs
    are checked with their values, not with ``***``."""
    workflow = jobs.stored_workflow(engine(), job_id, caller())
    if workflow is None:
        raise InvalidInput(field, f"job {job_id!r} runs a handler, not a workflow of tasks")
    return {"job_id": job_id, "workflow": workflow}


def get_run(job_id: str, run_id: str) -> Response:
    readable(job_id)
    return reply({"run": queries.get_run(engine(), job_id, run_id)})


def post_retry(
    job_id: str, run_id: str, definition: str = "snapshot", reason: str | None = None
) -> Response:
    run = retry.retry_run(engine(), job_id, run_id, definition, actor(reason))
    return reply({"run": run}, 202)


def post_cancel(job_id: str, run_id: str, reason: str | None = None) -> Response:
    return reply({"run": queries.cancel_run(engine(), job_id, run_id, actor(reason))}, 202)


def get_graph(job_id: str, format: str = "json", run_id: str | None = None) -> Any:
    """The expanded DAG with the states of ``run_id``, or of the last run that started."""
    readable(job_id)
    run_id = run_id or queries.last_run_id(engine(), job_id)
    if run_id:
        run = queries.get_run(engine(), job_id, run_id)
        tasks = [_graph_task(task) for task in run["tasks"]]
    else:
        job = _workflow_job(job_id, "job_id")
        workflow = WorkflowSpec.from_json(job["workflow"])
        with engine().connect() as connection:
            nodes = expand(job_id, workflow, job_lookup(connection), 10**9)
        tasks = [
            {"name": node["name"], "depends_on": node.get("depends_on", []), "state": None}
            for node in graph_json(nodes, workflow)["tasks"]
        ]
    shown = render.render(tasks, format)
    if isinstance(shown, dict):
        return reply({**shown, "job_id": job_id, "run_id": run_id})
    return shown, 200, {"Content-Type": "text/plain"}


def _graph_task(task: dict[str, Any]) -> dict[str, Any]:
    return {"name": task["name"], "depends_on": task["depends_on"], "state": task["state"]}
