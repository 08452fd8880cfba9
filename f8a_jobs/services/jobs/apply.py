"""Apply: make the jobs a caller may change match a list of definitions, in one transaction,
as ``kubectl apply`` does for its objects. Each listed job is created (as ``POST /jobs``
would), changed (as an edit would, within the caller's write right) or left alone when what
``GET /jobs/{id}`` shows would not change; with ``prune`` the caller's other jobs go. Either
all of it lands or none of it: the first error names its job (``jobs[3].periodically``).

A list is matched by ``job_id``, so each job names one. Two fields an operator changes at run
time are kept when a definition leaves them out: ``state`` (a job paused through the API stays
paused) and ``owner``, ``group``, ``permissions``. Every change is audited on its job as the
single call audits it, with ``"bulk": true``. Rows are written in bulk (COPY and ``UPDATE …
FROM unnest`` on PostgreSQL: ``store``): ten thousand new jobs take about a second, most of
it parsing them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from f8a_jobs.core.access import WRITE, Actor, Caller
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.collector import collector_paused
from f8a_jobs.core.errors import F8aJobsError, JobsConflict
from f8a_jobs.core.schedules import parse_when
from f8a_jobs.core.states import JobState
from f8a_jobs.services import access, audit, runs
from f8a_jobs.services.jobs import pruning, secret_kwargs, store
from f8a_jobs.services.jobs.apply_request import Listed, Request, naming, parse_request
from f8a_jobs.services.jobs.editing import edit_audit, next_after_edit
from f8a_jobs.services.jobs.ownership import check_change, owner_of
from f8a_jobs.services.jobs.references import check_references
from f8a_jobs.services.jobs.service import job_json
from f8a_jobs.services.jobs.spec import JobSpec, parse_job
from f8a_jobs.storage import wakeups

# Columns a write sets that are not the definition: equal definitions may differ in them.
BOOKKEEPING = frozenset({"updated_at", "next_run_time", "source", "source_hash", "revision"})
KEPT = {"owner": "owner", "group": "group_name", "permissions": "permissions", "state": "state"}
STARTS = ("start", "run_date")  # where a schedule spec keeps its `when`


@dataclasses.dataclass
class Plan:
    """What applying a request does: rows to insert and to overwrite, jobs left alone and
    jobs deleted, and the audit rows of it all."""

    created: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    changed: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)
    audit: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    checked: list[tuple[int, JobSpec]] = dataclasses.field(default_factory=list)
    columns: set[str] = dataclasses.field(default_factory=lambda: {"revision", "updated_at"})
    relabelled: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def answer(self, dry_run: bool) -> dict[str, Any]:
        return {
            "created": [row["job_id"] for row in self.created],
            "changed": [row["job_id"] for row in self.changed],
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "dry_run": dry_run,
        }


def apply_jobs(
    engine: Engine,
    body: Any,
    actor: Actor,
    check_group: Callable[[Any], None] = lambda _group: None,
) -> dict[str, Any]:
    """Apply ``body`` (``jobs``, ``prune``, ``prune_label``, ``dry_run``) for ``actor``; the
    ids created, changed, unchanged and deleted. A dry run does it all, and rolls it back:
    its answer, and its errors, are those of the real one. ``check_group``: a job's group
    is one the API knows (it raises, naming the group)."""
    now = utcnow()
    with collector_paused():
        request = parse_request(body, now, check_group)
        if request.dry_run:
            with engine.connect() as connection, connection.begin() as transaction:
                try:
                    plan = _applied(connection, request, actor, now)
                finally:
                    transaction.rollback()
                    wakeups.forget(connection)
        else:
            with wakeups.changing(engine, None) as connection:
                plan = _applied(connection, request, actor, now)
    return plan.answer(request.dry_run)


def _applied(connection: Connection, request: Request, actor: Actor, now: datetime) -> Plan:
    """The request's plan, written in ``connection``'s transaction and checked there: the
    references between jobs hold once all of them are written."""
    stored = store.locked_many(connection, [item.job_id for item in request.listed])
    plan = Plan()
    for item in request.listed:
        with naming(f"jobs[{item.index}]"):
            _plan_one(plan, item, stored.get(item.job_id), actor, now)
    if request.prune:
        listed = {item.job_id for item in request.listed}
        doomed = pruning.prunable(connection, actor.caller, listed, request.prune_label)
        plan.deleted = [row["job_id"] for row in doomed]
        plan.audit += [_deleted(actor, row, now) for row in doomed]
    _write(connection, plan)
    pruning.check_unused(connection, actor.caller, plan.deleted)
    for index, job in plan.checked:
        with naming(f"jobs[{index}]"):
            check_references(connection, job, actor.caller)
    return plan


def _plan_one(
    plan: Plan, item: Listed, stored: dict[str, Any] | None, actor: Actor, now: datetime
) -> None:
    who = Actor(actor.caller, item.reason) if item.reason else actor
    if stored is None:
        job = item.parsed()
        owner, group = owner_of(job, actor.caller)
        row = {
            **job.row(now),
            "owner": owner,
            "group_name": group,
            "revision": 1,
            "created_at": now,
        }
        plan.created.append(row)
        plan.audit.append(audit.entry(who, "create", job.job_id, _shown(row), now))
        _to_check(plan, item.index, job)
        return
    access.checked_row(actor.caller, stored, item.job_id, WRITE)
    job = _edited(item, stored, actor.caller, now)
    written = _written(job, stored, now)
    delta = {key for key, value in written.items() if stored.get(key) != value}
    entries = [] if delta <= BOOKKEEPING else edit_audit(who, stored, written, now, bulk=True)
    if not entries:  # nothing GET /jobs/{id} shows would change
        plan.unchanged.append(job.job_id)
        return
    plan.changed.append(written)
    plan.columns |= delta
    if "labels" in delta:
        plan.relabelled[job.job_id] = written["labels"]
    plan.audit += entries
    _to_check(plan, item.index, job)


def _written(job: JobSpec, stored: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The row of ``job`` replacing ``stored``, as an edit writes it: its next run is a new
    schedule's first, none when paused, else the stored one (or from now on, resumed)."""
    row = job.row(now)
    if job.schedule == stored["schedule"] and job.state == JobState.RUNNING:
        row["next_run_time"] = next_after_edit(stored, job, False, now)
    return {
        **stored,
        **row,
        "source": stored["source"],
        "source_hash": stored["source_hash"],
        "revision": stored["revision"] + 1,
    }


def _edited(item: Listed, stored: Mapping[str, Any], caller: Caller, now: datetime) -> JobSpec:
    """The listed job as it replaces ``stored``: secret kwargs written back as ``***`` keep
    their values, a `when` that is the stored start keeps it (past or not), the schedule
    stays when only its start would move (no `when` given: now), and ``KEPT`` fields left
    out stay as stored. May ``caller`` change the access fields: a 403 if not."""
    data = secret_kwargs.kept(item.data, stored)
    if item.job is None:  # its `when` was refused: maybe it is the stored start
        data = _without_stored_when(data, stored["schedule"], now)
    job = item.job if item.job is not None and data == item.data else parse_job(data, now)
    kept = {name: stored[column] for name, column in KEPT.items() if data.get(name) is None}
    if "state" in kept:
        kept["state"] = JobState(kept["state"])
    schedule = job.schedule
    if data.get("when") in (None, "") and _timeless(schedule) == _timeless(stored["schedule"]):
        schedule = stored["schedule"]
    job = dataclasses.replace(job, schedule=schedule, **kept)
    check_change(caller, stored, job)
    return job


def _without_stored_when(data: dict[str, Any], schedule: Mapping[str, Any], now: datetime) -> Any:
    """``data`` without its `when` if that is the start of the stored ``schedule``: a job
    file's start date has passed since it was first applied, and applying it again is no
    error. Any other `when` stays, for parsing to refuse."""
    start = next((schedule[key] for key in STARTS if key in schedule), None)
    try:
        same = start is not None and parse_when(data.get("when"), now) == datetime.fromisoformat(
            start
        )
    except (F8aJobsError, TypeError, ValueError):
        same = False
    return {key: value for key, value in data.items() if key != "when"} if same else data


def _timeless(schedule: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in schedule.items() if key not in STARTS}


def _to_check(plan: Plan, index: int, job: JobSpec) -> None:
    """A job that names other jobs is checked once every job of the list is written."""
    if job.workflow is not None or job.schedule["type"] == "after":
        plan.checked.append((index, job))


def _shown(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"job": job_json(row), "bulk": True}


def _deleted(actor: Actor, row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return audit.entry(actor, "delete", row["job_id"], _shown(row), now)


def _write(connection: Connection, plan: Plan) -> None:
    """The plan's rows, each kind in a statement or a few; the scheduler is woken once, if
    one of the jobs runs before it would wake anyway."""
    try:
        store.add_many(connection, plan.created)
    except IntegrityError:
        raise JobsConflict("a job of the list was created meanwhile: apply it again") from None
    if plan.changed:  # only the columns some job changes, the labels of those that changed
        columns = ["job_id", *sorted(plan.columns)]
        rows = [{name: row[name] for name in columns} for row in plan.changed]
        store.replace_many(connection, rows, plan.relabelled)
    if plan.deleted:
        store.remove_many(connection, plan.deleted)
        for job_id in plan.deleted:
            runs.delete_runs(connection, job_id)
    audit.record_many(connection, plan.audit)
    if plan.created or plan.changed:  # a deleted job needs no pass: it is not due any more
        times = (row["next_run_time"] for row in [*plan.created, *plan.changed])
        wakeups.request_jobs_due(connection, min(filter(None, times), default=None))
