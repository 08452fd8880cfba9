"""JSON values at the edges: how deep they nest, and what a database will store of them.

PostgreSQL refuses the NUL character in text and in JSON, a lone UTF-16 surrogate (``\\ud800``
in JSON) cannot be encoded as UTF-8 at all, and a value nested thousands of levels deep
exhausts Python's recursion before any validator sees it; each would otherwise turn input into
a 500, or one bad record into a batch the database refuses forever.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
NUL = "\x00"
NUL_SHOWN = "\\x00"


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests lists/objects more than ``limit`` levels deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def storable_text(text: str | None, limit: int) -> str | None:
    """``text`` as a database column can hold it: NUL shown as ``\\x00``, cut to ``limit``."""
    if text is None:
        return None
    if NUL in text:
        text = text.replace(NUL, NUL_SHOWN)
    if len(text) > limit:
        text = f"{text[: limit - 40]}… [cut: {len(text):,} characters in all]"
    return text


def storable_line(text: str, limit: int) -> str:
    """A logged line as a database stores it: NUL shown as ``\\x00``, a lone surrogate (an
    undecodable byte, ``surrogateescape``'s ``\\udcff``) as its escape, cut to ``limit``."""
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode()
    return storable_text(text, limit) or ""


def storable_json(value: Any) -> Any:
    """``value`` with NUL characters in its strings (and keys) shown as ``\\x00``."""
    if isinstance(value, str):
        return value.replace(NUL, NUL_SHOWN) if NUL in value else value
    if isinstance(value, list):
        return [storable_json(item) for item in value]
    if isinstance(value, dict):
        return {storable_json(key): storable_json(item) for key, item in value.items()}
    return value


def holds_nul(value: Any) -> bool:
    """Whether a string in ``value`` (or a key) holds NUL, which PostgreSQL refuses."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate_at(raw: bytes, value: Any, root: str = "body") -> str | None:
    """The dotted path of the first string (or key) in ``value`` that holds a lone surrogate,
    which JSON can escape but UTF-8 cannot store. ``raw`` is the JSON text it was read from:
    a surrogate can only come from a ``\\uD8xx`` escape, so most bodies need no walk."""
    if not SURROGATE_ESCAPE.search(raw):
        return None
    stack: list[tuple[str, Any]] = [(root, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if LONE_SURROGATE.search(item):
                return path
        elif isinstance(item, dict):
            if any(LONE_SURROGATE.search(key) for key in item):
                return path  # one of its keys
            stack.extend((f"{path}.{key}", child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return None


class ResultRefused(ValueError):
    """A handler returned what cannot be stored as its run's result."""


def result_json(value: Any, max_bytes: int) -> Any:
    """A handler's return value as stored: JSON, at most ``max_bytes`` once encoded."""
    if value is None or isinstance(value, bool | int) and abs(value) < 2**53:
        return value  # the common case, and JSON as it is
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        raise ResultRefused(f"the handler returned a value that is not JSON: {error}") from None
    if len(encoded.encode()) > max_bytes:
        raise ResultRefused(
            f"the handler returned {len(encoded.encode()):,} bytes of JSON; at most "
            f"{max_bytes:,} are kept (F8A_JOBS_RESULT_MAX_BYTES)"
        )
    return storable_json(json.loads(encoded))
