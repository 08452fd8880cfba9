"""Plain APScheduler 3: BackgroundScheduler, SQLAlchemyJobStore, ThreadPoolExecutor."""

from __future__ import annotations

import json
import pickle
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import create_engine, insert, text


def noop() -> None:
    """The job every benchmark runs: measures the scheduler, not the work."""


def scheduler(url: str, threads: int) -> BackgroundScheduler:
    return BackgroundScheduler(
        timezone=UTC,
        jobstores={"default": SQLAlchemyJobStore(url=url)},
        executors={"default": ThreadPoolExecutor(threads)},
        job_defaults={"misfire_grace_time": 3600},
    )


def fires_per_second(url: str, jobs: int, threads: int) -> float:
    plain = scheduler(url, threads)
    plain.start(paused=True)
    now = datetime.now(UTC)
    for number in range(jobs):
        plain.add_job(noop, "date", run_date=now, id=f"once-{number}")
    return jobs / seconds_until_executed(plain, jobs)


def seconds_until_executed(plain: BackgroundScheduler, jobs: int) -> float:
    """Resume a paused scheduler; seconds until ``jobs`` runs have executed. Shuts it down."""
    done = threading.Event()
    executed = []

    def count(_event: object) -> None:
        executed.append(1)
        if len(executed) == jobs:
            done.set()

    plain.add_listener(count, EVENT_JOB_EXECUTED)
    started = time.perf_counter()
    plain.resume()
    done.wait(600)
    elapsed = time.perf_counter() - started
    plain.shutdown()
    return elapsed


def flows_committed_per_second(url: str, jobs: int, threads: int) -> float:
    """Plain APScheduler whose job function commits one outbox INSERT per run, as the original
    service's dispatch did: timed from resume until every run's flow is committed."""
    engine = create_engine(url, pool_size=threads, max_overflow=0)
    with engine.begin() as connection:
        connection.execute(text(
            "CREATE TABLE plain_outbox (id bigserial PRIMARY KEY, flow_name text, arguments jsonb)"
        ))
    plain = scheduler(url, threads)
    plain.start(paused=True)
    now = datetime.now(UTC)
    for number in range(jobs):
        plain.add_job(dispatch_one, "date", run_date=now, id=f"flow-{number}", args=[url, number])
    _engines[url] = engine
    elapsed = seconds_until_executed(plain, jobs)
    with engine.connect() as connection:
        committed = connection.execute(text("SELECT count(*) FROM plain_outbox")).scalar()
    engine.dispose()
    assert committed == jobs, committed
    return jobs / elapsed


_engines: dict[str, Any] = {}


def dispatch_one(url: str, number: int) -> None:
    """One flow, one INSERT, one commit (the job function pickled into the job store)."""
    with _engines[url].begin() as connection:
        connection.execute(
            text("INSERT INTO plain_outbox (flow_name, arguments) VALUES ('bayesianFlow', :a)"),
            {"a": json.dumps({"name": "serve-static", "job_id": f"flow-{number}"})},
        )


def get_jobs_seconds(url: str, jobs: int, repeats: int = 3) -> float:
    """Median time of ``scheduler.get_jobs()`` with ``jobs`` stored (rows as the store writes them)."""
    plain = scheduler(url, 4)
    plain.start(paused=True)
    template = plain.add_job(noop, "interval", weeks=1, id="template")
    state = template.__getstate__()
    table = plain._lookup_jobstore("default").jobs_t
    engine = create_engine(url)
    next_run = template.next_run_time.timestamp()
    with engine.begin() as connection:
        for start in range(0, jobs - 1, 5000):
            rows = [
                {
                    "id": f"job-{n}",
                    "next_run_time": next_run,
                    "job_state": pickle.dumps({**state, "id": f"job-{n}"}, pickle.HIGHEST_PROTOCOL),
                }
                for n in range(start, min(start + 5000, jobs - 1))
            ]
            connection.execute(insert(table), rows)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        assert len(plain.get_jobs()) == jobs
        timings.append(time.perf_counter() - started)
    plain.shutdown()
    engine.dispose()
    return statistics.median(timings)


def interval_accounting(url: str, jobs: int, seconds: float, threads: int) -> dict[str, int]:
    """Every job due every second: how many due runs leave no trace (no run, no event)."""
    plain = scheduler(url, threads)
    plain.start(paused=True)
    start = datetime.now(UTC) + timedelta(seconds=3)
    for number in range(jobs):
        plain.add_job(noop, "interval", seconds=1, start_date=start, id=f"tick-{number}")
    seen = {"executed": 0, "missed": 0, "max_instances": 0}
    lock = threading.Lock()

    def count(event: object) -> None:
        kind = {
            EVENT_JOB_EXECUTED: "executed",
            EVENT_JOB_MISSED: "missed",
            EVENT_JOB_MAX_INSTANCES: "max_instances",
        }
        with lock:
            seen[kind[event.code]] += 1  # type: ignore[attr-defined]

    plain.add_listener(count, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    plain.resume()
    end = start + timedelta(seconds=seconds)
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))
    plain.pause()
    # Every run time before a job's next run time was due: run, missed, or silently dropped.
    expected = sum(round((job.next_run_time - start).total_seconds()) for job in plain.get_jobs())
    plain.shutdown(wait=True)
    return {**seen, "expected": expected, "unaccounted": expected - sum(seen.values())}
