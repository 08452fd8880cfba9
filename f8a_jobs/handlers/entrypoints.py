"""Handlers named by a dotted path: a plain function (Datatailr's ``Entrypoint``) or a
DoJobber ``Job`` class, imported only from the modules ``F8A_JOBS_HANDLER_MODULES`` allows.

Users of those systems bring code that knows nothing of ``BaseHandler``; each kind gets an
adapter class here, so the executors, workers, workflows and dry runs treat it as any handler.

- A **function** is called with the job's (or task's) kwargs and the reserved arguments it
  names: Datatailr's ``rundate``, ``job_config``, ``scheduled_time``, ``runtime``,
  ``part_num``, ``num_parts``, ``sub_job_name`` and the service's own ``run_id``,
  ``task_name``, ``scheduled_for``. ``@batch(translation_table={'running_date': 'rundate'})``
  renames them (it sets ``f8a_jobs_translation_table`` on the function). ``job_config`` is the
  kwarg of that name (Datatailr's ``ConfigurationJson``); a function that does not name it
  does not get it. A path naming a module calls its ``__batch_main__``.
- A **DoJobber class** (``Run``, and ``Check`` unless it is run-only) becomes an idempotent
  handler: ``check`` is ``Check``, ``execute`` is ``Run`` (whose errors only the recheck
  judges, as DoJobber ignores them), ``cleanup`` is ``Cleanup``. Kwargs ``class_attributes``
  rebuild a class made at run time (``type('Invite Bob', (SendInvite,), {...})``), and
  ``upstream`` (a list of ``$result`` references) brings the dependencies' ``global_storage``.
  The task's result is ``{"global_storage": …}``, so dependents see what it stored. The
  instance's ``kwargs`` are the task's (DoJobber's ``set_args``), which ``Cleanup()`` can read.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.settings import get_settings
from f8a_jobs.handlers.base import (
    CONTEXT_ARGUMENTS,
    BaseHandler,
    check_call,
    require_object,
    signature_of,
)

log = logging.getLogger(__name__)

#: Datatailr's reserved arguments, and the service's: filled in when the function names them.
RESERVED = (
    "rundate",
    "job_config",
    "scheduled_time",
    "runtime",
    "part_num",
    "num_parts",
    "sub_job_name",
    *CONTEXT_ARGUMENTS,
)
TRANSLATION_ATTRIBUTE = "f8a_jobs_translation_table"
BATCH_MAIN = "__batch_main__"
DOJOBBER_KEYS = ("class_attributes", "upstream")


def is_entrypoint(name: str) -> bool:
    """Whether a handler name is a dotted path (registered handlers' names have no dot)."""
    return "." in name


@functools.cache
def entrypoint_handler(path: str) -> type[BaseHandler]:
    """The adapter handler of the function or DoJobber class at ``path``; a 400 naming the
    ``handler`` when it is not allowed, not found, or neither."""
    target = _imported(path)
    if inspect.isclass(target) and callable(getattr(target, "Run", None)):
        return _dojobber_handler(path, target)
    if inspect.isfunction(target) or inspect.ismethod(target) or hasattr(target, "__wrapped__"):
        return _function_handler(path, target)
    raise InvalidInput(
        "handler", f"entrypoint {path!r} is {type(target).__name__}, not a function or a Job class"
    )


def _imported(path: str) -> Any:
    """The object at ``path``: a module's attribute (``pkg.mod.func``, ``pkg.mod.Class``) or
    a module's ``__batch_main__`` (``pkg.mod``)."""
    allowed = get_settings().handler_modules
    module_name, _, attribute = path.rpartition(".")
    candidates = [(path, BATCH_MAIN), (module_name, attribute)]
    for name, member in candidates:
        if not _allowed(name, allowed):
            continue
        module = _module(name)
        if module is not None and hasattr(module, member):
            return getattr(module, member)
    if not any(_allowed(name, allowed) for name, _ in candidates):
        shown = ", ".join(allowed) or "none"
        raise InvalidInput(
            "handler",
            f"entrypoint {path!r}: module {module_name!r} is not one that "
            f"F8A_JOBS_HANDLER_MODULES allows (allowed: {shown})",
        )
    raise InvalidInput("handler", f"entrypoint {path!r}: no such function or class")


def _allowed(module_name: str, allowed: tuple[str, ...]) -> bool:
    return any(module_name == name or module_name.startswith(f"{name}.") for name in allowed)


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and name.startswith(error.name):
            return None  # the module itself is missing: not a path to it
        raise


# --- functions -------------------------------------------------------------------------------


class FunctionHandler(BaseHandler):
    """Calls ``function`` with the kwargs it takes and the reserved arguments it names."""

    function: ClassVar[Callable[..., Any]]
    reserved: ClassVar[dict[str, str]]  # parameter → the reserved argument it receives

    def execute(self, **kwargs: Any) -> Any:
        config = kwargs.pop("job_config", None)
        values = {name: self._reserved(name, config) for name in set(self.reserved.values())}
        reserved = {parameter: values[name] for parameter, name in self.reserved.items()}
        return self.function(**kwargs, **reserved)

    def _reserved(self, name: str, config: Any) -> Any:
        run = self.run
        if name == "job_config":
            return {} if config is None else config
        if name == "runtime":
            return utcnow()
        if run is None:
            raise RuntimeError(f"{name} is known only while a run executes")
        if name == "sub_job_name":
            part_name = config.get("Name") if isinstance(config, dict) else None
            return part_name or run.task_name or self.job_id
        if name == "scheduled_time":
            return run.scheduled_for
        if name in ("part_num", "num_parts"):
            value = getattr(run, name)
            return value if value is not None else (0 if name == "part_num" else 1)
        return getattr(run, name)

    @classmethod
    def context_arguments(cls) -> tuple[str, ...]:
        return ()  # ``execute`` reads them from ``self.run``, by the function's own names

    @classmethod
    def parameters(cls) -> frozenset[str]:
        """The names the function takes that are not reserved: where results may go."""
        signature, _ = signature_of(cls.function)
        return frozenset(signature.parameters) - set(cls.reserved)

    @classmethod
    def validate_partial(
        cls, kwargs: dict[str, Any], any_value: set[str], missing_ok: bool
    ) -> None:
        require_object(kwargs)
        given = {key: value for key, value in kwargs.items() if key != "job_config"}
        if "job_config" in kwargs and not isinstance(kwargs["job_config"], dict):
            raise InvalidInput("kwargs.job_config", "expected an object (ConfigurationJson)")
        check_call(
            cls.function,
            (),
            given,
            tuple(cls.reserved),
            any_value,
            missing_ok,
            f"entrypoint {cls.handler_name()}",
        )


def _function_handler(path: str, function: Callable[..., Any]) -> type[BaseHandler]:
    translation = getattr(function, TRANSLATION_ATTRIBUTE, None) or {}
    parameters = inspect.signature(function).parameters
    reserved = {
        parameter: translation.get(parameter, parameter)
        for parameter in parameters
        if translation.get(parameter, parameter) in RESERVED
    }
    attributes = {"name": path, "function": staticmethod(function), "reserved": reserved}
    return type(path.rpartition(".")[2], (FunctionHandler,), attributes)


# --- DoJobber classes ------------------------------------------------------------------------


class DoJobberHandler(BaseHandler):
    """Runs a DoJobber ``Job``: one instance per try, so ``storage`` lives for one
    check/run/recheck cycle (a retry starts from scratch, as DoJobber's do)."""

    job_class: ClassVar[type]
    _job: Any = None

    def execute(self, **kwargs: Any) -> dict[str, Any]:
        job = self._instance(kwargs)
        arguments = _job_kwargs(kwargs)
        if not callable(getattr(job, "Check", None)):
            job.Run(**arguments)  # a RunonlyJob: its Run's error fails the try
        else:
            try:
                job.Run(**arguments)
            except Exception:  # DoJobber ignores Run's outcome: the recheck decides
                self.log.warning(
                    "%s.run raised; the recheck decides", self.handler_name(), exc_info=True
                )
        return {"global_storage": job.global_storage}

    def _instance(self, kwargs: dict[str, Any]) -> Any:
        if self._job is None:
            attributes = dict(kwargs.get("class_attributes") or {})
            cls = self.job_class
            if attributes:
                name = attributes.pop("__name__", cls.__name__)
                cls = type(name, (cls,), attributes)
            job = cls()
            job.kwargs = _job_kwargs(kwargs)  # DoJobber's set_args, for Cleanup() too
            job.storage = {}
            job.global_storage = _upstream_storage(kwargs.get("upstream") or [])
            self._job = job
        return self._job

    @classmethod
    def validate_partial(
        cls, kwargs: dict[str, Any], any_value: set[str], missing_ok: bool
    ) -> None:
        require_object(kwargs)
        attributes = kwargs.get("class_attributes", {})
        if not isinstance(attributes, dict):
            raise InvalidInput("kwargs.class_attributes", "expected an object of attributes")
        if "upstream" not in any_value and not isinstance(kwargs.get("upstream", []), list):
            raise InvalidInput("kwargs.upstream", "expected a list of {'$result': task}")


class _Checking(DoJobberHandler):
    def check(self, **kwargs: Any) -> dict[str, Any]:
        job = self._instance(kwargs)
        job.Check(**_job_kwargs(kwargs))
        return {"global_storage": job.global_storage}


class _CleaningUp:
    def cleanup(self: Any, **kwargs: Any) -> None:
        self._instance(kwargs).Cleanup()


def _dojobber_handler(path: str, job_class: type) -> type[BaseHandler]:
    bases: list[type] = [
        _Checking if callable(getattr(job_class, "Check", None)) else DoJobberHandler
    ]
    if callable(getattr(job_class, "Cleanup", None)):
        bases.insert(0, _CleaningUp)
    attributes = {"name": path, "job_class": job_class}
    return type(job_class.__name__, tuple(bases), attributes)


def _job_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The kwargs a DoJobber job's ``Check`` and ``Run`` get (DoJobber's ``set_args``)."""
    return {key: value for key, value in kwargs.items() if key not in DOJOBBER_KEYS}


def _upstream_storage(results: list[Any]) -> dict[str, Any]:
    """The dependencies' ``global_storage``, merged in the order they are listed."""
    storage: dict[str, Any] = {}
    for result in results:
        if isinstance(result, dict) and isinstance(result.get("global_storage"), dict):
            storage.update(result["global_storage"])
    return storage
