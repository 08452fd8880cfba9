"""Bulk actions: pause, resume or run every job of a selection (ids, or label, handler and
state filters) in one transaction, each change audited as if it were made one by one.

Listed ids must each be writable by the caller (a 404 or 403 names the first that is not,
and nothing changes); filters select only among the jobs the caller may change.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from f8a_jobs.core.access import WRITE, Actor
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.errors import InvalidInput, refuse_unknown
from f8a_jobs.core.fields import parse_labels
from f8a_jobs.core.names import addressable_name
from f8a_jobs.core.schedules import next_run_time
from f8a_jobs.core.states import JobState
from f8a_jobs.services import access, audit, runs
from f8a_jobs.services.jobs import store
from f8a_jobs.services.jobs.spec import parse_state
from f8a_jobs.services.labels import labelled
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.tables import jobs

SELECTION_KEYS = ("job_ids", "label", "handler", "state", "reason")
MAX_JOBS = 10_000  # one transaction's worth; a larger selection is refused, named
SELECTED = (jobs.c.job_id, jobs.c.state, jobs.c.schedule, jobs.c.last_run, jobs.c.revision)


def set_states(engine: Engine, body: Any, state: str, actor: Actor) -> dict[str, Any]:
    """Pause or resume the selected jobs; those already so are left alone."""
    now = utcnow()
    with wakeups.changing(engine, wakeups.JOBS) as connection:
        selected = _selected(connection, body, actor)
        changed = [row for row in selected if row.state != state]
        for row in changed:
            _set_state(connection, row, JobState(state), actor, now)
    return _answer(selected, [row.job_id for row in changed])


def run_now(engine: Engine, body: Any, actor: Actor) -> dict[str, Any]:
    """Queue one run of each selected job now (their schedules are untouched)."""
    now = utcnow()
    with wakeups.changing(engine, wakeups.RUNS) as connection:
        selected = _selected(connection, body, actor)
        queued = {}
        for row in selected:
            run = runs.queue_manual(connection, row.job_id, now, actor.caller.started_by)
            audit.record(connection, actor, "run", row.job_id, {"run_id": run["run_id"]}, now)
            queued[row.job_id] = run["run_id"]
    return {**_answer(selected, list(queued)), "runs": queued}


def _set_state(
    connection: Connection, row: Any, state: JobState, actor: Actor, now: datetime
) -> None:
    running = state == JobState.RUNNING
    values = {
        "state": state,
        "next_run_time": next_run_time(row.schedule, now, row.last_run is not None)
        if running
        else None,
        "updated_at": now,
        "revision": row.revision + 1,
    }
    store.change(connection, row.job_id, values)
    details = {"state": {"old": row.state}, "bulk": True}
    audit.record(connection, actor, "resume" if running else "pause", row.job_id, details, now)


def _selected(connection: Connection, body: Any, actor: Actor) -> list[Any]:
    """The selection's rows, locked until the transaction ends."""
    if not isinstance(body, Mapping):
        raise InvalidInput("body", "expected an object: job_ids, or label, handler, state")
    refuse_unknown(body, SELECTION_KEYS)
    ids = _job_ids(body.get("job_ids"))
    conditions = _filters(body)
    if ids is None and not conditions:
        raise InvalidInput("body", "select jobs: job_ids, or a label, handler or state filter")
    if ids is not None:
        for job_id in ids:
            access.check(connection, actor.caller, job_id, WRITE)
        conditions.append(jobs.c.job_id.in_(ids))
    if not actor.caller.admin:
        conditions.append(access.allowed(actor.caller, WRITE))
    query = select(*SELECTED).where(*conditions).order_by(jobs.c.job_id).limit(MAX_JOBS + 1)
    rows = list(connection.execute(query.with_for_update()).all())
    if len(rows) > MAX_JOBS:
        raise InvalidInput("body", f"selects more than {MAX_JOBS} jobs: narrow it")
    return rows


def _job_ids(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > MAX_JOBS:
        raise InvalidInput("job_ids", f"expected a list of 1 to {MAX_JOBS} job ids")
    return list(dict.fromkeys(addressable_name(item, "job_ids") for item in value))


def _filters(body: Mapping[str, Any]) -> list[Any]:
    conditions = [
        labelled(jobs.c.job_id, name) for name in parse_labels(body.get("label"), "label")
    ]
    handler = body.get("handler")
    if handler is not None:
        if not isinstance(handler, str) or not handler:
            raise InvalidInput("handler", f"expected a handler name, got {handler!r}")
        conditions.append(jobs.c.handler == handler)
    if body.get("state") is not None:
        conditions.append(jobs.c.state == parse_state(body["state"]))
    return conditions


def _answer(selected: list[Any], changed: list[str]) -> dict[str, Any]:
    return {"selected": len(selected), "changed": len(changed), "job_ids": changed}
