"""Names a user gives that become part of a URL: job ids and workflow task names.

A job id is read, changed and deleted at ``/jobs/{job_id}``. A ``/`` in it can never reach that
path (``%2F`` is decoded before routing), nor can ``.`` or ``..`` (clients resolve them as path
steps), and a backslash is a ``/`` to browsers. Every other printable character works when
percent-encoded; spaces at either end are refused because they are typing mistakes that no one
sees in a URL.
"""

from __future__ import annotations

import re
from typing import Any

from f8a_jobs.core.errors import InvalidInput

NAME_LIMIT = 255
DOT_SEGMENTS = (".", "..")  # path steps to every client, never a name
NAME = re.compile(r"[^\x00-\x1f\x7f/\\]+")
NAME_RULE = (
    f"1 to {NAME_LIMIT} characters, none of them '/', '\\', or a control character, "
    "not '.' or '..', and no space at either end"
)


def is_addressable(value: str) -> bool:
    """Whether ``value`` can be one segment of a URL path, as ``NAME_RULE`` says."""
    return (
        0 < len(value) <= NAME_LIMIT
        and NAME.fullmatch(value) is not None
        and value not in DOT_SEGMENTS
        and value == value.strip()
    )


def addressable_name(value: Any, field: str) -> str:
    """``value`` if it is a name that can be addressed, else a 400 naming ``field``."""
    if not isinstance(value, str) or not is_addressable(value):
        raise InvalidInput(field, f"{value!r} is not a valid name: {NAME_RULE}")
    return value
