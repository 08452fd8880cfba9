"""Fire times people check before they trust a schedule: a job's next runs, and a preview of
a schedule not saved yet."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from f8a_jobs.api.auth import caller
from f8a_jobs.api.context import Response, engine, reply
from f8a_jobs.core.calendars import describe_slots
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.schedules import next_fire_times, parse_schedule, schedule_zone
from f8a_jobs.services import jobs

WORDS = ("when", "periodically", "cron", "calendar", "timezone", "manual")


def get_next_runs(job_id: str, count: int = 10) -> Response:
    spec, next_run, has_run = jobs.get_schedule(engine(), job_id, caller())
    if spec["type"] == "date" and has_run:
        return reply(_next_runs(spec, [], count))
    start = next_run or utcnow()  # a running job's next run is the scheduler's own
    return reply(_next_runs(spec, next_fire_times(spec, start, count), count))


def post_preview(body: dict[str, Any], count: int = 10) -> Response:
    now = utcnow()
    spec = parse_schedule(now=now, **{word: body.get(word) for word in WORDS})
    return reply(_next_runs(spec, next_fire_times(spec, now, count), count))


def _next_runs(spec: dict[str, Any], instants: list[datetime], count: int) -> dict[str, Any]:
    zone = schedule_zone(spec)
    answer = {"timezone": str(zone), "next_runs": describe_slots(instants, zone)}
    if len(instants) < count:
        answer["ends"] = _why_it_ends(spec, instants)
    return answer


def _why_it_ends(spec: dict[str, Any], instants: list[datetime]) -> str:
    kind = spec["type"]
    if kind == "after":
        return "this job runs after another job's runs, not at times of its own"
    if kind == "manual":
        return "this job runs only when started"
    if kind == "date":
        return "a one-shot job runs once" if instants else "this one-shot job has run"
    return "no later time exists: dates end with the year 9999"
