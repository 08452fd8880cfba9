"""Whether a job's kwargs fit a handler's type hints: pydantic in strict JSON mode, so
``Literal``, ``Enum`` values, ``TypedDict``, ``Annotated`` and unions all work, and nothing is
coerced (``"1"`` is not an ``int``)."""

from __future__ import annotations

import functools
import json
import logging
import typing
from typing import TYPE_CHECKING, Any

import typing_extensions

if TYPE_CHECKING:
    from pydantic import TypeAdapter

log = logging.getLogger(__name__)


def hints(function: Any) -> dict[str, Any]:
    """``function``'s type hints (none when a plugin's annotation does not resolve)."""
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # a plugin's annotation that does not resolve: check no types
        log.warning(
            "type hints of %s cannot be read (%s); kwargs are not type-checked", function, exc
        )
        return {}


def mismatch(value: Any, hint: Any) -> tuple[str, str] | None:
    """Where and how a JSON value fails a type hint (``("[2].name", "…")``), or None."""
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
