"""``f8a-jobs worker``: a Celery worker that runs the runs and workflow tries sent to it.

The database stays the truth. A worker takes a message only if its row still waits for that
try in the broker (``start_remote``, one autocommitted statement: it writes its name there),
so a duplicate or stale message is dropped. While it runs the handler, a thread of the process
heartbeats the rows it runs; if the process dies, the leader sees the heartbeat stop and runs
the try again. How a try ended is handed to a writer thread, which records plain runs
(``runs.finish``, fenced by their claim) and reports workflow tries on their rows for the
leader's runner, several in one commit that NOTIFYs the leader; the message is acknowledged
once the outcome is handed over, and the row is heartbeaten until it is written.

Time limits are Celery's: the soft one ends the handler with ``SoftTimeLimitExceeded``, the
hard one, ``HARD_LIMIT_GRACE`` later, kills the process; both are recorded as timeouts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, Task, signals
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.policy import RunPolicy
from f8a_jobs.core.settings import Settings, get_settings
from f8a_jobs.core.states import TaskState
from f8a_jobs.execution.executors.base import execute_run, failed
from f8a_jobs.execution.executors.messages import (
    RUN_TASK,
    TRY_TASK,
    celery_app,
    claimed_run,
    start_of,
)
from f8a_jobs.execution.executors.reports import Report, ReportWriter
from f8a_jobs.execution.executors.tries import execute_try
from f8a_jobs.execution.log_writer import start_capturing
from f8a_jobs.execution.loop import Loop
from f8a_jobs.execution.recording import RunWriter
from f8a_jobs.handlers.registry import handlers
from f8a_jobs.services import runs
from f8a_jobs.services.runs import Outcome, tasks
from f8a_jobs.services.workflows.tries import TryOutcome
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.db import build_engine

log = logging.getLogger(__name__)
SOFT_LIMIT = f"{SoftTimeLimitExceeded.__name__}:"


class Process:
    """One worker process's database engine, name, writers and heartbeats (made after the
    fork)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.name = f"{socket.gethostname()}:{self.pid}"
        # No ping per checkout: a connection the database dropped fails its statement, the
        # pool lets it go, and the statement is tried again.
        self.engine: Engine = build_engine(settings.database_url, 4, 32, pre_ping=False)
        self.autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._lock = threading.Lock()
        self._runs: set[str] = set()
        self._tries: set[tasks.TaskKey] = set()
        self.runs = RunWriter(self.engine, topic=wakeups.RUNS, written=self._runs_written)
        self.reports = ReportWriter(self.engine, written=self._reports_written)
        self.beats = Heartbeats(self)
        self.runs.start()
        self.reports.start()
        self.beats.start()
        self.logs = start_capturing(self.engine, settings)

    def running(self, run_id: str | None = None, key: tasks.TaskKey | None = None) -> None:
        with self._lock:
            if run_id:
                self._runs.add(run_id)
            if key:
                self._tries.add(key)

    def done(self, run_id: str | None = None, key: tasks.TaskKey | None = None) -> None:
        with self._lock:
            self._runs.discard(run_id or "")
            if key:
                self._tries.discard(key)

    def _runs_written(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            self.done(run_id=outcome.run.run_id)

    def _reports_written(self, reports: list[Report]) -> None:
        for report in reports:
            self.done(key=report.key)

    def close(self) -> None:
        """Write the outcomes and logs not written yet (the worker stops)."""
        self.runs.stop()
        self.reports.stop()
        self.logs.stop()

    def in_hand(self) -> tuple[list[str], list[tasks.TaskKey]]:
        """The runs and tries this process runs, or holds outcomes of not written yet."""
        with self._lock:
            return sorted(self._runs), sorted(self._tries)


class Heartbeats(Loop):
    """A worker process shows, every lease/4, that it still runs its runs and tries."""

    what = "heartbeat"

    def __init__(self, here: Process) -> None:
        super().__init__("f8a-jobs-beats")
        self.here = here

    def wait_time(self) -> float:
        return self.here.settings.run_lease / 4

    def failed(self, error: Exception) -> float:
        log.warning("heartbeat failed (%s); trying again", error)
        return 0.0  # the next beat comes a lease/4 later, as ever

    def step(self) -> None:
        run_ids, tries = self.here.in_hand()
        if run_ids or tries:
            with self.here.engine.begin() as connection:
                runs.beat_remote(connection, self.here.name, run_ids, utcnow())
                tasks.beat_remote(connection, self.here.name, tries, utcnow())


_process: Process | None = None
_process_lock = threading.Lock()


def process() -> Process:
    global _process
    with _process_lock:
        if _process is None or _process.pid != os.getpid():  # made before a fork: not ours
            _process = Process(get_settings())
        return _process


def run(message: dict[str, Any]) -> str:
    """Run a plain run's handler and hand over how it ended; what became of the message."""
    here = process()
    claimed = claimed_run(message)

    def take(connection: Connection) -> bool:
        return runs.start_remote(connection, claimed.run_id, claimed.tries, here.name, utcnow())

    if not _starting(here.autocommit, take):
        log.info("run %s try %d: stale or duplicate message dropped", claimed.run_id, claimed.tries)
        return "dropped"
    here.running(run_id=claimed.run_id)
    try:
        outcome = execute_run(claimed, here.engine, here.settings.result_max_bytes)
    except BaseException:
        here.done(run_id=claimed.run_id)
        raise
    if outcome is None:  # the run recorded itself
        here.done(run_id=claimed.run_id)
        return "recorded"
    _name_timeout(outcome, RunPolicy.of(claimed.policy).timeout)
    here.runs.add(outcome)
    return outcome.status


def run_try(message: dict[str, Any]) -> str:
    """Run one try of a workflow task and hand over how it ended, for its row."""
    here = process()
    start = start_of(message)
    key = (start.run_id, start.task, start.part)

    def take(connection: Connection) -> bool:
        return tasks.start_remote(connection, key, start.try_number, here.name, utcnow())

    if not _starting(here.autocommit, take):
        log.info("task %r try %d: stale or duplicate message dropped", start.task, start.try_number)
        return "dropped"
    here.running(key=key)
    try:
        outcome = execute_try(start, here.engine, here.settings.result_max_bytes)
    except BaseException:
        here.done(key=key)
        raise
    if outcome.error and outcome.error.startswith(SOFT_LIMIT):
        outcome.error = _timeout_text(start.timeout, "the task")
    here.reports.add(Report(start, outcome, here.name))
    return outcome.state


def _starting(engine: Engine, start: Callable[[Connection], bool]) -> bool:
    """Take the try (one statement, tried twice: a connection the database dropped fails the
    first, and the pool then replaces it)."""
    for attempt in (1, 2):
        try:
            with engine.connect() as connection:
                return start(connection)
        except DBAPIError as error:
            if attempt == 2 or not error.connection_invalidated:
                raise
    return False


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
        here.runs.add(outcome)
    elif task_name == TRY_TASK:
        start = start_of(message)
        now = utcnow()
        ended = TryOutcome(
            start.run_id,
            start.task,
            start.part,
            start.try_number,
            TaskState.FAILED,
            None,
            now,
            True,
        )
        ended.error = _timeout_text(start.timeout, "the task")
        here.reports.add(Report(start, ended, None))  # in the name of the process now gone


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


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _write_outcomes(**_: Any) -> None:
    """The worker (or one of its pool's processes) stops: write what it still holds."""
    if _process is not None and _process.pid == os.getpid():
        _process.close()
