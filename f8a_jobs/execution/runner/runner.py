"""The leader's workflow runner: one thread that drives every workflow run of a term.

Each step takes what happened since the last (workflow runs claimed, tries ended, cleanups
done, cancel requests), lets each run's engine react, and writes every change in one
transaction fenced by the term's epoch (``batch``). Only after that commit are the tries it
started handed to the executor, so a try that runs is always a row that says so. A term
starts by adopting every workflow run under way (resuming it from its rows); tries whose
process stopped heartbeating run again (``orphans``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine

from f8a_jobs import filters
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.settings import Settings
from f8a_jobs.core.states import TaskState
from f8a_jobs.execution.loop import Every, Loop
from f8a_jobs.execution.runner import batch as batches
from f8a_jobs.execution.runner import cleanup, opening
from f8a_jobs.execution.runner.orphans import orphaned_tries
from f8a_jobs.services import runs
from f8a_jobs.services.runs import ClaimedRun, tasks
from f8a_jobs.services.workflows.engine import WorkflowRun
from f8a_jobs.services.workflows.results import resolve_results
from f8a_jobs.services.workflows.tries import Start, TryClaim, TryOutcome
from f8a_jobs.storage.fencing import LostLeadership, fence

log = logging.getLogger(__name__)
# Tries handed over together end together: wait this long for the rest of a burst of outcomes,
# so that one write records them all (half the writes of a wide fan-out; a PostgreSQL commit
# costs more than this).
COALESCE = 0.0005


class TaskExecutor(Protocol):
    remote: bool  # tries go to workers elsewhere: they show worker "" until one takes them
    claim_worker: str | None  # what a started try's ``worker`` shows (remote executors: "")

    def free(self) -> int: ...

    def run_tasks(self, starts: list[Start], sink: Callable[[TryOutcome], None]) -> None: ...

    def call(self, name: str, work: Callable[[], None]) -> None: ...


class WorkflowRunner(Loop):
    what = "advancing workflows"
    on_lost_log = "running no more workflow tasks"

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        epoch: int,
        owner: str,
        executor: TaskExecutor,
        on_lost: Callable[[], None],
    ) -> None:
        super().__init__("f8a-jobs-workflows", on_lost)
        self.engine = engine
        self.epoch = epoch
        self.owner = owner
        self.executor = executor
        self.claim = TryClaim(owner, epoch, executor.claim_worker)
        self.max_tasks = settings.workflow_max_tasks
        self.max_parts = settings.for_each_max_parts
        self.lease = settings.run_lease
        self.poll = Every(settings.leader_poll_interval, due_at_once=True)
        self.runs: dict[str, WorkflowRun] = {}
        self._lock = threading.Lock()
        self._claimed: list[ClaimedRun] = []
        self._outcomes: list[TryOutcome] = []
        self._handed = 0  # tries handed to the executor whose outcome has not arrived
        self._arrived = threading.Condition(self._lock)
        self._cleaned: list[tuple[str, list[str]]] = []
        self._cleaning: set[str] = set()
        self._batch = batches.Batch()
        self._connection: Connection | None = None
        self._adopted = False
        self._starting = True
        self._term_started = time.monotonic()

    def stop_starting(self) -> None:
        """Start no more tries; tries in flight are still recorded until ``stop``."""
        self._starting = False
        self.wakeup()

    def stop(self, timeout: float = 10.0) -> None:
        """Record what has ended (one last step, if the term still holds) and stop."""
        self._starting = False
        super().stop(timeout)

    def poke(self) -> None:
        """Runs changed (a cancel request, say): read them at the next step."""
        self.poll.now()
        self.wakeup()

    def start_run(self, run: ClaimedRun) -> None:
        """A workflow run was claimed for this process: expand (or resume) it and run it."""
        with self._lock:
            self._claimed.append(run)
        self.wakeup()

    def add(self, outcome: TryOutcome, handed: bool = True) -> None:
        """A try ended (``handed``: one this term handed to the executor)."""
        with self._lock:
            self._outcomes.append(outcome)
            self._handed -= handed
            if self._handed <= 0:
                self._arrived.notify()
        self.wakeup()

    @property
    def waiting(self) -> bool:
        """Some run has a ready try waiting for an executor thread."""
        return any(run.ready for run in list(self.runs.values()))

    # --- the loop ---------------------------------------------------------------------------

    def wait_time(self) -> float:
        timers = [run.next_timer() for run in list(self.runs.values())]
        upcoming = min((moment for moment in timers if moment is not None), default=None)
        wait = self.poll.seconds
        if upcoming is not None:
            wait = min(wait, max(0.0, (upcoming - utcnow()).total_seconds()))
        return wait

    def step(self) -> None:
        self._gather()
        now = utcnow()
        if not self._adopted:
            self._adopt(now)
        with self._lock:
            claimed, self._claimed = self._claimed, []
            outcomes, self._outcomes = self._outcomes, []
            cleaned, self._cleaned = self._cleaned, []
        batch = self._batch
        for claimed_run in claimed:
            self._open(claimed_run, batch, now)
        for outcome in outcomes:
            if outcome.log is not None:
                batch.logs.append(outcome.log)
            run = self.runs.get(outcome.run_id)
            if run is not None and run.finished(outcome, now):
                if outcome.state == TaskState.SUCCEEDED:
                    batch.flows.extend(outcome.flows)
        if self.poll.due():
            self._poll(now)
        for run in self.runs.values():
            run.tick(now)
        self._admit(batch, now)
        self._end_runs(batch, cleaned, now)
        for run in self.runs.values():
            batch.collect(run)
        if not batch.empty or batch.flows or batch.logs:
            self._write(batch)
        self._batch = batches.Batch()
        self._after(batch)

    def failed(self, error: Exception) -> float:
        log.warning("advancing workflows failed (%s); retrying", error, exc_info=True)
        return self.retry_after

    def finished(self) -> None:
        if self._connection is not None:
            self._connection.close()

    def _gather(self) -> None:
        """Some tries ended and others are in flight: give those a moment (``COALESCE``)."""
        with self._lock:
            if self._outcomes and self._handed > 0:
                self._arrived.wait_for(lambda: self._handed <= 0, timeout=COALESCE)

    def _admit(self, batch: batches.Batch, now: datetime) -> None:
        room = self.executor.free() if self._starting else 0
        waiting = [run for run in self.runs.values() if run.ready]
        for run in sorted(waiting, key=lambda run: -run.ready.best) if room else ():
            if room <= 0:
                break
            starts = run.admit(room, now, self._resolve, self.claim)
            room -= len(starts)
            batch.starts.extend(starts)

    def _resolve(self, run: WorkflowRun, value: Any) -> Any:
        """``value`` with its ``$result``s filled in; a ``for_each`` ``$filter`` read into its
        items, here: a ``for_each`` task splits once, and its parts are rows from then on."""
        resolved = resolve_results(run, value)
        if not (isinstance(resolved, dict) and filters.is_filter(resolved)):
            return resolved
        try:
            rows = filters.expand(resolved, "for_each")
            return list(itertools.islice(rows, self.max_parts + 1))
        except Exception as error:  # a try of the task that failed: tries and delays apply
            raise LookupError(f"the for_each $filter failed: {error}") from error

    def _end_runs(
        self, batch: batches.Batch, cleaned: list[tuple[str, list[str]]], now: datetime
    ) -> None:
        errors_of = dict(cleaned)
        for run_id, run in list(self.runs.items()):
            if not run.over:
                continue
            if run_id in errors_of:
                self._cleaning.discard(run_id)
                self._end(batch, run, now, errors_of[run_id])
            elif run_id not in self._cleaning:
                cleanups, problem = self._plan(run)
                if problem:
                    self._end(batch, run, now, [problem])
                elif cleanups:
                    self._cleaning.add(run_id)
                    batch.cleanups.append((run_id, cleanups))
                else:
                    self._end(batch, run, now, [])

    @staticmethod
    def _plan(run: WorkflowRun) -> tuple[list[cleanup.Cleanup], str | None]:
        """A run's cleanups; a run whose cleanups cannot be planned ends saying why (it
        must not stop the step, which every other run waits for)."""
        try:
            return cleanup.plan(run), None
        except Exception as error:
            log.exception("the cleanups of run %s cannot be planned", run.run_id)
            return [], f"its cleanups could not be planned: {type(error).__name__}: {error}"

    @staticmethod
    def _end(
        batch: batches.Batch, run: WorkflowRun, now: datetime, cleanup_errors: list[str]
    ) -> None:
        status, error = run.status()
        if cleanup_errors:
            error = "; ".join(filter(None, [error, *cleanup_errors]))
        batch.ended.append(
            {
                "run_id": run.run_id,
                "job_id": run.job_id,
                "status": status,
                "error": error,
                "result": {"tasks": run.summary()},
                "finished_at": now,
            }
        )
        batch.began[run.run_id] = run.started_at

    def _write(self, batch: batches.Batch) -> None:
        if self._connection is None:  # one connection for every write: no checkout, no ping
            self._connection = self.engine.connect()
        connection = self._connection
        try:
            batches.write(connection, self.epoch, batch)
        except LostLeadership:
            raise
        except Exception:
            self._batch = batch.kept()  # written with the next step's
            self._connection = None  # it may be broken: the next write takes a fresh one
            connection.invalidate()
            raise

    def _after(self, batch: batches.Batch) -> None:
        for row in batch.ended:
            self.runs.pop(row["run_id"], None)
        if batch.ended:
            log.info("workflow runs ended: %s", ", ".join(row["run_id"] for row in batch.ended))
        if batch.starts:
            with self._lock:
                self._handed += len(batch.starts)
            self.executor.run_tasks(batch.starts, self.add)
        for run_id, cleanups in batch.cleanups:
            self.executor.call(f"cleanup:{run_id}", self._cleanup_work(run_id, cleanups))

    # --- opening runs -------------------------------------------------------------------------

    def _open(self, claimed: ClaimedRun, batch: batches.Batch, now: datetime) -> None:
        if claimed.resumed:
            for run in opening.resumed(self.engine, [claimed.run_id], now, self.max_parts):
                self.runs[run.run_id] = run
            return
        try:
            run, graph = opening.new_run(self.engine, claimed, now, self.max_tasks, self.max_parts)
        except InvalidInput as error:
            batch.ended.append(opening.cannot_start(claimed, error.detail, now))
            return
        batch.graphs.append((claimed, graph))
        self.runs[run.run_id] = run

    def _adopt(self, now: datetime) -> None:
        """A new term takes every workflow run under way and resumes it from its rows."""
        adopted = opening.adopted(self.engine, self.epoch, self.owner, now, self.max_parts)
        for run in adopted:
            self.runs[run.run_id] = run
        if adopted:
            log.info("resuming %d workflow runs", len(adopted))
        self._adopted = True

    # --- polling: cancel requests, tries of processes that are gone ----------------------------

    def _poll(self, now: datetime) -> None:
        if not self.runs:
            return
        with self.engine.connect() as connection:
            cancelled = runs.cancel_requested(connection, list(self.runs))
            for run_id in cancelled:
                self.runs[run_id].cancel(now)
            if time.monotonic() - self._term_started >= self.lease:
                remote = self.executor.remote
                found = orphaned_tries(
                    connection, self.runs.values(), self.claim, remote, self.lease, now
                )
                for run, key, reason in found:
                    run.interrupted(key, reason, now)
        if cancelled and self.executor.remote:
            self._withdraw(cancelled, now)

    def _withdraw(self, run_ids: list[str], now: datetime) -> None:
        """Cancelled runs' tries whose messages no worker took never run: no worker takes a
        try of a cancelled run, and these end ``cancelled`` (the executor revokes them)."""
        with self.engine.begin() as connection:
            fence(connection, self.epoch)  # a term that ended leaves them to the next one
            withdrawn = tasks.withdraw(connection, run_ids, now)
        for row in withdrawn:
            key = (row.task, row.part)
            self.runs[row.run_id].withdrawn(key, row.tries, tasks.WITHDRAWN, now)

    # --- cleanup ------------------------------------------------------------------------------

    def _cleanup_work(self, run_id: str, cleanups: list[cleanup.Cleanup]) -> Callable[[], None]:
        """Cleanups of the tasks whose ``execute`` ran, last completed first (DoJobber)."""

        def work() -> None:
            errors = cleanup.call(cleanups, self.engine)
            with self._lock:
                self._cleaned.append((run_id, errors))
            self.wakeup()

        return work
