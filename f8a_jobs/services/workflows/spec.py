"""What a user writes: a job's ``tasks`` list, validated into ``TaskSpec``s; errors name the path.

vdk-meta-jobs' own task list is accepted unchanged (``job_name``, ``arguments``,
``fail_meta_job_on_error``, ``team_name``). The checks that need only this list live here
(names, dependencies, cycles, ``$result`` references, handler kwargs); those that need other
jobs (references, loops through them, size after inlining) live in ``expand``.
"""

from __future__ import annotations

import graphlib
from collections.abc import Container, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from f8a_jobs import filters
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.fields import (
    PRIORITY_NAMES,
    parse_metadata,
    parse_priority,
    parse_seconds,
    queue_name,
    seconds_or,
    whole_number,
)
from f8a_jobs.core.json_values import MAX_DEPTH, depth_exceeds
from f8a_jobs.core.names import addressable_name
from f8a_jobs.core.policy import Retry, parse_retry
from f8a_jobs.core.settings import get_settings
from f8a_jobs.handlers.entrypoints import FunctionHandler, is_entrypoint
from f8a_jobs.handlers.registry import get_handler, handler_at

ALIASES = {
    "job_name": "job",
    "arguments": "kwargs",
    "fail_meta_job_on_error": "fail_workflow_on_error",
    "entrypoint": "handler",  # a function's (or DoJobber class's) dotted path
}
TASK_KEYS = (
    "name",
    "handler",
    "job",
    "kwargs",
    "depends_on",
    "fail_workflow_on_error",
    "tries",
    "retry_delay",
    "retry_backoff",
    "timeout",
    "for_each",
    "team_name",
    "queue",
    "priority",
    "metadata",
)
RESULT_KEY = "$result"


@dataclass(frozen=True)
class TaskSpec(Retry):
    name: str
    handler: str | None = None
    job: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    fail_workflow_on_error: bool = True
    timeout: float | None = None
    for_each: Any = None  # a list of objects, {"$filter": …} or {"$result": …}
    team_name: str | None = None
    queue: str | None = None  # remote execution: the broker queue of its tries
    priority: str = "normal"  # low | normal | high: ready tries start highest first
    metadata: dict[str, Any] = field(default_factory=dict)  # shown, not acted on

    def json(self) -> dict[str, Any]:
        """The stored form: defaults left out."""
        return compact_json(self, TaskSpec(self.name), ("name",))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskSpec:
        return cls(**{**data, "depends_on": tuple(data.get("depends_on", ()))})


@dataclass(frozen=True)
class WorkflowSpec:
    tasks: tuple[TaskSpec, ...]
    max_concurrent: int
    timeout: float | None = None

    def json(self) -> dict[str, Any]:
        return {
            "tasks": [task.json() for task in self.tasks],
            "max_concurrent": self.max_concurrent,
            "timeout": self.timeout,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkflowSpec:
        tasks = tuple(TaskSpec.from_json(task) for task in data["tasks"])
        return cls(tasks, data["max_concurrent"], data.get("timeout"))


def parse_workflow(tasks: Any, max_concurrent: Any, timeout: Any) -> WorkflowSpec:
    """Validate a job's ``tasks`` (and its workflow-wide limits) on their own."""
    if not isinstance(tasks, list) or not tasks:
        raise InvalidInput("tasks", "expected a non-empty list of tasks")
    specs = tuple(_parse_task(item, f"tasks[{index}]") for index, item in enumerate(tasks))
    _check_graph(specs)
    by_name = {spec.name: spec for spec in specs}
    specs = tuple(
        _results_passed(spec, by_name, f"tasks[{index}]") for index, spec in enumerate(specs)
    )
    for index, spec in enumerate(specs):
        _check_results(spec, specs, f"tasks[{index}]")
        if spec.handler:
            check_kwargs(spec.handler, spec.kwargs, spec.for_each, f"tasks[{index}]")
    return WorkflowSpec(
        specs,
        whole_number(max_concurrent, "max_concurrent", get_settings().max_concurrent),
        None if timeout in (None, "") else parse_seconds(timeout, "timeout"),
    )


def _parse_task(item: Any, path: str) -> TaskSpec:
    if not isinstance(item, Mapping):
        raise InvalidInput(path, f"expected an object, got {type(item).__name__}")
    data = _unaliased(item, path)
    handler, job = data.get("handler"), data.get("job")
    if handler is not None and job is not None:
        raise InvalidInput(f"{path}.job", "give either 'handler' or 'job', not both")
    for key, value in (("handler", handler), ("job", job)):
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidInput(f"{path}.{key}", f"{value!r} must be a non-empty string")
    if handler:  # unknown: a 400 naming the known ones, and the field as the user wrote it
        handler_at(handler, f"{path}.{'entrypoint' if 'entrypoint' in item else 'handler'}")
    name = data.get("name", job)
    if name is None:
        raise InvalidInput(f"{path}.name", "required (or a 'job')")
    addressable_name(name, f"{path}.name")
    kwargs = data.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise InvalidInput(f"{path}.kwargs", f"expected an object, got {type(kwargs).__name__}")
    if depth_exceeds(kwargs):
        raise InvalidInput(f"{path}.kwargs", f"nested more than {MAX_DEPTH} levels deep")
    if handler is None and job is None and kwargs:
        raise InvalidInput(f"{path}.kwargs", "a task without 'handler' or 'job' takes no kwargs")
    metadata = parse_metadata(data.get("metadata"), f"{path}.metadata")
    return TaskSpec(
        name=name,
        handler=handler,
        job=job,
        kwargs=kwargs,
        depends_on=_depends_on(data.get("depends_on", []), f"{path}.depends_on"),
        fail_workflow_on_error=_flag(data, "fail_workflow_on_error", path),
        **parse_retry(data, path),
        timeout=seconds_or(data.get("timeout"), f"{path}.timeout", None),
        for_each=_for_each(data.get("for_each"), f"{path}.for_each", handler, job),
        team_name=_optional_text(data.get("team_name"), f"{path}.team_name"),
        queue=queue_name(data.get("queue"), f"{path}.queue") or image_queue(metadata),
        priority=PRIORITY_NAMES[parse_priority(data.get("priority"), f"{path}.priority")],
        metadata=metadata,
    )


def _unaliased(item: Mapping[str, Any], path: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in item.items():
        own = ALIASES.get(key, key)
        if own not in TASK_KEYS:
            known = ", ".join(TASK_KEYS)
            raise InvalidInput(f"{path}.{key}", f"unknown task field; expected some of {known}")
        if own in data:
            raise InvalidInput(f"{path}.{key}", f"gives '{own}' a second time")
        data[own] = value
    return data


def _depends_on(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidInput(path, "expected a list of task names")
    for index, name in enumerate(value):
        if not isinstance(name, str):
            raise InvalidInput(f"{path}[{index}]", f"{name!r} is not a task name")
    return tuple(dict.fromkeys(value))


def _flag(data: Mapping[str, Any], key: str, path: str) -> bool:
    value = data.get(key, True)
    if not isinstance(value, bool):
        raise InvalidInput(f"{path}.{key}", f"{value!r} must be true or false")
    return value


def _optional_text(value: Any, path: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidInput(path, f"{value!r} must be a string")
    return value


def _for_each(value: Any, path: str, handler: str | None, job: str | None) -> Any:
    if value is None:
        return None
    if handler is None and job is None:
        raise InvalidInput(path, "a task without 'handler' or 'job' has nothing to run per item")
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise InvalidInput(f"{path}[{index}]", "each item must be an object of kwargs")
        return value
    if isinstance(value, dict) and set(value) == {RESULT_KEY}:
        return value
    if isinstance(value, dict) and filters.is_filter(value):
        filters.validate(value, path)
        return value
    raise InvalidInput(
        path, "expected a list of kwargs objects, {'$filter': …} or {'$result': 'task'}"
    )


def _results_passed(spec: TaskSpec, by_name: Mapping[str, TaskSpec], path: str) -> TaskSpec:
    """Datatailr's result passing, made explicit: a function task gets each dependency's
    result as the argument named after the dependency's function, or as its
    ``job_config.arg_translation_table`` maps the dependency's name, when it takes that
    argument and its kwargs do not set it. Stored as ``$result``s, so it is shown, checked and
    retried as any result passed on."""
    handler_class = get_handler(spec.handler) if spec.handler else None
    if handler_class is None or not issubclass(handler_class, FunctionHandler):
        return spec
    config = spec.kwargs.get("job_config")
    table = config.get("arg_translation_table", {}) if isinstance(config, dict) else {}
    where = f"{path}.kwargs.job_config.arg_translation_table"
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise InvalidInput(where, "expected an object mapping task names to argument names")
    for name in table:
        if name not in spec.depends_on:
            raise InvalidInput(f"{where}.{name}", f"{name!r} is not a dependency of {spec.name!r}")
    takes = handler_class.parameters()
    passed: dict[str, Any] = {}
    for dependency in spec.depends_on:
        argument = table.get(dependency) or _function_name(by_name[dependency].handler)
        if argument in takes and argument not in spec.kwargs and argument not in passed:
            passed[argument] = {RESULT_KEY: dependency}
    return replace(spec, kwargs={**spec.kwargs, **passed}) if passed else spec


def _function_name(handler: str | None) -> str | None:
    return handler.rpartition(".")[2] if handler and is_entrypoint(handler) else None


def image_queue(metadata: Mapping[str, Any]) -> str | None:
    """The worker queue an explicit ``F8A_JOBS_IMAGE_QUEUES`` entry gives the metadata's
    ``Image`` (Datatailr's): an image picks a queue only where the operator says so."""
    image = metadata.get("Image")
    return dict(get_settings().image_queues).get(image) if isinstance(image, str) else None


def compact_json(item: Any, defaults: Any, always: tuple[str, ...]) -> dict[str, Any]:
    """A dataclass as JSON without the fields that hold their defaults (but ``always``)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in asdict(item).items()
        if key in always or value != getattr(defaults, key)
    }


# --- the graph of one workflow ---------------------------------------------------------------


def _check_graph(specs: tuple[TaskSpec, ...]) -> None:
    index_of: dict[str, int] = {}
    for index, spec in enumerate(specs):
        if spec.name in index_of:
            first = index_of[spec.name]
            raise InvalidInput(
                f"tasks[{index}].name", f"duplicate task name {spec.name!r} (also tasks[{first}])"
            )
        index_of[spec.name] = index
    for index, spec in enumerate(specs):
        for position, name in enumerate(spec.depends_on):
            where = f"tasks[{index}].depends_on[{position}]"
            if name == spec.name:
                raise InvalidInput(where, f"task {name!r} cannot depend on itself")
            if name not in index_of:
                raise InvalidInput(where, f"unknown task {name!r}")
    cycle = find_cycle({spec.name: spec.depends_on for spec in specs})
    if cycle:
        raise InvalidInput("tasks", f"the dependencies form a cycle: {' → '.join(cycle)}")


def find_cycle(graph: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """A cycle in ``graph`` (node → what it depends on), in dependency order, or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(reversed(error.args[1]))
    return None


def upstream(specs: tuple[TaskSpec, ...], name: str) -> set[str]:
    depends = {spec.name: spec.depends_on for spec in specs}
    seen: set[str] = set()
    todo = list(depends[name])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(depends[current])
    return seen


def result_references(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Each ``{"$result": "task.key"}`` in ``value`` at any depth: (path, reference)."""
    if isinstance(value, dict):
        if set(value) == {RESULT_KEY}:
            yield path, value[RESULT_KEY]
            return
        for key, item in value.items():
            yield from result_references(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from result_references(item, f"{path}[{index}]")


def referenced_task(reference: Any, names: Container[str]) -> str | None:
    """The task a ``$result`` reference names: its longest dotted prefix that is a task."""
    if not isinstance(reference, str):
        return None
    parts = reference.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in names:
            return candidate
    return None


def _check_results(spec: TaskSpec, specs: tuple[TaskSpec, ...], path: str) -> None:
    names = {item.name for item in specs}
    before: set[str] | None = None
    for where, reference in [
        *result_references(spec.kwargs, f"{path}.kwargs"),
        *result_references(spec.for_each, f"{path}.for_each"),
    ]:
        task = referenced_task(reference, names)
        if task is None:
            raise InvalidInput(
                where, f"'$result' must name a task, such as 'extract.rows'; got {reference!r}"
            )
        before = upstream(specs, spec.name) if before is None else before
        if task not in before:
            raise InvalidInput(
                where, f"'$result' names {task!r}, which is not upstream of {spec.name!r}"
            )


def check_kwargs(handler: str, kwargs: dict[str, Any], for_each: Any, path: str) -> None:
    """Check ``kwargs`` against the handler as a plain job's are; a ``$result`` stands for any
    value, and a ``for_each`` from a query or a result may fill in what is missing."""
    handler_class = get_handler(handler)
    items = for_each if isinstance(for_each, list) else [{}]
    dynamic = for_each is not None and not isinstance(for_each, list)
    for index, item in enumerate(items):
        merged = {**kwargs, **item}
        placeholders = {key for key, value in merged.items() if any(result_references(value, ""))}
        where = f"{path}.for_each[{index}]" if isinstance(for_each, list) else path
        try:
            if placeholders or dynamic:
                handler_class.validate_partial(merged, placeholders, missing_ok=dynamic)
            else:
                handler_class.validate(merged)
        except InvalidInput as error:
            raise InvalidInput(f"{where}.{error.field}", error.detail.split(": ", 1)[1]) from None
