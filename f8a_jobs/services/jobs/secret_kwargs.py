"""Secret kwargs in a job as the API shows it, and as a client writes it back.

The view shows each secret kwarg's value as ``***`` (``core/masking.py``): the job's own
kwargs, and its tasks' kwargs and ``for_each`` items, with the job's ``secret_kwargs`` for all
of them. The row keeps the real values, which handlers run with. A client that reads a job and
writes it back unchanged sends ``***``: a write keeps the value stored before for each of
them, so reading and writing back loses nothing. Alert targets' webhook URLs are secrets too
(a Slack hook's path is its key): shown as their host, kept when written back so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from f8a_jobs.core.alerts import kept_targets, masked_targets
from f8a_jobs.core.masking import kept_items, kept_kwargs, masked_items, masked_kwargs


def shown(job: Mapping[str, Any]) -> dict[str, Any]:
    """A job's fields as stored (``service.job_fields``), each secret kwarg's value ``***``."""
    listed = tuple(job.get("secret_kwargs") or ())
    view = {**job, "kwargs": masked_kwargs(job["kwargs"], listed)}
    if job.get("alerts"):
        view["alerts"] = masked_targets(job["alerts"])
    if "tasks" in job:
        view["tasks"] = [_shown_task(task, listed) for task in job["tasks"]]
    return view


def _shown_task(task: Mapping[str, Any], listed: tuple[str, ...]) -> dict[str, Any]:
    view = dict(task)
    if "kwargs" in task:
        view["kwargs"] = masked_kwargs(task["kwargs"], listed)
    if "for_each" in task:
        view["for_each"] = masked_items(task["for_each"], listed)
    return view


def kept(job: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """A job's fields as a client writes them back (not yet parsed), each secret kwarg that
    reads ``***`` given the value of the ``stored`` row: the job's kwargs by name, its tasks'
    by task name and kwarg name (``for_each`` items by their place). A kwarg listed before the
    write is secret here even if the write unlists it: the client was shown ``***`` for it."""
    listed = (*_names(job.get("secret_kwargs")), *(stored["policy"] or {}).get("secret_kwargs", ()))
    written = dict(job)
    if job.get("alerts"):
        written["alerts"] = kept_targets(job["alerts"], stored.get("alerts"))
    if isinstance(job.get("kwargs"), dict):
        written["kwargs"] = kept_kwargs(job["kwargs"], stored["kwargs"], listed)
    if isinstance(job.get("tasks"), list) and stored["workflow"]:
        before = {task["name"]: task for task in stored["workflow"]["tasks"]}
        written["tasks"] = [_kept_task(task, before, listed) for task in job["tasks"]]
    return written


def _names(value: Any) -> tuple[Any, ...]:
    """The ``secret_kwargs`` a write gives, as far as they are a list (parsing the job says
    what is wrong with them otherwise)."""
    return tuple(value) if isinstance(value, list) else ()


def _kept_task(task: Any, before: Mapping[str, Mapping[str, Any]], listed: tuple[Any, ...]) -> Any:
    name = task.get("name") if isinstance(task, Mapping) else None
    old = before.get(name) if isinstance(name, str) else None
    if old is None:
        return task  # a new task (or not one at all: parsing the job refuses it)
    written = dict(task)
    if isinstance(task.get("kwargs"), dict):
        written["kwargs"] = kept_kwargs(task["kwargs"], old.get("kwargs", {}), listed)
    if "for_each" in task:
        written["for_each"] = kept_items(task["for_each"], old.get("for_each"), listed)
    return written
