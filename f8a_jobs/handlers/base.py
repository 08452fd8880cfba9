"""The handler contract: a job names a handler; a run calls ``Handler(job_id).execute(**kwargs)``.

This is the plugin API (``f8a_jobs.handlers.base.BaseHandler``). What a run offers its handler
(``self.run``) is the ``Context`` protocol, which the executors' contexts implement.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, ClassVar, Protocol

from sqlalchemy import Engine

from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.flow import Flow
from f8a_jobs.core.settings import get_settings
from f8a_jobs.handlers.kwargs import hints, mismatch
from f8a_jobs.storage.db import get_engine

#: Arguments the service fills in for each run when ``execute`` names them; never in kwargs.
CONTEXT_ARGUMENTS = ("run_id", "scheduled_for", "rundate", "task_name", "part_num", "num_parts")


class Context(Protocol):
    """What a run offers its handler (``self.run``): Datatailr's reserved arguments, and where
    the flows it emits go."""

    run_id: str
    scheduled_for: datetime
    task_name: str | None  # a workflow task's (None for a plain run)
    part_num: int | None  # a for_each part's number
    num_parts: int | None

    @property
    def rundate(self) -> str: ...

    def emit_flows(self, flows: Iterable[Flow]) -> int: ...


class BaseHandler:
    """Subclass it, implement ``execute(**kwargs)`` with the arguments your job needs.

    Jobs are validated against ``execute``'s signature and type hints when they are created, so
    a job that cannot run is refused then, not at its first run. Override ``validate`` for
    checks that the signature cannot express (call ``super().validate`` first). ``execute`` may
    also name ``run_id``, ``scheduled_for`` and ``rundate`` (the slot's local date,
    ``YYYY-MM-DD``) to get them; what it returns (JSON) is stored with the run.

    A handler that also defines ``check(**kwargs)`` is idempotent (DoJobber): in a workflow, a
    task whose check passes is ``satisfied`` without ``execute``, and its result is what the
    check found (``check_found``). ``cleanup(**kwargs)``, if defined, runs after a workflow run
    for each task whose ``execute`` ran.
    """

    name: ClassVar[str | None] = None  # the name jobs use; defaults to the class name
    # Optional, and declared only: a subclass (or a mixin after this class) defines them.
    check: Callable[..., Any]  # ``check(**kwargs)``: see ``check_found``
    cleanup: Callable[..., Any]  # ``cleanup(**kwargs)``: after a workflow run

    def __init__(
        self, job_id: str, engine: Engine | None = None, run: Context | None = None
    ) -> None:
        self.job_id = job_id
        self._engine = engine
        self.run = run

    @property
    def log(self) -> logging.Logger:
        """The handler's logger (named after its class): what it logs while a run or a task's
        try executes is kept with that try (``GET …/runs/{run_id}/logs``), as is anything
        logged through ``logging`` from the handler's thread."""
        cls = type(self)
        return logging.getLogger(f"{cls.__module__}.{cls.__qualname__}")

    @property
    def engine(self) -> Engine:
        """The service database (the scheduler passes its own; else the configured one)."""
        if self._engine is None:
            self._engine = get_engine(get_settings().database_url)
        return self._engine

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.execute")

    @classmethod
    def checks(cls) -> bool:
        """Whether this handler defines ``check``."""
        return callable(getattr(cls, "check", None))

    @classmethod
    def cleans_up(cls) -> bool:
        """Whether this handler defines ``cleanup``."""
        return callable(getattr(cls, "cleanup", None))

    def emit_flows(self, flows: Iterable[Flow]) -> int:
        """Dispatch ``flows``: they reach the outbox when the run is recorded, with it."""
        if self.run is None:
            raise RuntimeError("flows can only be emitted by a handler running as a run")
        return self.run.emit_flows(flows)

    @classmethod
    def handler_name(cls) -> str:
        return cls.name or cls.__name__

    @classmethod
    def context_arguments(cls) -> tuple[str, ...]:
        """The run context arguments ``execute`` names explicitly."""
        return _context_arguments(cls.execute)

    @classmethod
    def validate(cls, kwargs: dict[str, Any]) -> None:
        """Raise ``InvalidInput`` unless ``kwargs`` fit ``execute``."""
        cls.validate_partial(kwargs, set(), missing_ok=False)

    @classmethod
    def validate_partial(
        cls, kwargs: dict[str, Any], any_value: set[str], missing_ok: bool
    ) -> None:
        """``validate``, where the ``any_value`` kwargs are not type-checked (a workflow fills
        them in from a result) and, with ``missing_ok``, required ones may be missing (a
        ``for_each`` item brings them)."""
        require_object(kwargs)
        reserved = sorted(set(kwargs) & set(CONTEXT_ARGUMENTS))
        if reserved:
            raise InvalidInput(f"kwargs.{reserved[0]}", "is filled in for each run; do not set it")
        check_call(
            cls.execute,
            (None,),
            kwargs,
            cls.context_arguments(),
            any_value,
            missing_ok,
            f"handler {cls.handler_name()}",
        )


def require_object(kwargs: Any) -> None:
    """A job's kwargs are a JSON object, whatever it runs."""
    if not isinstance(kwargs, dict):
        raise InvalidInput("kwargs", f"expected an object, got {type(kwargs).__name__}")


def check_call(
    function: Callable[..., Any],
    leading: tuple[Any, ...],
    kwargs: dict[str, Any],
    context: tuple[str, ...],
    any_value: set[str],
    missing_ok: bool,
    what: str,
) -> None:
    """Raise ``InvalidInput`` unless ``function(*leading, **kwargs)`` fits its signature and
    type hints, with the ``context`` arguments it names filled in for each run (and so
    never set in ``kwargs``); ``what`` names the function in the message."""
    reserved = sorted(set(kwargs) & set(context))
    if reserved:
        raise InvalidInput(f"kwargs.{reserved[0]}", "is filled in for each run; do not set it")
    signature, types = signature_of(function)
    filled = dict.fromkeys(context)
    bind = signature.bind_partial if missing_ok else signature.bind
    try:
        bound = bind(*leading, **kwargs, **filled)
    except TypeError as exc:
        raise InvalidInput("kwargs", f"{exc} ({what})") from None
    for name, value in bound.arguments.items():
        if name == "self" or name in filled or name not in types:
            continue
        values = (
            value
            if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD
            else {name: value}
        )
        for key, item in values.items():
            problem = None if key in any_value else mismatch(item, types[name])
            if problem:
                raise InvalidInput(f"kwargs.{key}{problem[0]}", problem[1])


def check_found(returned: Any) -> tuple[bool, Any]:
    """What a check's return value says: (passed, what it found).

    As DoJobber's ``Check``, a check passes unless it raises or returns ``False``, so one that
    asserts and returns nothing passes. What else it returns is what it found, and becomes the
    satisfied task's result, passed on through ``$result`` as ``execute``'s would be (a task
    that skips ``execute`` must not hand its dependents a ``None`` in place of the value); a
    bare ``True`` found nothing to pass on: ``None``.
    """
    if returned is False:
        return False, None
    return True, None if returned is True else returned


@functools.lru_cache(maxsize=1024)
def signature_of(function: Any) -> tuple[inspect.Signature, dict[str, Any]]:
    """Cached: each job parsed asks, and a signature and its type hints are slow to build
    (a bulk apply parses ten thousand jobs a second)."""
    return inspect.signature(function), hints(function)


@functools.lru_cache(maxsize=1024)
def _context_arguments(execute: Any) -> tuple[str, ...]:
    """Cached: runs ask on every run, and ``inspect.signature`` is slow."""
    parameters = inspect.signature(execute).parameters
    return tuple(name for name in CONTEXT_ARGUMENTS if name in parameters)
