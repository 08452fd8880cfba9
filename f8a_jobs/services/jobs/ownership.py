"""Who a job belongs to: the caller and their first group unless the definition says, and who
may say otherwise. An admin may give a job to anybody; others create jobs they own, in a group
of theirs, and only a job's owner (or an admin) may change its owner, group or permissions."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from f8a_jobs.core.access import Caller
from f8a_jobs.core.errors import Forbidden
from f8a_jobs.services.jobs.spec import JobSpec

ACCESS_FIELDS = {"owner": "owner", "group": "group_name", "permissions": "permissions"}


def owned(job: JobSpec, caller: Caller) -> JobSpec:
    """A new job with its owner and group filled in, as ``caller`` may make it."""
    owner, group = owner_of(job, caller)
    return dataclasses.replace(job, owner=owner, group=group)


def owner_of(job: JobSpec, caller: Caller) -> tuple[str, str | None]:
    """A new job's owner and group, as ``caller`` may make it (a 403 otherwise): ``owned``
    without a new ``JobSpec``, for a bulk create that writes them into its rows."""
    owner = job.owner or caller.user
    group = job.group if job.group is not None else next(iter(caller.groups), None)
    _check_may_give(caller, owner, group)
    return owner, group


def check_change(caller: Caller, stored: Mapping[str, Any], job: JobSpec) -> list[str]:
    """The access fields an edit changes; a 403 unless ``caller`` may change them."""
    changed = [
        name for name, column in ACCESS_FIELDS.items() if getattr(job, name) != stored[column]
    ]
    if changed and not (caller.admin or caller.user == stored["owner"]):
        raise Forbidden(
            changed[0],
            f"only the job's owner ({stored['owner']!r}) or an admin may change its owner, "
            "group and permissions",
        )
    if changed:
        _check_may_give(caller, job.owner, job.group)
    return changed


def _check_may_give(caller: Caller, owner: str | None, group: str | None) -> None:
    if caller.admin:
        return
    if owner != caller.user:
        raise Forbidden("owner", f"only an admin may give a job to another user ({owner!r})")
    if group is not None and group not in caller.groups:
        raise Forbidden("group", f"{caller.user!r} is not a member of group {group!r}")
