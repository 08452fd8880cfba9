"""``f8a-jobs worker``: a Celery worker that runs the runs and workflow tries sent to it.

The database stays the truth. A worker takes a message only if its row still waits for that
try in the broker (``start_remote``: it writes its name there), so a duplicate or stale
message is dropped. While it runs the handler, a thread of the process heartbeats the rows it
runs; if the process dies, the leader sees the heartbeat stop and runs the try again. A plain
run is recorded here (``lifecycle.finish``, fenced by its claim); a try's outcome is reported
on its row for the leader's runner to apply. Each commit NOTIFYs the leader.

Time limits are Celery's: the soft one ends the handler with ``SoftTimeLimitExceeded``, the
hard one, ``HARD_LIMIT_GRACE`` later, kills the process; both are recorded as timeouts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from celery import Celery, Task, signals
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from f8a_jobs import wakeups
from f8a_jobs.executors.base import execute_run, failed
from f8a_jobs.executors.messages import (
    RUN_TASK,
    TRY_TASK,
    celery_app,
    claimed_run,
    start_of,
)
from f8a_jobs.handlers.registry import handlers
from f8a_jobs.runs import lifecycle
from f8a_jobs.runs.lifecycle import Outcome
from f8a_jobs.runs.policy import RunPolicy
from f8a_jobs.schedules import utcnow
from f8a_jobs.settings import Settings, get_settings
from f8a_jobs.storage.db import build_engine
from f8a_jobs.workflows import FAILED
from f8a_jobs.workflows import store as task_store
from f8a_jobs.workflows.engine import Start, TryOutcome
from f8a_jobs.workflows.execute import execute_try

log = logging.getLogger(__name__)
SOFT_LIMIT = f"{SoftTimeLimitExceeded.__name__}:"
RECORD_FOR = 120.0  # seconds a worker keeps trying to record an outcome while the database is away


class Process:
    """One worker process's database engine, name and heartbeats (made after the fork)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        # No ping per checkout (two transactions a try): a connection the database dropped
        # fails its transaction, the pool lets it go, and the transaction is tried again.
        self.engine: Engine = build_engine(settings.database_url, 4, 32, pre_ping=False)
        self._lock = threading.Lock()
        self._runs: set[str] = set()
        self._tries: set[task_store.TaskKey] = set()
        self._beats = threading.Thread(target=self._beat, name="f8a-jobs-beats", daemon=True)
        self._beats.start()

    def running(self, run_id: str | None = None, key: task_store.TaskKey | None = None) -> None:
        with self._lock:
            if run_id:
                self._runs.add(run_id)
            if key:
                self._tries.add(key)

    def done(self, run_id: str | None = None, key: task_store.TaskKey | None = None) -> None:
        with self._lock:
            self._runs.discard(run_id or "")
            if key:
                self._tries.discard(key)

    def _beat(self) -> None:
        while True:
            time.sleep(self.settings.run_lease / 4)
            with self._lock:
                runs, tries = sorted(self._runs), sorted(self._tries)
            if not (runs or tries):
                continue
            try:
                with self.engine.begin() as connection:
                    lifecycle.beat_remote(connection, self.name, runs, utcnow())
                    task_store.beat_remote(connection, self.name, tries, utcnow())
            except Exception as error:
                log.warning("heartbeat failed (%s); trying again", error)


_process: Process | None = None
_process_lock = threading.Lock()


def process() -> Process:
    global _process
    with _process_lock:
        if _process is None or _process.name != f"{socket.gethostname()}:{os.getpid()}":
            _process = Process(get_settings())
        return _process


def run(message: dict[str, Any]) -> str:
    """Run a plain run's handler and record how it ended; what became of the message."""
    here = process()
    claimed = claimed_run(message)

    def start(connection: Connection) -> bool:
        return lifecycle.start_remote(
            connection, claimed.run_id, claimed.tries, here.name, utcnow()
        )

    if not _starting(here.engine, start):
        log.info("run %s try %d: stale or duplicate message dropped", claimed.run_id, claimed.tries)
        return "dropped"
    here.running(run_id=claimed.run_id)
    try:
        outcome = execute_run(claimed, here.engine, here.settings.result_max_bytes)
        if outcome is not None:
            _name_timeout(outcome, RunPolicy.of(claimed.policy).timeout)
            _persist(lambda: _record(here.engine, outcome))
        return outcome.status if outcome else "recorded"
    finally:
        here.done(run_id=claimed.run_id)


def run_try(message: dict[str, Any]) -> str:
    """Run one try of a workflow task and report how it ended on its row."""
    here = process()
    start = start_of(message)
    key = (start.run_id, start.task, start.part)

    def take(connection: Connection) -> bool:
        return task_store.start_remote(connection, key, start.try_number, here.name, utcnow())

    if not _starting(here.engine, take):
        log.info("task %r try %d: stale or duplicate message dropped", start.task, start.try_number)
        return "dropped"
    here.running(key=key)
    try:
        outcome = execute_try(start, here.engine, here.settings.result_max_bytes)
        if outcome.error and outcome.error.startswith(SOFT_LIMIT):
            outcome.error = _timeout_text(start.timeout, "the task")
        _persist(lambda: _report(here.engine, start, here.name, outcome))
        return outcome.state
    finally:
        here.done(key=key)


def _starting(engine: Engine, start: Callable[[Connection], bool]) -> bool:
    """Take the try in a transaction, tried twice: a connection the database dropped fails
    the first (the pool then replaces it)."""
    for attempt in (1, 2):
        try:
            with engine.begin() as connection:
                return start(connection)
        except DBAPIError as error:
            if attempt == 2 or not error.connection_invalidated:
                raise
    return False


def _record(engine: Engine, outcome: Outcome) -> None:
    with wakeups.changing(engine, wakeups.RUNS) as connection:
        lifecycle.finish(connection, [outcome])
        if outcome.flows:
            wakeups.request(connection, wakeups.FLOWS)


def _report(engine: Engine, start: Start, worker: str, outcome: TryOutcome) -> None:
    key = (start.run_id, start.task, start.part)
    with wakeups.changing(engine, wakeups.TASKS) as connection:
        task_store.report(connection, key, start.try_number, worker, report_json(outcome))


def _persist(write: Callable[[], None]) -> None:
    """Write an outcome, trying again while the database is away (up to ``RECORD_FOR`` s;
    after that the leader sees the heartbeat stop and runs the try again)."""
    deadline, delay = time.monotonic() + RECORD_FOR, 0.25
    while True:
        try:
            write()
            return
        except Exception as error:
            if time.monotonic() + delay > deadline:
                log.error("the outcome could not be recorded (%s): the leader runs it again", error)
                return
            log.warning("recording the outcome failed (%s); trying again", error)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def report_json(outcome: TryOutcome) -> dict[str, Any]:
    """A try's outcome as its row keeps it until the runner applies it (JSON)."""
    flows = [{**flow, "created_at": flow["created_at"].isoformat()} for flow in outcome.flows]
    return {
        "state": outcome.state,
        "started_at": _iso(outcome.started_at),
        "finished_at": _iso(outcome.finished_at),
        "executed": outcome.executed,
        "result": outcome.result,
        "error": outcome.error,
        "traceback": outcome.traceback,
        "flows": flows,
    }


def outcome_of(row: Any) -> TryOutcome:
    """The outcome a worker reported on a task's row (``report_json``)."""
    report = row.reported
    flows = [
        {**flow, "created_at": datetime.fromisoformat(flow["created_at"])}
        for flow in report.get("flows", [])
    ]
    started = report.get("started_at")
    return TryOutcome(
        run_id=row.run_id,
        task=row.task,
        part=row.part,
        try_number=row.tries,
        state=report["state"],
        started_at=datetime.fromisoformat(started) if started else None,
        finished_at=datetime.fromisoformat(report["finished_at"]),
        executed=report.get("executed", False),
        result=report.get("result"),
        error=report.get("error"),
        traceback=report.get("traceback"),
        flows=flows,
        worker=row.worker,
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _timeout_text(limit: float | None, what: str) -> str:
    shown = f"{limit:g} s" if limit else "its limit"
    return f"timed out: {what} ran longer than its timeout of {shown} (Celery's time limit)"


def _name_timeout(outcome: Outcome, limit: float | None) -> None:
    if outcome.error and outcome.error.startswith(SOFT_LIMIT):
        outcome.error = _timeout_text(limit, "the run")


def hard_timeout(task_name: str, message: dict[str, Any]) -> None:
    """The hard time limit killed the process running ``message``: record a timeout (this runs
    in the worker's main process)."""
    here = process()
    if task_name == RUN_TASK:
        claimed = claimed_run(message)
        outcome = failed(claimed, TimeLimitExceeded(), utcnow())
        outcome.error = _timeout_text(RunPolicy.of(claimed.policy).timeout, "the run")
        _persist(lambda: _record(here.engine, outcome))
    elif task_name == TRY_TASK:
        start = start_of(message)
        now = utcnow()
        ended = TryOutcome(
            start.run_id, start.task, start.part, start.try_number, FAILED, None, now, True
        )
        ended.error = _timeout_text(start.timeout, "the task")
        _persist(lambda: _report_lost(here.engine, start, ended))


def _report_lost(engine: Engine, start: Start, outcome: TryOutcome) -> None:
    """The process that ran the try is gone: report in the name it took the try under."""
    key = (start.run_id, start.task, start.part)
    with wakeups.changing(engine, wakeups.TASKS) as connection:
        row = task_store.try_states(connection, [start.run_id]).get(key)
        if row is not None and row.worker:
            task_store.report(connection, key, start.try_number, row.worker, report_json(outcome))


class RemoteTask(Task):  # type: ignore[misc]
    """Our tasks: a hard time limit is recorded as a timeout (Celery calls ``on_failure`` in
    the main process then)."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if isinstance(exc, TimeLimitExceeded) and args:
            hard_timeout(self.name, args[0])


def worker_app(settings: Settings) -> Celery:
    app = celery_app(settings)
    app.task(name=RUN_TASK, base=RemoteTask)(run)
    app.task(name=TRY_TASK, base=RemoteTask)(run_try)
    return app


@signals.worker_init.connect
def _load_handlers(**_: Any) -> None:
    handlers()  # a broken plugin shows at the start, not in the first run
