"""``POST /jobs/{id}/run?dry_run=true``: DoJobber's dry run. Only the checks run.

Tasks are visited in dependency order, each with the kwargs a run would give it. A task whose
handler has a check that passes would be ``satisfied``, and its result is what the check found
(``check_found``, as in a run): later tasks' ``$result``s read it. One whose check fails (or
that has no check) ``would_run``; a task downstream of one that would run is ``not_checked``:
its check would see the world before its upstream ran, and the results it reads are not known.
A ``for_each`` task whose items are known (a list in the definition, or a satisfied task's
result; a ``$filter`` is read by a run only) lists its ``parts``, each checked with its item,
and is satisfied when all are. Nothing is stored and nothing executes.
"""

from __future__ import annotations

import graphlib
from typing import Any

from sqlalchemy import Engine

from f8a_jobs import filters
from f8a_jobs.core.json_values import result_json
from f8a_jobs.core.settings import get_settings
from f8a_jobs.handlers.base import BaseHandler, check_found
from f8a_jobs.handlers.registry import get_handler
from f8a_jobs.services.workflows.expand import JOB_END, Node, check_acyclic, expand, job_lookup
from f8a_jobs.services.workflows.parts import split_problem
from f8a_jobs.services.workflows.results import part_kwargs, resolve_results
from f8a_jobs.services.workflows.spec import WorkflowSpec

SATISFIED, WOULD_RUN, NOT_CHECKED, NOTHING = (
    "satisfied",
    "would_run",
    "not_checked",
    "nothing_to_run",
)
Verdict = dict[str, Any]  # would, error (and a for_each task's parts)


class _Found:
    """The results a dry run knows, read by ``$result`` as a run's (``results.Results``): what
    satisfied tasks' checks found, a group's ``None``, an inlined job's leaves' results."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = {node.name: node for node in nodes}
        self.results: dict[str, Any] = {}

    def result_of(self, name: str) -> Any:
        node = self.nodes[name]
        if node.kind == JOB_END:
            prefix = f"{name}/"
            return {leaf.removeprefix(prefix): self.result_of(leaf) for leaf in node.depends_on}
        return self.results[name]


def dry_run(engine: Engine, job: dict[str, Any]) -> list[dict[str, Any]]:
    workflow = WorkflowSpec.from_json(job["workflow"])
    with engine.connect() as connection:
        nodes = expand(
            job["job_id"], workflow, job_lookup(connection), get_settings().workflow_max_tasks
        )
    check_acyclic(nodes)
    found = _Found(nodes)
    verdicts: dict[str, Verdict] = {}
    order = graphlib.TopologicalSorter(
        {node.name: node.depends_on for node in nodes}
    ).static_order()
    for name in order:
        node = found.nodes[name]
        if any(verdicts[dep]["would"] in (WOULD_RUN, NOT_CHECKED) for dep in node.depends_on):
            verdicts[name] = {"would": NOT_CHECKED, "error": None}
        else:
            verdicts[name] = _verdict(engine, node, found)
    return [{"name": node.name, **verdicts[node.name]} for node in nodes]


def _verdict(engine: Engine, node: Node, found: _Found) -> Verdict:
    """A task whose upstream would not run: its kwargs (and items) are known."""
    if node.handler is None:
        found.results[node.name] = None
        return {"would": NOTHING, "error": None}
    handler = get_handler(node.handler)(node.job_id, engine=engine)
    try:
        kwargs = resolve_results(found, node.kwargs)
        items = None if node.for_each is None else _items(found, node.for_each)
    except LookupError as error:  # a path the result lacks, or a $filter: a run will tell
        return {"would": WOULD_RUN, "error": str(error)}
    if items is None:
        verdict, result = _check(handler, kwargs)
    else:
        verdict, result = _check_parts(handler, kwargs, items)
    if verdict["would"] != WOULD_RUN:
        found.results[node.name] = result
    return verdict


def _items(found: _Found, for_each: Any) -> list[Any]:
    """A for_each's items, as a run would split them; ``LookupError`` when a run only knows."""
    items = resolve_results(found, for_each)
    if isinstance(items, dict) and filters.is_filter(items):
        raise LookupError("its for_each items come from a $filter, read when the task starts")
    problem = split_problem(items, get_settings().for_each_max_parts)
    if problem is not None:
        raise LookupError(problem)
    return list(items)


def _check_parts(
    handler: BaseHandler, kwargs: dict[str, Any], items: list[Any]
) -> tuple[Verdict, Any]:
    """Each part checked with its item; the task is satisfied when every part is."""
    parts, results = [], []
    for index, item in enumerate(items):
        verdict, result = _check(handler, {**kwargs, **part_kwargs(item)})
        parts.append({"part": index, "item": item, **verdict})
        results.append(result)
    waiting = [part for part in parts if part["would"] == WOULD_RUN]
    if waiting:
        first = waiting[0]
        error = f"{len(waiting)} of {len(parts)} parts would run; part {first['part']}: "
        error += first["error"]
        return {"would": WOULD_RUN, "error": error, "parts": parts}, None
    return {"would": SATISFIED if parts else NOTHING, "error": None, "parts": parts}, results


def _check(handler: BaseHandler, kwargs: dict[str, Any]) -> tuple[Verdict, Any]:
    """One check, read as a run's try reads it: the verdict, and what the check found."""
    if not handler.checks():
        return {"would": WOULD_RUN, "error": "the handler has no check"}, None
    try:
        passed, result = check_found(handler.check(**kwargs))
        result = result_json(result, get_settings().result_max_bytes)
    except Exception as failure:
        return {"would": WOULD_RUN, "error": f"{type(failure).__name__}: {failure}"}, None
    if not passed:
        return {"would": WOULD_RUN, "error": "check returned False"}, None
    return {"would": SATISFIED, "error": None}, result
