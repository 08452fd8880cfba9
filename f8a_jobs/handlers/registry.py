"""Handlers by name: the built-ins, the ``f8a_jobs.handlers`` entry-point group, and the
modules an operator names in ``F8A_JOBS_HANDLER_MODULES``; and by dotted path, the functions
and DoJobber classes of those modules (``entrypoints``)."""

from __future__ import annotations

import functools
import importlib
import inspect
from importlib.metadata import entry_points

from f8a_jobs.core.errors import InvalidHandler, InvalidInput, UnknownHandler
from f8a_jobs.core.settings import get_settings
from f8a_jobs.handlers.base import BaseHandler
from f8a_jobs.handlers.entrypoints import entrypoint_handler, is_entrypoint
from f8a_jobs.handlers.flow_scheduling import FlowScheduling, SelectiveFlowScheduling
from f8a_jobs.handlers.noop import Noop

ENTRY_POINT_GROUP = "f8a_jobs.handlers"
BUILT_INS: tuple[type[BaseHandler], ...] = (FlowScheduling, SelectiveFlowScheduling, Noop)


@functools.cache
def handlers() -> dict[str, type[BaseHandler]]:
    found: dict[str, type[BaseHandler]] = {cls.handler_name(): cls for cls in BUILT_INS}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        found[entry_point.name] = _checked(entry_point.load(), f"entry point {entry_point.name!r}")
    for module_name in get_settings().handler_modules:
        module = importlib.import_module(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseHandler) and cls.__module__ == module_name:
                found[cls.handler_name()] = cls
    return found


def _checked(obj: object, origin: str) -> type[BaseHandler]:
    if not (isinstance(obj, type) and issubclass(obj, BaseHandler)):
        raise InvalidHandler(f"{origin} gives {obj!r}, which is not a BaseHandler subclass")
    return obj


def get_handler(name: str) -> type[BaseHandler]:
    """A registered handler by its name, or a function or DoJobber class by its dotted path
    (``entrypoints``)."""
    try:
        return handlers()[name]
    except (KeyError, TypeError):
        if isinstance(name, str) and is_entrypoint(name):
            return entrypoint_handler(name)
        raise UnknownHandler(str(name), sorted(handlers())) from None


def handler_at(name: str, field: str) -> type[BaseHandler]:
    """``get_handler``, its 400 naming ``field`` (``entrypoint``, ``tasks[2].handler``)."""
    try:
        return get_handler(name)
    except InvalidInput as error:
        if error.field != "handler":
            raise
        raise InvalidInput(field, error.detail.split(": ", 1)[1]) from None
