"""Backfill: a run for every slot of a job's schedule in a range, each with its own
``scheduled_for`` (and ``rundate``), run one after another, oldest first: a slot's end wakes
the claimer (``wakeups.ENDED``), so the next starts then, not at the next poll.

As Temporal's backfill, it has a policy of its own: neither ``overlap`` nor the misfire grace
time skips these runs (``trigger`` says ``backfill``). A slot already backfilled is not queued
twice; a range of more slots than ``F8A_JOBS_BACKFILL_MAX_RUNS`` is refused, saying how many.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from f8a_jobs.core.access import SERVICE, WRITE, Actor, Caller
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.fields import PRIORITIES, parse_moment, parse_priority
from f8a_jobs.core.schedules import schedule_slots
from f8a_jobs.core.settings import get_settings
from f8a_jobs.services import access, audit
from f8a_jobs.services.runs.queue import queue_backfill
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.tables import jobs

COUNTED_AT_MOST = 1_000_000  # slots counted to say how many a refused range holds


def backfill(engine: Engine, job_id: str, body: Any, actor: Actor = SERVICE) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected {'start': …, 'end': …}")
    start, end = parse_moment(body.get("start"), "start"), parse_moment(body.get("end"), "end")
    if end < start:
        raise InvalidInput("end", f"{end.isoformat()} is before start {start.isoformat()}")
    priority = parse_priority(body.get("priority", "lowest"), "priority", tuple(PRIORITIES))
    spec = _schedule(engine, job_id, actor.caller)
    limit = get_settings().backfill_max_runs
    slots = list(itertools.islice(schedule_slots(spec, start, end), limit + 1))
    if len(slots) > limit:
        raise InvalidInput(
            "end",
            f"the range holds {_how_many(spec, start, end)} slots, more "
            f"than {limit} (F8A_JOBS_BACKFILL_MAX_RUNS): split it",
        )
    with wakeups.changing(engine, wakeups.RUNS) as connection:
        access.check(connection, actor.caller, job_id, WRITE)
        fresh = queue_backfill(connection, job_id, slots, actor.caller.started_by, priority)
        details = {"start": start.isoformat(), "end": end.isoformat(), "queued": len(fresh)}
        audit.record(connection, actor, "backfill", job_id, details)
    return {
        "job_id": job_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "slots": len(slots),
        "queued": len(fresh),
        "already_backfilled": len(slots) - len(fresh),
        "first": slots[0].isoformat() if slots else None,
        "last": slots[-1].isoformat() if slots else None,
    }


def _schedule(engine: Engine, job_id: str, caller: Caller) -> dict[str, Any]:
    with engine.connect() as connection:
        access.check(connection, caller, job_id, WRITE)
        spec = connection.execute(select(jobs.c.schedule).where(jobs.c.job_id == job_id)).scalar()
    return dict(spec or {})


def _how_many(spec: dict[str, Any], start: datetime, end: datetime) -> str:
    counted = sum(
        1 for _ in itertools.islice(schedule_slots(spec, start, end), COUNTED_AT_MOST + 1)
    )
    return f"more than {COUNTED_AT_MOST:,}" if counted > COUNTED_AT_MOST else f"{counted:,}"
