"""Prometheus metrics: what the processes count as it happens, and what the database says at
scrape time.

Counted in process (summed over gunicorn's workers: ``prometheus_client``'s multiprocess mode,
its directory set by ``f8a-jobs serve`` before the workers start): runs that ended by handler
and status, run durations, lateness of scheduled runs, workflow task transitions, whether a
process of this server leads. Read from the database when scraped: runs queued, waiting for a
worker (sent to a broker queue, not taken yet) and running, workflow tasks by state (waiting
too), the outbox backlog, the leader's term and since when it leads.

``prometheus_client`` is imported on first use, not at import: it picks its multiprocess mode
from the environment when it is first imported.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, case, func, select

from f8a_jobs.core.states import FlowStatus, RunStatus, TaskState
from f8a_jobs.services.runs import IN_BROKER
from f8a_jobs.storage.tables import flow_outbox, job_runs, leadership, run_tasks

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
WAITING = "waiting"  # running in its row, but its message waits in the broker for a worker
SHOWN = (RunStatus.QUEUED, WAITING, RunStatus.RUNNING)


_created: dict[str, Any] = {}
_creating = threading.Lock()


def _metrics() -> dict[str, Any]:
    """The metrics, made once (threads ask at once: a family registered twice is an error)."""
    if not _created:
        with _creating:
            if not _created:
                _created.update(_make())
    return _created


def _make() -> dict[str, Any]:
    from prometheus_client import Counter, Gauge, Histogram

    return {
        "runs": Counter(
            "f8a_jobs_runs",
            "Runs (and tries) that ended, by handler and status",
            ["handler", "status"],
        ),
        "duration": Histogram(
            "f8a_jobs_run_duration_seconds",
            "How long runs took, by handler",
            ["handler"],
            buckets=SECONDS,
        ),
        "lateness": Histogram(
            "f8a_jobs_run_lateness_seconds",
            "Start of a scheduled run minus its slot",
            buckets=SECONDS,
        ),
        "tasks": Counter(
            "f8a_jobs_task_transitions", "Workflow task state changes, by new state", ["state"]
        ),
        "leading": Gauge(
            "f8a_jobs_leading",
            "1 while a process of this server leads",
            multiprocess_mode="livesum",
        ),
    }


def run_ended(
    handler: str, status: str, started: datetime | None, finished: datetime | None
) -> None:
    counter, duration = _run_children(handler or "workflow", status)
    counter.inc()
    if started is not None and finished is not None:
        duration.observe((finished - started).total_seconds())


@functools.lru_cache(maxsize=4096)
def _run_children(handler: str, status: str) -> tuple[Any, Any]:
    """The labelled series of a handler and status (looked up once: runs end by thousands)."""
    metrics = _metrics()
    return metrics["runs"].labels(handler, status), metrics["duration"].labels(handler)


def run_started(scheduled_for: datetime, started: datetime) -> None:
    _metrics()["lateness"].observe(max(0.0, (started - scheduled_for).total_seconds()))


def task_changed(state: str, count: int = 1) -> None:
    _metrics()["tasks"].labels(state).inc(count)


def leading(yes: bool) -> None:
    _metrics()["leading"].set(1 if yes else 0)


def exposition(engine: Engine) -> bytes:
    """The metrics in Prometheus's text format: this server's processes' and the database's."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    _metrics()  # every family shows, at zero, before anything happened
    database = CollectorRegistry()
    database.register(DatabaseCollector(engine))
    if os.environ.get(MULTIPROCESS_DIR):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)
        return generate_latest(processes) + generate_latest(database)
    return generate_latest(REGISTRY) + generate_latest(database)


class DatabaseCollector:
    """Gauges read from the database at scrape time: true whichever process asks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        run_status = _waiting_or(job_runs.c.status, RunStatus.RUNNING, job_runs.c.worker)
        task_state = _waiting_or(run_tasks.c.state, TaskState.RUNNING, run_tasks.c.worker)
        with self.engine.connect() as connection:
            runs = _counts(
                connection,
                select(run_status, func.count())
                .where(job_runs.c.status.in_(ACTIVE))
                .group_by(run_status),
            )
            active = select(job_runs.c.run_id).where(job_runs.c.status == RunStatus.RUNNING)
            tasks = _counts(
                connection,
                select(task_state, func.count())
                .where(run_tasks.c.run_id.in_(active))
                .group_by(task_state),
            )
            backlog = connection.execute(
                select(func.count())
                .select_from(flow_outbox)
                .where(flow_outbox.c.status == FlowStatus.PENDING)
            ).scalar_one()
            term = connection.execute(select(leadership.c.epoch, leadership.c.since)).first()
        by_status = GaugeMetricFamily(
            "f8a_jobs_runs_now", "Runs queued, waiting for a worker, or running", labels=["status"]
        )
        for status in SHOWN:
            by_status.add_metric([status], runs.get(status, 0))
        yield by_status
        by_state = GaugeMetricFamily(
            "f8a_jobs_tasks_now", "Tasks of running workflow runs, by state", labels=["state"]
        )
        for state, count in sorted(tasks.items()):
            by_state.add_metric([state], count)
        yield by_state
        yield GaugeMetricFamily("f8a_jobs_outbox_backlog", "Flows not yet sent", value=backlog)
        yield GaugeMetricFamily(
            "f8a_jobs_leader_epoch", "The leadership term", value=term.epoch if term else 0
        )
        since = term.since.timestamp() if term and term.since else 0
        yield GaugeMetricFamily(
            "f8a_jobs_leader_since_timestamp_seconds",
            "When the current leader took over",
            value=since,
        )


def _waiting_or(state: Any, running: str, worker: Any) -> ColumnElement[Any]:
    """A row's state, but ``waiting`` for a running one whose message waits in the broker: no
    worker took it yet, it is not under way."""
    sent = (state == running) & (worker == IN_BROKER)
    return case((sent, WAITING), else_=state).label("state")


def _counts(connection: Connection, query: Select[Any]) -> dict[str, int]:
    return {str(key): int(count) for key, count in connection.execute(query)}
