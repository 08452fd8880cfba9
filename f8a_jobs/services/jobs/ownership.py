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
    owner = job.owner or caller.user
    group = job.group if job.group is not None else next(iter(caller.groups), None)
    job = dataclasses.replace(job, owner=owner, group=group)
    _check_may_give(caller, job)
    return job


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
        _check_may_give(caller, job)
    return changed


def _check_may_give(caller: Caller, job: JobSpec) -> None:
    if caller.admin:
        return
    if job.owner != caller.user:
        raise Forbidden("owner", f"only an admin may give a job to another user ({job.owner!r})")
    if job.group is not None and job.group not in caller.groups:
        raise Forbidden("group", f"{caller.user!r} is not a member of group {job.group!r}")
