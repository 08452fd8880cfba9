"""Cleanups after a workflow run (DoJobber): each task whose ``execute`` ran has its handler's
``cleanup`` called with the task's kwargs, last completed first; the run ends once they did,
with their errors added to its own."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from f8a_jobs.core.states import WHOLE
from f8a_jobs.handlers.registry import get_handler
from f8a_jobs.services.runs import Unit
from f8a_jobs.services.workflows.engine import WorkflowRun
from f8a_jobs.services.workflows.results import item_kwargs, resolve_results

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cleanup:
    task: str
    handler: str
    job_id: str
    kwargs: dict[str, Any]


def cleans(run: WorkflowRun, unit: Unit) -> bool:
    """Whether ``unit``'s handler has a cleanup."""
    handler = run.nodes[unit.task].handler
    return bool(handler) and get_handler(handler or "").cleans_up()


def plan(run: WorkflowRun) -> list[Cleanup]:
    """The cleanups a run that is over calls, in order (none: it can end at once)."""
    cleanups = []
    for unit in run.executed_units():
        node = run.nodes[unit.task]
        if unit.part == WHOLE and unit.task in run.parts:
            continue  # its parts are cleaned up one by one
        if cleans(run, unit):
            kwargs = {**resolve_results(run, node.kwargs), **item_kwargs(unit)}
            cleanups.append(Cleanup(unit.task, node.handler or "", node.job_id, kwargs))
    return cleanups


def call(cleanups: list[Cleanup], engine: Engine) -> list[str]:
    """Call each cleanup; the errors of those that failed."""
    errors = []
    for cleanup in cleanups:
        try:
            handler_class = get_handler(cleanup.handler)
            handler_class(cleanup.job_id, engine=engine).cleanup(**cleanup.kwargs)
        except Exception as error:
            log.warning("cleanup of task %r failed: %s", cleanup.task, error)
            errors.append(
                f"cleanup of task {cleanup.task!r} failed: {type(error).__name__}: {error}"
            )
    return errors
