"""Jobs inside jobs: a workflow's ``job`` tasks inlined into one graph (dagobah's snapshot).

A task naming a plain job becomes a task running that job's handler with the job's kwargs
under the task's own. A task naming a workflow becomes that workflow's tasks, named
``"<task>/<inner>"``: the inner roots take the task's dependencies, and a node named ``<task>``
(which runs nothing) follows the inner leaves, so the task's dependents wait for all of it. The
same job may appear any number of times; a job met again *inside itself* is a loop, found with
the chain of jobs being expanded (dagobah's context set) and named in the error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, select

from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.fields import NORMAL, PRIORITIES
from f8a_jobs.core.policy import Retry
from f8a_jobs.services.workflows.spec import (
    RESULT_KEY,
    TaskSpec,
    WorkflowSpec,
    check_kwargs,
    compact_json,
    find_cycle,
    referenced_task,
)
from f8a_jobs.storage.tables import jobs

TASK, GROUP, JOB_END = "task", "group", "job"


@dataclass(frozen=True)
class JobSource:
    """What expansion needs of a job: its handler and kwargs, or its workflow."""

    job_id: str
    handler: str
    kwargs: dict[str, Any]
    workflow: WorkflowSpec | None
    secret_kwargs: tuple[str, ...] = ()


Lookup = Callable[[str], JobSource | None]


@dataclass(frozen=True)
class Node(Retry):
    """One task of an expanded graph: what a run stores and the engine runs."""

    name: str
    job_id: str  # the job whose handler (or workflow) it comes from
    handler: str | None = None  # None: runs nothing (a group, or the end of an inlined job)
    kwargs: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    fail_workflow_on_error: bool = True
    timeout: float | None = None
    for_each: Any = None
    team_name: str | None = None
    queue: str | None = None  # remote execution: the broker queue its tries go to
    priority: int = NORMAL  # its ready tries start before lower ones (core/fields.py)
    kind: str = TASK
    secret_kwargs: tuple[str, ...] = ()  # its job's, and those of the jobs it is inside

    def json(self) -> dict[str, Any]:
        data = compact_json(self, Node(self.name, self.job_id), ("name", "job_id"))
        if self.secret_kwargs:
            data["secret_kwargs"] = list(self.secret_kwargs)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Node:
        secrets = tuple(data.get("secret_kwargs", ()))
        return cls(
            **{**data, "depends_on": tuple(data.get("depends_on", ())), "secret_kwargs": secrets}
        )


class JobLoop(InvalidInput):
    """A job contains itself: ``chain`` is the loop, ``a → b → a``."""

    def __init__(self, path: str, chain: list[str]) -> None:
        super().__init__(path, f"a job may not contain itself: {' → '.join(chain)}")
        self.chain = chain


def expand(
    job_id: str,
    workflow: WorkflowSpec,
    lookup: Lookup,
    max_tasks: int,
    secrets: tuple[str, ...] = (),
) -> list[Node]:
    """The graph a run of ``job_id`` runs, every job inside it inlined; ``InvalidInput`` when a
    job is unknown, loops, or the graph grows beyond ``max_tasks``. ``secrets``: the job's
    ``secret_kwargs``; each node keeps them and those of the jobs inlined into it."""
    nodes = _expand(job_id, workflow, lookup, (job_id,), "tasks", secrets)
    if len(nodes) > max_tasks:
        raise InvalidInput(
            "tasks",
            f"{len(nodes)} tasks once the jobs inside are inlined; at most {max_tasks} "
            "(F8A_JOBS_WORKFLOW_MAX_TASKS)",
        )
    return nodes


def _expand(
    job_id: str,
    workflow: WorkflowSpec,
    lookup: Lookup,
    chain: tuple[str, ...],
    path: str,
    secrets: tuple[str, ...],
) -> list[Node]:
    nodes: list[Node] = []
    for index, task in enumerate(workflow.tasks):
        where = f"{path}[{index}]"
        if task.job is None:
            nodes.append(_node(task, job_id, task.handler, task.kwargs, secrets))
            continue
        source = lookup(task.job)
        if source is None:
            raise InvalidInput(f"{where}.job", f"no job with id {task.job!r}")
        if source.job_id in chain:
            loop = [*chain[chain.index(source.job_id) :], source.job_id]
            raise JobLoop(f"{where}.job", loop)
        inner_secrets = tuple(dict.fromkeys((*secrets, *source.secret_kwargs)))
        if source.workflow is None:
            kwargs = {**source.kwargs, **task.kwargs}
            check_kwargs(source.handler, kwargs, task.for_each, where)
            nodes.append(_node(task, source.job_id, source.handler, kwargs, inner_secrets))
            continue
        if task.kwargs or task.for_each is not None:
            raise InvalidInput(
                f"{where}.kwargs" if task.kwargs else f"{where}.for_each",
                f"job {task.job!r} is a workflow: give its tasks their kwargs there",
            )
        inner = _expand(
            source.job_id,
            source.workflow,
            lookup,
            (*chain, source.job_id),
            where,
            inner_secrets,
        )
        nodes.extend(_inlined(task, inner))
    return nodes


def _node(
    task: TaskSpec,
    job_id: str,
    handler: str | None,
    kwargs: dict[str, Any],
    secrets: tuple[str, ...],
) -> Node:
    return Node(
        name=task.name,
        job_id=job_id,
        handler=handler,
        kwargs=kwargs,
        depends_on=task.depends_on,
        fail_workflow_on_error=task.fail_workflow_on_error,
        tries=task.tries,
        retry_delay=task.retry_delay,
        retry_backoff=task.retry_backoff,
        timeout=task.timeout,
        for_each=task.for_each,
        team_name=task.team_name,
        queue=task.queue,
        priority=PRIORITIES[task.priority],
        kind=TASK if handler else GROUP,
        secret_kwargs=secrets,
    )


def _inlined(task: TaskSpec, inner: list[Node]) -> list[Node]:
    """``inner`` renamed under ``task``, hung between its dependencies and its end node."""
    prefix = f"{task.name}/"
    names = {node.name for node in inner}
    depended = {name for node in inner for name in node.depends_on}
    nodes = [
        replace(
            node,
            name=prefix + node.name,
            depends_on=tuple(prefix + name for name in node.depends_on) or task.depends_on,
            kwargs=_renamed(node.kwargs, prefix, names),
            for_each=_renamed(node.for_each, prefix, names),
        )
        for node in inner
    ]
    leaves = tuple(prefix + node.name for node in inner if node.name not in depended)
    end = Node(
        name=task.name,
        job_id=task.job or "",
        depends_on=leaves,
        fail_workflow_on_error=task.fail_workflow_on_error,
        team_name=task.team_name,
        kind=JOB_END,
    )
    return [*nodes, end]


def _renamed(value: Any, prefix: str, names: set[str]) -> Any:
    """``$result`` references inside an inlined job, pointed at the inlined names."""
    if isinstance(value, dict):
        if set(value) == {RESULT_KEY} and referenced_task(value[RESULT_KEY], names):
            return {RESULT_KEY: prefix + value[RESULT_KEY]}
        return {key: _renamed(item, prefix, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, prefix, names) for item in value]
    return value


def graph_json(nodes: list[Node], workflow: WorkflowSpec) -> dict[str, Any]:
    """What a run stores: the expanded tasks and the workflow-wide limits."""
    return {
        "tasks": [node.json() for node in nodes],
        "max_concurrent": workflow.max_concurrent,
        "timeout": workflow.timeout,
    }


def graph_nodes(graph: Mapping[str, Any]) -> list[Node]:
    return [Node.from_json(item) for item in graph["tasks"]]


def check_acyclic(nodes: list[Node]) -> None:
    """A run checks its graph again when it starts (the jobs inside may have changed)."""
    cycle = find_cycle({node.name: node.depends_on for node in nodes})
    if cycle:
        raise InvalidInput("tasks", f"the dependencies form a cycle: {' → '.join(cycle)}")


def job_lookup(connection: Connection) -> Lookup:
    """Jobs as expansion reads them: from the database, in the caller's transaction."""

    def lookup(job_id: str) -> JobSource | None:
        row = connection.execute(
            select(
                jobs.c.job_id, jobs.c.handler, jobs.c.kwargs, jobs.c.workflow, jobs.c.policy
            ).where(jobs.c.job_id == job_id)
        ).first()
        if row is None:
            return None
        workflow = WorkflowSpec.from_json(row.workflow) if row.workflow else None
        secrets = tuple((row.policy or {}).get("secret_kwargs", ()))
        return JobSource(row.job_id, row.handler, row.kwargs, workflow, secrets)

    return lookup
