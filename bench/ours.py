"""f8a-jobs measured the way users meet it: the firing scheduler, and the API over HTTP."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, insert, select, text

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.settings import Settings
from f8a_jobs.core.states import FlowStatus, JobState
from f8a_jobs.execution import capture
from f8a_jobs.execution.log_writer import start_capturing
from f8a_jobs.execution.scheduler import FiringScheduler
from f8a_jobs.services.jobs import HandlerCall, JobSpec
from f8a_jobs.storage.db import build_engine
from f8a_jobs.storage.fencing import begin_term
from f8a_jobs.storage.migrate import migrate
from f8a_jobs.storage.tables import flow_outbox, job_labels, job_runs, jobs
from tests.conftest import Server, poll


def migrated(url: str) -> Engine:
    engine = build_engine(url)
    migrate(engine)
    return engine


def store_jobs(
    engine: Engine,
    count: int,
    schedule: dict[str, Any],
    prefix: str,
    handler: str = "Noop",
    kwargs: dict[str, Any] | None = None,
) -> None:
    now = utcnow()
    for start in range(0, count, 5000):
        rows = [
            {
                **JobSpec(
                    f"{prefix}-{n:06}",
                    HandlerCall(handler, kwargs or {}),
                    schedule,
                    JobState.RUNNING,
                    3600,
                ).row(now),
                "revision": 1,
                "created_at": now,
            }
            for n in range(start, min(start + 5000, count))
        ]
        with engine.begin() as connection:
            connection.execute(insert(jobs), rows)


def count_runs(engine: Engine, status: str) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(job_runs).where(job_runs.c.status == status)
        ).scalar_one()


@contextmanager
def capturing_logs(engine: Engine) -> Iterator[None]:
    """Handlers' lines kept with their runs, as the service's leading process keeps them."""
    writer = start_capturing(engine, Settings())
    try:
        yield
    finally:
        writer.stop()
        capture.install(None, 0, ())


def firing_scheduler(engine: Engine, threads: int) -> FiringScheduler:
    with engine.begin() as connection:
        epoch = begin_term(connection, "bench", utcnow())
    return FiringScheduler(engine, Settings(executor_threads=threads), epoch, "bench", lambda: None)


def fires_per_second(url: str, count: int, threads: int) -> float:
    engine = migrated(url)
    store_jobs(
        engine, count, {"version": 1, "type": "date", "run_date": utcnow().isoformat()}, "once"
    )
    firing = firing_scheduler(engine, threads)
    with capturing_logs(engine):
        firing.start(paused=True)  # like the baseline: started and paused, timed from resume
        started = time.perf_counter()
        firing.set_paused(False)
        poll(lambda: count_runs(engine, "succeeded") == count, timeout=600, interval=0.01)
        elapsed = time.perf_counter() - started
        firing.stop()
    engine.dispose()
    return count / elapsed


def flows_delivered_per_second(url: str, count: int, threads: int) -> float:
    """``count`` FlowScheduling jobs due at once (one flow each), timed until every flow is
    delivered (the embedded dispatcher marks it so): fire, run, record, relay."""
    engine = migrated(url)
    kwargs = {"flow_name": "bayesianFlow", "flow_arguments": [{"name": "serve-static"}]}
    schedule = {"version": 1, "type": "date", "run_date": utcnow().isoformat()}
    store_jobs(engine, count, schedule, "flow", "FlowScheduling", kwargs)
    firing = firing_scheduler(engine, threads)
    with capturing_logs(engine):
        firing.start(paused=True)
        started = time.perf_counter()
        firing.set_paused(False)
        poll(lambda: count_flows(engine, "delivered") == count, timeout=600, interval=0.01)
        elapsed = time.perf_counter() - started
        firing.stop()
    assert count_flows(engine, FlowStatus.PENDING) == 0
    engine.dispose()
    return count / elapsed


def count_flows(engine: Engine, status: str) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(flow_outbox).where(flow_outbox.c.status == status)
        ).scalar_one()


def api_figures(url: str, count: int, workdir: Path) -> dict[str, float]:
    """List latency with ``count`` jobs stored, then POST /jobs throughput, on a real server."""
    engine = migrated(url)
    later = (utcnow() + timedelta(days=365)).isoformat()
    store_jobs(
        engine,
        count,
        {"version": 1, "type": "interval", "seconds": 3600, "start": later, "text": "1 hour"},
        "job",
    )
    with engine.begin() as connection:
        for start in range(0, count, 10_000):
            labels = [
                {"job_id": f"job-{n:06}", "label": "bench"}
                for n in range(start, min(start + 10_000, count))
            ]
            connection.execute(insert(job_labels), labels)
        # The statistics autovacuum gathers within a minute of a bulk load: without them the
        # planner, expecting a few labelled jobs, reads all of them and sorts (about 200 ms).
        connection.execute(text("ANALYZE job_labels"))
    (workdir / "defaults").mkdir(exist_ok=True)
    server = Server(url, workdir / "defaults", workdir / "server.log").start()
    try:
        figures = {
            "list_p50_s": _p50(server.client, "/jobs", {"limit": 100}),
            "list_deep_p50_s": _p50(server.client, "/jobs", {"limit": 100, "offset": count // 2}),
            # every job labelled: the label filter's worst case, beside the plain list
            "list_label_p50_s": _p50(server.client, "/jobs", {"limit": 100, "label": "bench"}),
            "create_per_s": _creates_per_second(server.url, 2000, 8, later),
        }
    finally:
        server.stop()
        engine.dispose()
    return figures


def _p50(client: httpx.Client, path: str, params: dict[str, Any], samples: int = 200) -> float:
    client.get(path, params=params).raise_for_status()
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        response = client.get(path, params=params)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200 and len(response.json()["jobs"]) == params["limit"]
    return statistics.median(timings)


def _creates_per_second(base_url: str, total: int, clients: int, when: str) -> float:
    def post(offset: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for n in range(offset, total, clients):
                body = {
                    "job_id": f"new-{n}",
                    "handler": "Noop",
                    "when": when,
                    "periodically": "1 day",
                }
                assert client.post("/jobs", json=body).status_code == 201

    threads = [threading.Thread(target=post, args=(offset,)) for offset in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return total / (time.perf_counter() - started)


def interval_accounting(url: str, count: int, seconds: float, threads: int) -> dict[str, float]:
    """``count`` jobs due every second: lateness, and due runs neither run nor recorded missed."""
    engine = migrated(url)
    start = utcnow() + timedelta(seconds=3)
    store_jobs(
        engine,
        count,
        {
            "version": 1,
            "type": "interval",
            "seconds": 1,
            "start": start.isoformat(),
            "text": "1 second",
        },
        "tick",
    )
    firing = firing_scheduler(engine, threads)
    firing.start(paused=False)
    time.sleep(max(0.0, (start + timedelta(seconds=seconds) - utcnow()).total_seconds()))
    firing.set_paused(True)
    firing.stop()
    with engine.connect() as connection:
        next_runs = connection.execute(select(jobs.c.next_run_time)).scalars().all()
        ran = connection.execute(
            select(job_runs.c.started_at, job_runs.c.scheduled_for).where(
                job_runs.c.status.in_(["succeeded", "failed"])
            )
        ).all()
        missed = connection.execute(
            select(func.coalesce(func.sum(job_runs.c.missed_count), 0)).where(
                job_runs.c.status == "missed"
            )
        ).scalar_one()
    engine.dispose()
    expected = sum(round((when - start).total_seconds()) for when in next_runs)
    lateness = sorted((started - scheduled).total_seconds() * 1000 for started, scheduled in ran)
    return {
        "expected": expected,
        "run": len(ran),
        "missed": int(missed),
        "unaccounted": expected - len(ran) - int(missed),
        "late_p50_ms": lateness[len(lateness) // 2],
        "late_p99_ms": lateness[int(len(lateness) * 0.99)],
    }
