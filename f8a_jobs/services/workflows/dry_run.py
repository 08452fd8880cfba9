"""``POST /jobs/{id}/run?dry_run=true``: DoJobber's dry run. Only the checks run.

Tasks are visited in dependency order. A task whose handler has a check that passes would be
``satisfied``; one whose check fails (or that has no check) ``would_run``; a task downstream of
one that would run is ``not_checked``: its check would see the world before its upstream ran.
Nothing is stored and nothing executes.
"""

from __future__ import annotations

import graphlib
from typing import Any

from sqlalchemy import Engine

from f8a_jobs.core.settings import get_settings
from f8a_jobs.handlers.registry import get_handler
from f8a_jobs.services.workflows.expand import Node, check_acyclic, expand, job_lookup
from f8a_jobs.services.workflows.spec import RESULT_KEY, WorkflowSpec, result_references

SATISFIED, WOULD_RUN, NOT_CHECKED, NOTHING = (
    "satisfied",
    "would_run",
    "not_checked",
    "nothing_to_run",
)


def dry_run(engine: Engine, job: dict[str, Any]) -> list[dict[str, Any]]:
    workflow = WorkflowSpec.from_json(job["workflow"])
    with engine.connect() as connection:
        nodes = expand(
            job["job_id"], workflow, job_lookup(connection), get_settings().workflow_max_tasks
        )
    check_acyclic(nodes)
    by_name = {node.name: node for node in nodes}
    verdicts: dict[str, dict[str, Any]] = {}
    order = graphlib.TopologicalSorter(
        {node.name: node.depends_on for node in nodes}
    ).static_order()
    for name in order:
        node = by_name[name]
        upstream_runs = any(
            verdicts[dep]["would"] in (WOULD_RUN, NOT_CHECKED) for dep in node.depends_on
        )
        verdicts[name] = _verdict(engine, node, upstream_runs)
    return [{"name": node.name, **verdicts[node.name]} for node in nodes]


def _verdict(engine: Engine, node: Node, upstream_runs: bool) -> dict[str, Any]:
    if node.handler is None:
        return {"would": NOT_CHECKED if upstream_runs else NOTHING, "error": None}
    if upstream_runs:
        return {"would": NOT_CHECKED, "error": None}
    handler_class = get_handler(node.handler)
    if not handler_class.checks():
        return {"would": WOULD_RUN, "error": "the handler has no check"}
    if node.for_each is not None or any(result_references(node.kwargs, "")):
        return {"would": WOULD_RUN, "error": f"its kwargs need a {RESULT_KEY} or for_each item"}
    handler = handler_class(node.job_id, engine=engine)
    try:
        passed = handler.check(**node.kwargs) is not False
        error = None if passed else "check returned False"
    except Exception as failure:
        passed, error = False, f"{type(failure).__name__}: {failure}"
    return {"would": SATISFIED if passed else WOULD_RUN, "error": error}
