"""``PATCH /jobs/{id}``: change any fields of a job, validated as at creation, guarded by the
revision the client read."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine

from f8a_jobs.core.access import SERVICE, WRITE, Actor
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.errors import InvalidInput, StaleRevision
from f8a_jobs.core.policy import RETRY_KEYS
from f8a_jobs.core.schedules import first_run_time, next_run_time
from f8a_jobs.core.states import JobState
from f8a_jobs.services import access, audit
from f8a_jobs.services.jobs import secret_kwargs, store
from f8a_jobs.services.jobs.ownership import check_change
from f8a_jobs.services.jobs.references import check_references
from f8a_jobs.services.jobs.service import job_fields, job_json
from f8a_jobs.services.jobs.spec import ACCESS_KEYS, JOB_KEYS, WORKFLOW_KEYS, JobSpec, parse_job
from f8a_jobs.storage import wakeups

SCHEDULE_WORDS = ("periodically", "cron", "calendar", "after", "manual")
TOUCHES_SCHEDULE = ("when", "timezone", *SCHEDULE_WORDS)
UNAUDITED = ("revision", "next_run_time", "last_run")  # moved by the scheduler, not by edits


def patch_job(
    engine: Engine,
    job_id: str,
    patch: Any,
    expected_revision: int | str | None = None,
    actor: Actor = SERVICE,
) -> dict[str, Any]:
    """Change any fields of a job, validated as at creation; with ``expected_revision`` (or a
    ``revision`` field) only if nobody changed the job since. The next run is recomputed when
    the schedule or the state changes; a scheduler pass that read the old revision does not
    overwrite the edit (its writes are guarded by the revision). A secret kwarg sent back as
    the ``***`` the API showed keeps its stored value (``secret_kwargs.kept``). The audit
    trail gets the fields changed, with old and new values as the API shows them."""
    if not isinstance(patch, Mapping):
        raise InvalidInput("body", f"expected an object, got {type(patch).__name__}")
    changes = {key: value for key, value in patch.items() if key != "revision"}
    expected = _revision(patch.get("revision", expected_revision))
    if changes.get("job_id", job_id) != job_id:
        raise InvalidInput("job_id", "a job's id cannot change")
    now = utcnow()
    with wakeups.changing(engine, wakeups.JOBS) as connection:
        access.check(connection, actor.caller, job_id, WRITE)
        stored = store.locked(connection, job_id)
        if expected is not None and expected != stored["revision"]:
            raise StaleRevision(job_id, expected, stored["revision"])
        written = secret_kwargs.kept(_merged(stored, changes), stored)
        job = parse_job(written, now, source=stored["source"])
        rescheduled = any(key in changes for key in TOUCHES_SCHEDULE)
        if not rescheduled:
            job = dataclasses.replace(job, schedule=stored["schedule"])
        check_change(actor.caller, stored, job)
        check_references(connection, job, actor.caller)
        values = {
            **job.row(now),
            "next_run_time": next_after_edit(stored, job, rescheduled, now),
            "source_hash": stored["source_hash"],
            "revision": stored["revision"] + 1,
        }
        store.change(connection, job_id, values)
        audit.record_many(connection, edit_audit(actor, stored, {**stored, **values}, now))
    return job_json({**stored, **values})


def edit_audit(
    actor: Actor,
    stored: Mapping[str, Any],
    written: Mapping[str, Any],
    now: datetime,
    **details: Any,
) -> list[dict[str, Any]]:
    """The audit rows of an edit: ``edit`` for the fields that changed, ``permissions`` for
    owner, group and permissions; none when nothing the API shows changed. Fields compare by
    stored values and show as the API shows them, so a changed secret kwarg is listed, as
    ``***`` on both sides. ``details``: more to say in each row (a bulk edit says so)."""
    before, after = job_fields(stored), job_fields(written)
    names = [name for name in {**before, **after} if name not in UNAUDITED]
    changed = [name for name in names if before.get(name) != after.get(name)]
    if not changed:
        return []
    shown_before, shown_after = secret_kwargs.shown(before), secret_kwargs.shown(after)
    entries = []
    for action, names in (
        ("edit", [name for name in changed if name not in ACCESS_KEYS]),
        ("permissions", [name for name in changed if name in ACCESS_KEYS]),
    ):
        if names:
            diff = {
                name: {"old": shown_before.get(name), "new": shown_after.get(name)}
                for name in names
            }
            changes = {"changes": diff, **details}
            entries.append(audit.entry(actor, action, stored["job_id"], changes, now))
    return entries


def _revision(value: Any) -> int | None:
    if value is None or value == "":
        return None
    text = str(value).strip().strip('"').removeprefix("W/").strip('"')
    if isinstance(value, bool) or not text.isdigit():
        raise InvalidInput("revision", f"expected the job's revision number, got {value!r}")
    return int(text)


def _merged(stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The job as the API would create it, with ``changes`` applied. Giving one schedule word
    replaces the others; giving ``tasks`` replaces the handler, and the other way round; a
    null removes a field."""
    base = {key: value for key, value in job_fields(stored).items() if key in JOB_KEYS}
    base = {key: value for key, value in base.items() if value is not None}
    if "tasks" in base:
        base.pop("kwargs", None)  # a workflow's kwargs are its tasks'
    if not any(key in changes for key in TOUCHES_SCHEDULE):  # the stored schedule stays
        base = {key: value for key, value in base.items() if key not in TOUCHES_SCHEDULE}
    if any(word in changes for word in SCHEDULE_WORDS):
        base = {key: value for key, value in base.items() if key not in SCHEDULE_WORDS}
    if any(key in changes for key in TOUCHES_SCHEDULE) and "when" not in changes:
        base.pop("when", None)  # a new schedule starts now, not at the old start
    if "tasks" in changes:
        dropped = ("handler", "kwargs", *RETRY_KEYS)
        base = {key: value for key, value in base.items() if key not in dropped}
    if "handler" in changes:
        base = {key: value for key, value in base.items() if key not in WORKFLOW_KEYS}
        base.setdefault("kwargs", {})
    if base.get("calendar") and "timezone" in base and "timezone" not in changes:
        base.pop("timezone")  # the calendar names its own zone
    merged = {**base, **changes}
    return {key: value for key, value in merged.items() if value is not None}


def next_after_edit(
    stored: Mapping[str, Any], job: JobSpec, rescheduled: bool, now: datetime
) -> datetime | None:
    """An edited job's next run: none when paused, the new schedule's first when it changed,
    from now on when it resumes, else the one it had (the scheduler's progress stays)."""
    if job.state == JobState.PAUSED:
        return None
    if rescheduled:
        return first_run_time(job.schedule)
    if stored["state"] == JobState.PAUSED:
        return next_run_time(job.schedule, now, stored["last_run"] is not None)
    return cast(datetime | None, stored["next_run_time"])
