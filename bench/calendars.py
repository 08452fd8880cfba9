"""Calendar jobs in many time zones, all due in the same minute: each job's calendar names the
local hour and minute that is that instant in its zone. Every run is either run or recorded
missed; lateness is the run's start minus its slot."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select

from bench.ours import firing_scheduler, migrated
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.schedules import parse_schedule
from f8a_jobs.core.states import JobState
from f8a_jobs.services.jobs import HandlerCall, JobSpec
from f8a_jobs.storage.tables import job_runs, jobs
from tests.conftest import poll

ZONES = (
    "UTC", "Europe/Paris", "Europe/London", "America/New_York", "America/Los_Angeles",
    "America/Sao_Paulo", "Asia/Tokyo", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Sydney",
    "Australia/Adelaide", "Pacific/Auckland", "Pacific/Chatham", "Africa/Nairobi", "Asia/Tehran",
)


def calendar_burst(url: str, count: int, threads: int) -> dict[str, Any]:
    engine = migrated(url)
    now = utcnow()
    due = (now + timedelta(seconds=75)).replace(second=0, microsecond=0)
    _store(engine, count, due, now)
    firing = firing_scheduler(engine, threads)
    firing.start(paused=False)
    time.sleep(max(0.0, (due - utcnow()).total_seconds()))  # the burst is what we measure
    poll(lambda: _accounted(engine) >= count, timeout=300, interval=0.05)
    firing.set_paused(True)
    firing.stop()
    with engine.connect() as connection:
        started = connection.execute(
            select(job_runs.c.started_at, job_runs.c.scheduled_for).where(
                job_runs.c.status == "succeeded"
            )
        ).all()
    engine.dispose()
    lateness = sorted((start - slot).total_seconds() * 1000 for start, slot in started)
    run, accounted = len(started), _accounted_of(url)
    return {
        "expected": count,
        "run": run,
        "missed": accounted - run,
        "unaccounted": count - accounted,
        "late_p50_ms": lateness[len(lateness) // 2],
        "late_p99_ms": lateness[int(len(lateness) * 0.99)],
        "all_at": all(slot == due for _, slot in started),
    }


def _store(engine: Any, count: int, due: Any, now: Any) -> None:
    rows = []
    for n in range(count):
        zone = ZONES[n % len(ZONES)]
        local = due.astimezone(ZoneInfo(zone))
        calendar = {"at_hours": [local.hour], "at_minutes": [local.minute], "timezone": zone}
        schedule = parse_schedule(calendar=calendar, now=now)
        job = JobSpec(f"cal-{n:05}", HandlerCall("Noop", {}), schedule, JobState.RUNNING, 3600)
        rows.append({**job.row(now), "revision": 1, "created_at": now})
    with engine.begin() as connection:
        for start in range(0, count, 5000):
            connection.execute(insert(jobs), rows[start : start + 5000])


def _accounted(engine: Any) -> int:
    """Runs that ran or were recorded missed (a missed row may stand for several)."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.coalesce(func.sum(func.coalesce(job_runs.c.missed_count, 1)), 0)).where(
                    job_runs.c.status.in_(("succeeded", "failed", "missed"))
                )
            ).scalar_one()
        )


def _accounted_of(url: str) -> int:
    engine = migrated(url)
    try:
        return _accounted(engine)
    finally:
        engine.dispose()
