"""DoJobber's job classes on f8a-jobs: ``Job``, ``DummyJob``, ``RunonlyJob``, and
``submit_dojobber``, which turns a root job's graph of ``DEPS`` into a workflow job.

Each class becomes a task running it by its dotted path (its module must be importable by the
service and allowed by ``F8A_JOBS_HANDLER_MODULES``), with DoJobber's semantics as the service's
idempotent tasks give them: ``Check``, then ``Run`` and a recheck when the check failed; ``TRIES``
tries (default ``default_tries``, 3) at least ``RETRY_DELAY`` apart (default 1 s), failing
branches retried round robin; ``Cleanup`` of the jobs that ran, last first, when the run ends.
``self.storage`` lives for one try; ``self.global_storage`` reaches the jobs that depend on this
one (it travels in the tasks' results). A class made at run time (``type('Invite Bob',
(SendInvite,), {...})``) is sent as its importable base and its class attributes.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from f8a_jobs.client.core import Client, Json

__all__ = ["DummyJob", "Job", "RunonlyJob", "submit_dojobber", "workflow_of"]


class Job:
    """An idempotent job: ``Check`` raises unless the world is as wanted; ``Run`` makes it so."""

    DEPS: ClassVar[Any] = ()
    TRIES: ClassVar[int | None] = None
    RETRY_DELAY: ClassVar[float | None] = None

    def __init__(self) -> None:
        self.storage: dict[str, Any] = {}  # this try's, shared by Check and Run
        self.global_storage: dict[str, Any] = {}  # the dependencies', and what this one adds
        self.kwargs: dict[str, Any] = {}  # DoJobber's set_args: Cleanup() reads them here

    def Check(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802 (DoJobber's names)
        raise NotImplementedError(f"{type(self).__name__}.Check")

    def Run(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        raise NotImplementedError(f"{type(self).__name__}.Run")


class DummyJob(Job):
    """Groups its ``DEPS``: nothing to check or run (a task with neither handler nor job)."""


class RunonlyJob(Job):
    """Only ``Run``, every time; it fails when ``Run`` raises."""

    Check = None  # type: ignore[assignment]


def submit_dojobber(
    client: Client,
    root: type[Job],
    job_id: str,
    default_tries: int = 3,
    default_retry_delay: float = 1.0,
    kwargs: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Json:
    """Create or update the workflow job ``job_id`` running ``root`` and what it depends on
    (``fields``: its schedule and the job's other fields; without a schedule it runs only
    when started); the job as stored."""
    job = {"job_id": job_id, **workflow_of(root, default_tries, default_retry_delay, kwargs)}
    if not any(key in fields for key in ("when", "periodically", "cron", "calendar", "after")):
        job["manual"] = True
    return client.save_job({**job, **fields})


def workflow_of(
    root: type[Job],
    default_tries: int = 3,
    default_retry_delay: float = 1.0,
    kwargs: Mapping[str, Any] | None = None,
) -> Json:
    """The ``tasks`` of the workflow running ``root``'s graph (DoJobber's ``set_args``
    keyword arguments as ``kwargs``)."""
    classes = list(_graph(root))
    names = {cls: cls.__name__ for cls in classes}
    if len(set(names.values())) != len(classes):
        raise ValueError("two DoJobber jobs of this graph have the same class name")
    tasks = []
    for cls in classes:
        task: Json = {"name": names[cls], "depends_on": [names[dep] for dep in _deps(cls)]}
        if not issubclass(cls, DummyJob):
            task.update(_runner(cls, names, dict(kwargs or {})))
            task["tries"] = cls.TRIES if cls.TRIES is not None else default_tries
            delay = cls.RETRY_DELAY if cls.RETRY_DELAY is not None else default_retry_delay
            task["retry_delay"] = delay
        tasks.append(task)
    return {"tasks": tasks}


def _runner(cls: type[Job], names: dict[type[Job], str], kwargs: Json) -> Json:
    base, attributes = _importable(cls)
    upstream = [names[item] for item in _upstream(cls) if not issubclass(item, DummyJob)]
    task_kwargs = dict(kwargs)
    if attributes:
        task_kwargs["class_attributes"] = attributes
    if upstream:
        task_kwargs["upstream"] = [{"$result": name} for name in upstream]
    runner: Json = {"handler": f"{base.__module__}.{base.__qualname__}"}
    if task_kwargs:
        runner["kwargs"] = task_kwargs
    return runner


def _graph(root: type[Job]) -> Iterator[type[Job]]:
    """The root and every job it depends on, each once, dependencies first."""
    seen: set[type[Job]] = set()

    def visit(cls: type[Job], chain: tuple[str, ...]) -> Iterator[type[Job]]:
        if cls.__name__ in chain:
            raise ValueError(f"DoJobber DEPS form a cycle: {' → '.join((*chain, cls.__name__))}")
        if cls in seen:
            return
        for dep in _deps(cls):
            yield from visit(dep, (*chain, cls.__name__))
        seen.add(cls)
        yield cls

    yield from visit(root, ())


def _deps(cls: type[Job]) -> list[type[Job]]:
    deps = cls.DEPS
    if not isinstance(deps, (list, tuple)):
        raise TypeError(f"{cls.__name__}.DEPS must be a list or a tuple of Job classes")
    return list(deps)


def _upstream(cls: type[Job]) -> list[type[Job]]:
    """Every job ``cls`` depends on, at any depth: their ``global_storage`` reaches it."""
    found: list[type[Job]] = []
    todo = list(_deps(cls))
    while todo:
        item = todo.pop(0)
        if item not in found:
            found.append(item)
            todo.extend(_deps(item))
    return found


def _importable(cls: type[Job]) -> tuple[type[Job], Json]:
    """The nearest class of ``cls``'s ancestry that its module holds under its name, and the
    class attributes of those before it (a class made at run time travels as both)."""
    attributes: Json = {}
    for ancestor in cls.__mro__:
        module = importlib.import_module(ancestor.__module__)
        if getattr(module, ancestor.__qualname__, None) is ancestor:
            if ancestor is not cls:
                attributes.setdefault("__name__", cls.__name__)
            return ancestor, attributes
        for key, value in vars(ancestor).items():
            if key.startswith("__") or key == "DEPS" or callable(value) or key in attributes:
                continue
            attributes[key] = _json(value, f"{cls.__name__}.{key}")
    raise ValueError(f"{cls.__name__}: no class of its ancestry can be imported by its name")


def _json(value: Any, where: str) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} is sent to the service, so it must be JSON") from None
    return value
