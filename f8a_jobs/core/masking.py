"""Secrets kept out of what the service shows and stores: captured logs, runs' errors and
tracebacks, and kwargs shown by the API.

A kwarg is secret when its name contains one of ``SECRET_WORDS`` (``db_password``,
``GITHUB_TOKEN``…) or when its job lists it in ``secret_kwargs``. Its value, and each of the
service's own secrets (``Settings.secrets``), is replaced by ``***`` wherever it appears in a
text. Values shorter than ``MIN_LENGTH`` characters are not searched for: masking every ``a``
would garble every line and hide nothing.

The API shows a secret kwarg's value as ``***`` (``masked_kwargs``); a job written back with
``***`` there keeps the value stored before (``kept_kwargs``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_WORDS = ("password", "passwd", "token", "secret", "api_key", "apikey")
_SECRET_WORD = re.compile("|".join(SECRET_WORDS), re.IGNORECASE)  # one scan a name: every run
SHOWN = "***"
MIN_LENGTH = 3


def is_secret_key(name: str, listed: Iterable[str] = ()) -> bool:
    return name in listed or _SECRET_WORD.search(name) is not None


def secret_values(kwargs: Mapping[str, Any], listed: Iterable[str] = ()) -> list[str]:
    """The values of the secret kwargs, as text (a number or a nested value as JSON would
    show it)."""
    listed = tuple(listed)
    values: list[str] = []
    for name, value in kwargs.items():
        if is_secret_key(name, listed) and value is not None:
            values.extend(_texts(value))
    return values


def _texts(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return [str(value)]


def masked_kwargs(kwargs: Mapping[str, Any], listed: Iterable[str] = ()) -> dict[str, Any]:
    """``kwargs`` as the API shows them: each secret one's value is ``***``."""
    listed = tuple(listed)
    return {
        name: SHOWN if is_secret_key(name, listed) and value is not None else value
        for name, value in kwargs.items()
    }


def masked_items(items: Any, listed: Iterable[str] = ()) -> Any:
    """A ``for_each``'s items as the API shows them: each item becomes its part's kwargs (an
    object's keys, any other value ``item``), so their secret values are ``***`` too. A
    ``$result`` or ``$filter`` is not a list of values: it is shown as it is."""
    if not isinstance(items, list):
        return items
    listed = tuple(listed)
    return [_masked_item(item, listed) for item in items]


def _masked_item(item: Any, listed: tuple[str, ...]) -> Any:
    if isinstance(item, dict):
        return masked_kwargs(item, listed)
    return SHOWN if item is not None and is_secret_key("item", listed) else item


def kept_kwargs(
    kwargs: Mapping[str, Any], stored: Mapping[str, Any], listed: Iterable[str] = ()
) -> dict[str, Any]:
    """``kwargs`` a client writes back, each secret one that reads ``***`` given its value
    ``stored`` before: a client that reads a job and writes it back unchanged sends what it
    was shown, and must not overwrite the secret with ``***``. With nothing stored under
    that name, ``***`` is kept as the value it is."""
    listed = tuple(listed)
    return {
        name: stored[name] if _kept(name, value, stored, listed) else value
        for name, value in kwargs.items()
    }


def _kept(name: str, value: Any, stored: Mapping[str, Any], listed: tuple[str, ...]) -> bool:
    return value == SHOWN and name in stored and is_secret_key(name, listed)


def kept_items(items: Any, stored: Any, listed: Iterable[str] = ()) -> Any:
    """``for_each`` items written back (``kept_kwargs`` for each), matched with the items
    stored before by their place in the list, as a client that read them sends them."""
    if not isinstance(items, list) or not isinstance(stored, list):
        return items
    listed = tuple(listed)
    return [
        _kept_item(item, stored[index] if index < len(stored) else None, listed)
        for index, item in enumerate(items)
    ]


def _kept_item(item: Any, stored: Any, listed: tuple[str, ...]) -> Any:
    if isinstance(item, dict) and isinstance(stored, dict):
        return kept_kwargs(item, stored, listed)
    if isinstance(item, dict) or isinstance(stored, dict) or stored is None:
        return item  # an object was never shown as one ***, nor was a missing item
    return kept_kwargs({"item": item}, {"item": stored}, listed)["item"]


class Masker:
    """Replaces known secret values in texts; cheap when there are none."""

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[str]) -> None:
        unique = {value for value in values if len(value) >= MIN_LENGTH}
        # the longest first: a secret containing another is masked whole
        self._values = tuple(sorted(unique, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._values)

    def __call__(self, text: str | None) -> str | None:
        if not text or not self._values:
            return text
        for value in self._values:
            if value in text:
                text = text.replace(value, SHOWN)
        return text

    def joined(self, other: Iterable[str]) -> Masker:
        other = tuple(other)
        return Masker((*self._values, *other)) if other else self
