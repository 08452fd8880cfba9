"""Results passed on: ``{"$result": "task.key"}`` in a task's kwargs (or ``for_each``) is
replaced by that task's result when the task starts; a ``for_each`` item becomes kwargs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from f8a_jobs.core.states import WHOLE
from f8a_jobs.services.runs.model import Unit
from f8a_jobs.services.workflows.spec import RESULT_KEY, referenced_task


class Results(Protocol):
    """A run whose tasks' results can be read (the engine's ``WorkflowRun``)."""

    @property
    def nodes(self) -> Mapping[str, Any]: ...

    def result_of(self, name: str) -> Any: ...


Resolver = Callable[[Any, Any], Any]  # (run, value) -> value with its $results filled in


def resolve_results(run: Results, value: Any) -> Any:
    """``value`` with each ``{"$result": "task.key"}`` replaced by that result (a missing key
    raises ``LookupError`` saying which)."""
    if isinstance(value, dict):
        if set(value) == {RESULT_KEY}:
            return _result_at(run, value[RESULT_KEY])
        return {key: resolve_results(run, item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_results(run, item) for item in value]
    return value


def _result_at(run: Results, reference: str) -> Any:
    task = referenced_task(reference, run.nodes)
    if task is None:
        raise LookupError(f"'$result': no task {reference!r}")
    value = run.result_of(task)
    for key in reference[len(task) + 1 :].split(".") if reference != task else []:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise LookupError(f"'$result': {reference!r}: the result of {task!r} has no {key!r}")
    return value


def item_kwargs(unit: Unit) -> dict[str, Any]:
    """A part's item as kwargs (``part_kwargs``); a whole task has none."""
    if unit.part == WHOLE:
        return {}
    return part_kwargs(unit.item)


def part_kwargs(item: Any) -> dict[str, Any]:
    """A for_each item as kwargs: an object is merged, any other value is ``item``."""
    return item if isinstance(item, dict) else {"item": item}
