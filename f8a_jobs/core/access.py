"""Who may do what to a job: the caller, and Datatailr's six-letter permissions.

``permissions`` reads as three pairs, for the job's owner, its group and everybody else, each
``r`` or ``-`` then ``w`` or ``-`` (``rwrwr-``: all may read, the owner and the group may
write). As with Unix modes, the first class the caller belongs to decides: the owner's pair
for the owner, the group's for a member of the group, the last pair for the others. Admins
may do everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from f8a_jobs.core.errors import InvalidInput

DEFAULT_PERMISSIONS = "rwrwr-"
PERMISSIONS = re.compile(r"[r-][w-][r-][w-][r-][w-]")
READ, WRITE = "r", "w"
RIGHT_NAMES = {READ: "read", WRITE: "write"}
OWNER, GROUP, OTHERS = 0, 2, 4  # where each class's pair starts
NAME = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


@dataclass(frozen=True)
class Caller:
    """Who makes a request: a user, their groups, and whether they are an admin."""

    user: str
    groups: tuple[str, ...] = ()
    admin: bool = False

    @property
    def started_by(self) -> str:
        """What a run this caller starts records as ``started_by``."""
        return f"user:{self.user}"

    def json(self) -> dict[str, Any]:
        return {"user": self.user, "groups": list(self.groups), "admin": self.admin}


ANONYMOUS = Caller("anonymous", (), admin=True)  # no identities configured: loopback, as before


@dataclass(frozen=True)
class Actor:
    """Who asks for a change, and the reason they give (the audit trail keeps both)."""

    caller: Caller
    reason: str | None = None

    @property
    def user(self) -> str:
        return self.caller.user


SERVICE = Actor(Caller("system", admin=True))  # the service's own changes, and direct calls


def parse_permissions(value: Any, field: str = "permissions") -> str:
    if not isinstance(value, str) or not PERMISSIONS.fullmatch(value):
        raise InvalidInput(
            field,
            f"expected six letters such as 'rwrwr-' (r or - then w or -, for the owner, the "
            f"group and the others), got {value!r}",
        )
    return value


def parse_name(value: Any, field: str, optional: bool = False) -> str | None:
    """An owner's or a group's name: 1 to 128 characters, no control characters."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise InvalidInput(
            field, f"expected a name of 1 to 128 printable characters, got {value!r}"
        )
    return value


def pair_of(caller: Caller, owner: str, group: str | None) -> int:
    """Where the caller's pair of letters starts in a job's permissions."""
    if caller.user == owner:
        return OWNER
    if group is not None and group in caller.groups:
        return GROUP
    return OTHERS


def allows(caller: Caller, owner: str, group: str | None, permissions: str, right: str) -> bool:
    """Whether ``caller`` has ``right`` (``r`` or ``w``) on a job with these fields."""
    if caller.admin:
        return True
    start = pair_of(caller, owner, group)
    return permissions[start + (right == WRITE)] == right
