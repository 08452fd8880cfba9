"""Datatailr's dev run: a DAG run in this process, without a service, with the service's
semantics: tasks in dependency order, each upstream result passed as the argument named after
the upstream function (or as ``arg_translation_table`` says), the reserved arguments filled in,
``Retries`` tried again, and a failed task's dependents not run (``upstream_failed``).

For users' own tests: what passes here runs the same way on the service.
"""

from __future__ import annotations

import graphlib
import importlib
import inspect
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TRANSLATION_ATTRIBUTE = "f8a_jobs_translation_table"
BATCH_MAIN = "__batch_main__"


class DevRunFailed(Exception):
    """A task of a dev run failed; ``result`` holds every task's state, result and error."""

    def __init__(self, result: DevRunResult) -> None:
        lines = "; ".join(
            f"{name}: {error.splitlines()[-1]}" for name, error in result.errors.items()
        )
        super().__init__(f"dev run of {result.name!r} failed: {lines}")
        self.result = result


@dataclass
class DevRunResult:
    """What a dev run did: each task's ``state`` (succeeded, failed, upstream_failed), the
    ``results`` the functions returned (a part list for a ParallelTask) and the ``errors``."""

    name: str
    states: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "failed" if self.errors else "succeeded"

    def raise_if_failed(self) -> None:
        if self.errors:
            raise DevRunFailed(self)


def run_locally(name: str, tasks: list[dict[str, Any]]) -> DevRunResult:
    """Run ``tasks`` (``Task.local()``: name, function, after, kwargs, config, tries)."""
    by_name = {task["name"]: task for task in tasks}
    order = graphlib.TopologicalSorter({task["name"]: task["after"] for task in tasks})
    result = DevRunResult(name)
    started = datetime.now(UTC)
    for task_name in order.static_order():
        task = by_name[task_name]
        if any(result.states.get(before) != "succeeded" for before in task["after"]):
            result.states[task_name] = "upstream_failed"
            continue
        _run_task(task, by_name, result, started)
    return result


def _run_task(
    task: dict[str, Any], by_name: dict[str, Any], result: DevRunResult, started: datetime
) -> None:
    decorated = _decorated(task["function"])
    function = inspect.unwrap(decorated)
    translation = getattr(decorated, TRANSLATION_ATTRIBUTE, None) or {}
    configs = task["config"] if isinstance(task["config"], list) else [task["config"] or {}]
    parts: list[Any] = []
    for part_num, config in enumerate(configs):
        arguments = {**task["kwargs"], **_results(function, task, by_name, result, config)}
        where = (task["name"], part_num, len(configs))
        reserved = _reserved(function, translation, where, config, started)
        for attempt in range(1, task["tries"] + 1):
            result.tries[task["name"]] = attempt
            try:
                parts.append(function(**arguments, **reserved))
                break
            except Exception:
                if attempt == task["tries"]:
                    result.states[task["name"]] = "failed"
                    result.errors[task["name"]] = traceback.format_exc()
                    return
    result.states[task["name"]] = "succeeded"
    result.results[task["name"]] = parts if isinstance(task["config"], list) else parts[0]


def _decorated(target: Any) -> Any:
    """The function (as ``@batch`` left it): itself, or the one a dotted path names (a
    module's ``__batch_main__``, or a module's function)."""
    if callable(target):
        return target
    module_name, _, attribute = str(target).rpartition(".")
    try:
        return getattr(importlib.import_module(str(target)), BATCH_MAIN)
    except (ModuleNotFoundError, AttributeError):
        return getattr(importlib.import_module(module_name), attribute)


def _results(
    function: Any, task: dict[str, Any], by_name: dict[str, Any], result: DevRunResult, config: Any
) -> dict[str, Any]:
    """The upstream results the function takes, by the upstream function's name or as the
    ``arg_translation_table`` maps the upstream task's name."""
    table = config.get("arg_translation_table", {}) if isinstance(config, dict) else {}
    takes = inspect.signature(function).parameters
    passed: dict[str, Any] = {}
    for before in task["after"]:
        argument = table.get(before) or _function_name(by_name[before]["function"])
        if argument in takes and argument not in task["kwargs"]:
            passed[argument] = result.results[before]
    return passed


def _function_name(target: Any) -> str:
    return str(target.__name__) if callable(target) else str(target).rpartition(".")[2]


def _reserved(
    function: Any,
    translation: dict[str, str],
    where: tuple[str, int, int],
    config: Any,
    started: datetime,
) -> dict[str, Any]:
    """The reserved arguments the function names (renamed by ``@batch``'s table); ``where``
    is the task's name, the part's number and the number of parts."""
    task_name, part_num, num_parts = where
    config = config if isinstance(config, dict) else {}
    values = {
        "rundate": started.date().isoformat(),
        "job_config": config,
        "scheduled_time": started,
        "scheduled_for": started,
        "runtime": datetime.now(UTC),
        "part_num": part_num,
        "num_parts": num_parts,
        "sub_job_name": config.get("Name") or task_name,
        "task_name": task_name,
        "run_id": "dev-run",
    }
    reserved = {}
    for parameter in inspect.signature(function).parameters:
        name = translation.get(parameter, parameter)
        if name in values:
            reserved[parameter] = values[name]
    return reserved
