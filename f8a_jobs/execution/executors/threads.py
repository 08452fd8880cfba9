"""The in-process executor: claims queued runs for its free threads and runs their handlers.

One claimer thread does the database work: it claims queued runs in batches (one transaction
each) and heartbeats the runs in flight, so the next leader can tell this process is alive.
It claims ahead what its threads will start within ``HORIZON`` seconds, judged by how long
recent runs took: one run per thread when runs are long, up to ``MAX_CLAIM`` when they take
microseconds, so short runs do not cost a transaction each. A claimed run shows ``running``
from its claim; its real start is recorded when it ends. Pool threads only run handlers; no
thread sleeps waiting for a run.

Workflow runs go to the workflow runner, which hands their tasks' tries back (``run_tasks``)
when it has recorded them started: tasks and plain runs share the threads.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from sqlalchemy import Engine

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.policy import RunPolicy
from f8a_jobs.core.settings import Settings
from f8a_jobs.core.states import Trigger
from f8a_jobs.execution import capture, metrics
from f8a_jobs.execution.executors.base import (
    Workflows,
    execute_run,
    failed,
    hand_over_workflows,
    logged,
)
from f8a_jobs.execution.executors.tries import execute_try
from f8a_jobs.execution.loop import Every, Loop
from f8a_jobs.execution.recording import RunWriter
from f8a_jobs.services import runs
from f8a_jobs.services.runs import ClaimedRun, Outcome, tasks
from f8a_jobs.services.workflows.tries import Start, TryOutcome
from f8a_jobs.storage.fencing import LostLeadership

log = logging.getLogger(__name__)
HORIZON = 0.05  # seconds of work to claim ahead
# Read once, for the hot loops: an enum member is a class-attribute lookup per use.
SCHEDULE = Trigger.SCHEDULE
MAX_CLAIM = 2000


class ThreadExecutor(Loop):
    remote: bool = False  # handlers run in this process's threads
    claim_worker: str | None = None
    what = "claiming runs"

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        writer: RunWriter,
        owner: str,
        epoch: int,
        on_lost: Callable[[], None],
    ) -> None:
        super().__init__("f8a-jobs-claimer", on_lost)
        self.engine = engine
        self.writer = writer
        self.owner = owner
        self.epoch = epoch
        self.capacity = settings.executor_threads
        self.max_result_bytes = settings.result_max_bytes
        self.idle_wait = settings.leader_poll_interval
        self.heartbeats = Every(settings.run_lease / 4)
        self._pool = ThreadPoolExecutor(self.capacity, thread_name_prefix="f8a-jobs-run")
        self._in_flight: set[tuple[str, int]] = set()  # (run, try) of runs in flight
        self._tasks: set[tuple[str, str, int]] = set()  # (run, task, part) of tries in flight
        self.workflows: Workflows | None = None
        self._changed = threading.Condition()
        self._claiming = True
        self._mean_duration = HORIZON  # until runs are measured: one run per thread
        self._retries: list[float] = []  # when retries fall due (monotonic): claim then
        # runs with a timeout: (when it expires, the run, when it started)
        self._deadlines: dict[tuple[str, int], tuple[float, ClaimedRun, datetime]] = {}
        self._timed_out: set[tuple[str, int]] = set()  # their late outcomes are dropped

    def wakeup(self, topics: frozenset[str] = frozenset()) -> None:
        super().wakeup()

    def step(self) -> None:
        self._expire()
        if self.heartbeats.due():
            self.heartbeat()
        if self._claiming:
            self.claim()

    def lost(self, error: LostLeadership) -> None:
        """Claim nothing more; the runs in flight go on, heartbeaten, until they end."""
        log.warning("%s: claiming no more runs", error)
        self._claiming = False
        self.on_lost()

    def wait_time(self) -> float:
        """Until the next poll, heartbeat, retry or timeout, whichever comes first."""
        now = time.monotonic()
        with self._changed:
            while self._retries and self._retries[0] <= now:
                heapq.heappop(self._retries)
            moments = [*self._retries[:1], *(due for due, _, _ in self._deadlines.values())]
        return max(0.0, min([self.idle_wait, self.heartbeats.seconds, *(m - now for m in moments)]))

    def wake_at(self, moment: datetime) -> None:
        """Claim again at ``moment`` (a retry falls due then)."""
        with self._changed:
            heapq.heappush(self._retries, time.monotonic() + (moment - utcnow()).total_seconds())
        self.wakeup()

    def _expire(self) -> None:
        """Runs past their job's timeout fail now (their threads finish in their own time)."""
        now = time.monotonic()
        with self._changed:
            expired = [(run, began) for due, run, began in self._deadlines.values() if due <= now]
            for run, _ in expired:
                del self._deadlines[run.run_id, run.tries]
                self._timed_out.add((run.run_id, run.tries))
        for run, began in expired:
            limit = RunPolicy.of(run.policy).timeout or 0
            error = TimeoutError(f"the run ran longer than the job's timeout of {limit:g} s")
            self._record(failed(run, error, began, "timed out: "))

    def _record(self, outcome: Outcome) -> None:
        self.writer.add(outcome)
        if outcome.retry_at is not None:
            self.wake_at(outcome.retry_at)

    def ahead(self) -> int:
        """How many runs to hold claimed: what the threads start within ``HORIZON``."""
        runs_ahead = int(self.capacity * HORIZON / max(self._mean_duration, 1e-6))
        return min(MAX_CLAIM, max(self.capacity, runs_ahead))

    def room(self) -> int:
        """How many runs to claim now: none until half of those held have started."""
        ahead = self.ahead()
        with self._changed:
            in_flight = len(self._in_flight) + len(self._tasks)
        return 0 if in_flight > ahead // 2 else ahead - in_flight

    def claim(self) -> int:
        """Claim queued runs and hand them to the pool; how many."""
        free = self.room()
        if free <= 0:
            return 0
        with self.engine.begin() as connection:
            claimed = runs.claim(connection, self.epoch, self.owner, free, utcnow())
        self.take(claimed)
        return len(claimed)

    def take(self, claimed: list[ClaimedRun]) -> None:
        """Run ``claimed`` runs (claimed for this executor, and committed so)."""
        plain = hand_over_workflows(claimed, self.workflows)
        with self._changed:
            self._in_flight.update((run.run_id, run.tries) for run in plain)
        for run in plain:
            self._pool.submit(self._run, run)

    def free(self) -> int:
        """Threads with nothing to do: how many task tries to hand over now."""
        with self._changed:
            return max(0, self.capacity - len(self._in_flight) - len(self._tasks))

    def run_tasks(self, starts: list[Start], sink: Callable[[TryOutcome], None]) -> None:
        """Run workflow tries (recorded started); each outcome goes to ``sink``."""
        with self._changed:
            self._tasks.update((start.run_id, start.task, start.part) for start in starts)
        for start in starts:
            self._pool.submit(self._run_try, start, sink)

    def _run_try(self, start: Start, sink: Callable[[TryOutcome], None]) -> None:
        try:
            sink(execute_try(start, self.engine, self.max_result_bytes))
        except Exception:
            log.exception("task %r of run %s could not be completed", start.task, start.run_id)
        finally:
            with self._changed:
                self._tasks.discard((start.run_id, start.task, start.part))
                self._changed.notify_all()

    def call(self, name: str, work: Callable[[], None]) -> None:
        """Run ``work`` (a workflow's cleanups) on a thread of the pool."""
        self._pool.submit(logged(name, work))

    def _run(self, run: ClaimedRun) -> None:
        """One run on a pool thread (one function: it runs for every run, thousands a second)."""
        started = time.perf_counter()
        mark = (run.run_id, run.tries)
        timeout = RunPolicy.of(run.policy).timeout
        if timeout:
            with self._changed:
                self._deadlines[mark] = (time.monotonic() + timeout, run, utcnow())
            self.wakeup()
        try:
            if run.trigger == SCHEDULE and run.tries == 1:
                metrics.run_started(run.scheduled_for, utcnow())
            outcome = execute_run(run, self.engine, self.max_result_bytes)
            self._mean_duration += 0.2 * (time.perf_counter() - started - self._mean_duration)
            with self._changed:
                self._deadlines.pop(mark, None)
                late = mark in self._timed_out
                self._timed_out.discard(mark)
            if late:  # it was recorded failed when its time ran out
                log.warning(
                    "run %s of job %s ended after its timeout: ignored", run.run_id, run.job_id
                )
                capture.write_later(outcome.log if outcome else None)
            elif outcome is not None:
                self._record(outcome)
        except Exception:  # execute_run handles the handler's errors; this is ours
            log.exception("run %s of job %s could not be completed", run.run_id, run.job_id)
        finally:
            with self._changed:
                self._in_flight.discard(mark)
                self._changed.notify_all()
                low = len(self._in_flight) <= self.ahead() // 2
            if low:
                self.wakeup()
            if self.workflows is not None and self.workflows.waiting:
                self.workflows.wakeup()

    def heartbeat(self) -> None:
        with self._changed:
            in_flight = [run_id for run_id, _ in self._in_flight]
            tries = list(self._tasks)
        if in_flight or tries:
            with self.engine.begin() as connection:
                runs.heartbeat(connection, self.owner, in_flight, utcnow())
                tasks.heartbeat(connection, self.owner, tries, utcnow())

    def stop_claiming(self) -> None:
        self._claiming = False

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the runs in flight; whether they all ended."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (self._in_flight or self._tasks) and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            left = [*self._in_flight, *self._tasks]
        if left:
            log.warning(
                "%d runs still going after %g s; the next leader fails them", len(left), timeout
            )
        return not left

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming and heartbeating; runs still going are left to the next leader."""
        self._claiming = False
        super().stop(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
