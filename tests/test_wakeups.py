"""Wake-ups that say when the jobs changed run next (``jobs@<when>``): the scheduler is woken
for a new job only when that job runs before the pass it planned, which reads every job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from f8a_jobs.core.clock import utcnow
from f8a_jobs.services import jobs, runs
from f8a_jobs.storage import wakeups
from tests.conftest import poll

T1 = datetime(2030, 1, 1, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)


@pytest.mark.parametrize(
    ("topics", "planned", "wake"),
    [
        ({"jobs"}, T2, True),  # says nothing of when: always
        ({f"jobs@{T1.isoformat()}"}, T2, True),  # before the planned pass
        ({f"jobs@{T2.isoformat()}"}, T1, False),  # after it: that pass reads it
        ({f"jobs@{T2.isoformat()}", f"jobs@{T1.isoformat()}"}, T1 + timedelta(minutes=1), True),
        ({f"jobs@{T2.isoformat()}"}, None, True),  # no pass planned, or one under way
        ({"jobs@"}, None, False),  # none of them runs
        ({"runs", "flows"}, None, False),
    ],
)
def test_which_jobs_wake_the_scheduler(topics, planned, wake):
    assert wakeups.jobs_wake(frozenset(topics), planned) is wake


def test_a_change_names_the_earliest_next_run_of_its_jobs(engine):
    heard: list[str] = []
    wakeups.subscribe(heard.append)
    try:
        with wakeups.changing(engine, None) as connection:
            wakeups.request_jobs_due(connection, T2)
            wakeups.request_jobs_due(connection, None)  # a paused one
            wakeups.request_jobs_due(connection, T1)
        with wakeups.changing(engine, wakeups.JOBS) as connection:
            wakeups.request_jobs_due(connection, T1)  # a plain "jobs" says it all
    finally:
        wakeups.unsubscribe(heard.append)
    assert heard == [f"jobs@{T1.isoformat()}", "jobs"]


def create(engine, job_id: str, when: datetime) -> dict:
    spec = jobs.parse_job({"job_id": job_id, "handler": "Noop", "when": when.isoformat()})
    return jobs.create_job(engine, spec)


def test_a_new_job_due_before_the_planned_pass_fires_and_a_later_one_waits(
    engine, started_scheduler
):
    far = create(engine, "far", utcnow() + timedelta(hours=1))
    started_scheduler.wakeup(frozenset({wakeups.JOBS}))
    planned = datetime.fromisoformat(far["next_run_time"])
    poll(lambda: started_scheduler.store.planned == planned)
    later = create(engine, "later", utcnow() + timedelta(hours=2))
    topic = f"jobs@{later['next_run_time']}"
    assert not wakeups.jobs_wake(frozenset({topic}), started_scheduler.store.planned)
    soon = create(engine, "soon", utcnow() + timedelta(seconds=1))
    started_scheduler.wakeup(frozenset({f"jobs@{soon['next_run_time']}"}))

    def ran() -> bool:
        page, _total = runs.list_runs(engine, "soon")
        return any(run["status"] == "succeeded" for run in page)

    poll(ran, timeout=15)


def test_a_change_that_fails_wakes_nobody_and_leaves_nothing_for_the_next(engine):
    heard: list[str] = []
    wakeups.subscribe(heard.append)
    try:
        with pytest.raises(RuntimeError), wakeups.changing(engine, None) as connection:
            wakeups.request_jobs_due(connection, T1)
            wakeups.request(connection, wakeups.RUNS)
            raise RuntimeError("refused")
        for _ in range(3):  # the same pooled connection, most likely
            with wakeups.changing(engine, None):
                pass
    finally:
        wakeups.unsubscribe(heard.append)
    assert heard == []
