"""The handler contract: a job names a handler; a run calls ``Handler(job_id).execute(**kwargs)``."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import typing
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import typing_extensions
from sqlalchemy import Engine

from f8a_jobs.errors import InvalidInput
from f8a_jobs.settings import get_settings
from f8a_jobs.storage.db import get_engine

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from f8a_jobs.flows.outbox import Flow
    from f8a_jobs.runs.context import RunContext

log = logging.getLogger(__name__)
#: Arguments the service fills in for each run when ``execute`` names them; never in kwargs.
CONTEXT_ARGUMENTS = ("run_id", "scheduled_for", "rundate", "task_name", "part_num", "num_parts")


class BaseHandler:
    """Subclass it, implement ``execute(**kwargs)`` with the arguments your job needs.

    Jobs are validated against ``execute``'s signature and type hints when they are created, so
    a job that cannot run is refused then, not at its first run. Override ``validate`` for
    checks that the signature cannot express (call ``super().validate`` first). ``execute`` may
    also name ``run_id``, ``scheduled_for`` and ``rundate`` (the slot's local date,
    ``YYYY-MM-DD``) to get them; what it returns (JSON) is stored
    with the run.
    """

    name: ClassVar[str | None] = None  # the name jobs use; defaults to the class name

    def __init__(
        self, job_id: str, engine: Engine | None = None, run: RunContext | None = None
    ) -> None:
        self.job_id = job_id
        self._engine = engine
        self.run = run

    @property
    def engine(self) -> Engine:
        """The service database (the scheduler passes its own; else the configured one)."""
        if self._engine is None:
            self._engine = get_engine(get_settings().database_url)
        return self._engine

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.execute")

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
        if not isinstance(kwargs, dict):
            raise InvalidInput("kwargs", f"expected an object, got {type(kwargs).__name__}")
        reserved = sorted(set(kwargs) & set(CONTEXT_ARGUMENTS))
        if reserved:
            raise InvalidInput(f"kwargs.{reserved[0]}", "is filled in for each run; do not set it")
        signature = inspect.signature(cls.execute)
        context = dict.fromkeys(cls.context_arguments())
        bind = signature.bind_partial if missing_ok else signature.bind
        try:
            bound = bind(None, **kwargs, **context)
        except TypeError as exc:
            raise InvalidInput("kwargs", f"{exc} (handler {cls.handler_name()})") from None
        hints = _hints(cls.execute)
        for name, value in bound.arguments.items():
            if name == "self" or name in context or name not in hints:
                continue
            values = (
                value
                if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD
                else {name: value}
            )
            for key, item in values.items():
                problem = None if key in any_value else mismatch(item, hints[name])
                if problem:
                    raise InvalidInput(f"kwargs.{key}{problem[0]}", problem[1])


@functools.lru_cache(maxsize=1024)
def _context_arguments(execute: Any) -> tuple[str, ...]:
    """Cached: runs ask on every run, and ``inspect.signature`` is slow."""
    parameters = inspect.signature(execute).parameters
    return tuple(name for name in CONTEXT_ARGUMENTS if name in parameters)


def _hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # a plugin's annotation that does not resolve: check no types
        log.warning(
            "type hints of %s cannot be read (%s); kwargs are not type-checked", function, exc
        )
        return {}


def mismatch(value: Any, hint: Any) -> tuple[str, str] | None:
    """Where and how a JSON value fails a type hint (``("[2].name", "…")``), or None.

    pydantic checks it in strict JSON mode: ``Literal``, ``Enum`` values, ``TypedDict``,
    ``Annotated`` and unions all work, and nothing is coerced (``"1"`` is not an ``int``).
    """
    if hint is Any:
        return None
    adapter = _adapter(hint)
    if adapter is None:
        return (
            None
            if not isinstance(hint, type) or isinstance(value, hint)
            else ("", f"expected {hint.__name__}")
        )
    from pydantic import ValidationError  # imported once a job is validated, not to run one

    try:
        adapter.validate_json(json.dumps(value), strict=True)
    except ValidationError as error:
        first = error.errors()[0]
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
        )
        return where, f"{first['msg']} (got {json.dumps(first.get('input'))[:80]})"
    except (TypeError, ValueError) as error:  # not JSON at all
        return "", f"not a JSON value: {error}"
    return None


def fits(value: Any, hint: Any) -> bool:
    return mismatch(value, hint) is None


def _adapter(hint: Any) -> TypeAdapter[Any] | None:
    """A validator for ``hint``; None for a type pydantic cannot describe (any class)."""
    try:
        return _cached_adapter(hint)
    except TypeError:  # an unhashable hint (Annotated with a dict, say): build it each time
        return _build_adapter(hint)


@functools.lru_cache(maxsize=1024)
def _cached_adapter(hint: Any) -> TypeAdapter[Any] | None:
    return _build_adapter(hint)


def _build_adapter(hint: Any) -> TypeAdapter[Any] | None:
    from pydantic import TypeAdapter
    from pydantic.errors import PydanticUserError

    try:
        return TypeAdapter(_portable(hint))
    except (PydanticUserError, NameError, TypeError):
        return None


def _portable(hint: Any) -> Any:
    """``typing.TypedDict`` as ``typing_extensions.TypedDict``: pydantic needs the latter
    before Python 3.12."""
    if typing.is_typeddict(hint) and type(hint).__module__ == "typing":
        fields = typing.get_type_hints(hint, include_extras=True)
        return typing_extensions.TypedDict(hint.__name__, fields, total=hint.__total__)  # type: ignore[operator]
    return hint
