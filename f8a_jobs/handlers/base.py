"""The handler contract: a job names a handler; a run calls ``Handler(job_id).execute(**kwargs)``."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, ClassVar

from sqlalchemy import Engine

from f8a_jobs.errors import InvalidInput
from f8a_jobs.settings import get_settings
from f8a_jobs.storage.db import get_engine


class BaseHandler:
    """Subclass it, implement ``execute(**kwargs)`` with the arguments your job needs.

    Jobs are validated against ``execute``'s signature and type hints when they are created, so
    a job that cannot run is refused then, not at its first run. Override ``validate`` for
    checks that the signature cannot express (call ``super().validate`` first).
    """

    name: ClassVar[str | None] = None  # the name jobs use; defaults to the class name

    def __init__(self, job_id: str, engine: Engine | None = None) -> None:
        self.job_id = job_id
        self._engine = engine

    @property
    def engine(self) -> Engine:
        """The service database (the scheduler passes its own; else the configured one)."""
        if self._engine is None:
            self._engine = get_engine(get_settings().database_url)
        return self._engine

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.execute")

    @classmethod
    def handler_name(cls) -> str:
        return cls.name or cls.__name__

    @classmethod
    def validate(cls, kwargs: dict[str, Any]) -> None:
        """Raise ``InvalidInput`` unless ``kwargs`` fit ``execute``."""
        if not isinstance(kwargs, dict):
            raise InvalidInput("kwargs", f"expected an object, got {type(kwargs).__name__}")
        try:
            bound = inspect.signature(cls.execute).bind(None, **kwargs)
        except TypeError as exc:
            raise InvalidInput("kwargs", f"{exc} (handler {cls.handler_name()})") from None
        hints = typing.get_type_hints(cls.execute)
        for name, value in bound.arguments.items():
            hint = hints.get(name)
            if hint is not None and name != "self" and not fits(value, hint):
                raise InvalidInput(
                    f"kwargs.{name}", f"expected {_type_name(hint)}, got {type(value).__name__}"
                )


def fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a type hint (str, int, list[dict], X | None, Any, …)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is None:
        if hint is float:
            return isinstance(value, int | float) and not isinstance(value, bool)
        if hint is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return not isinstance(hint, type) or isinstance(value, hint)
    if not isinstance(value, origin):
        return False
    args = typing.get_args(hint)
    if origin is list and args:
        return all(fits(item, args[0]) for item in value)
    if origin is dict and len(args) == 2:
        return all(fits(k, args[0]) and fits(v, args[1]) for k, v in value.items())
    return True


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
