"""The leader's workflow runner: one thread that drives every workflow run of a term.

Each step takes what happened since the last (workflow runs claimed, tries ended, cleanups
done, cancel requests), lets each run's engine react, and writes every change in one
transaction fenced by the term's epoch: task states, results, flows of successful tasks, new
graphs and ended runs. Only after that commit are the tries it started handed to the executor,
so a try that runs is always a row that says so. A term starts by adopting every workflow run
under way (resuming it from its rows); tries whose process stopped heartbeating run again.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, select

from f8a_jobs import filters, metrics, wakeups
from f8a_jobs.errors import InvalidInput
from f8a_jobs.handlers.registry import get_handler
from f8a_jobs.runs import lifecycle
from f8a_jobs.runs.lifecycle import ClaimedRun, LostLeadership
from f8a_jobs.schedules import utcnow
from f8a_jobs.settings import Settings
from f8a_jobs.storage.bulk import insert_rows
from f8a_jobs.storage.tables import flow_outbox, run_tasks
from f8a_jobs.workflows import RUNNING, SUCCEEDED, WHOLE, store
from f8a_jobs.workflows.engine import (
    Start,
    TryOutcome,
    Unit,
    WorkflowRun,
    item_kwargs,
    resolve_results,
)
from f8a_jobs.workflows.execute import cleanup
from f8a_jobs.workflows.expand import (
    check_acyclic,
    expand,
    graph_json,
    graph_nodes,
    job_lookup,
)
from f8a_jobs.workflows.spec import WorkflowSpec

log = logging.getLogger(__name__)
# Tries handed over together end together: wait this long for the rest of a burst of outcomes,
# so that one write records them all (half the writes of a wide fan-out; a PostgreSQL commit
# costs more than this).
COALESCE = 0.0005
ORPHANED = "the process running it ({owner}) stopped sending heartbeats for more than {lease:g} s"


class TaskExecutor(Protocol):
    remote: bool  # tries go to workers elsewhere: they show worker "" until one takes them
    claim_worker: str | None  # what a started try's ``worker`` shows (remote executors: "")

    def free(self) -> int: ...

    def run_tasks(self, starts: list[Start], sink: Callable[[TryOutcome], None]) -> None: ...

    def call(self, name: str, work: Callable[[], None]) -> None: ...


@dataclass
class Batch:
    """What a step writes in its one transaction, and what it does once that committed."""

    graphs: list[tuple[ClaimedRun, dict[str, Any]]] = field(default_factory=list)
    inserted: dict[int, tuple[str, Unit]] = field(default_factory=dict)
    updated: dict[int, tuple[str, Unit]] = field(default_factory=dict)
    flows: list[dict[str, Any]] = field(default_factory=list)
    ended: list[dict[str, Any]] = field(default_factory=list)
    starts: list[Start] = field(default_factory=list)
    cleanups: list[WorkflowRun] = field(default_factory=list)

    def collect(self, run: WorkflowRun) -> None:
        inserted, updated = run.take_dirty()
        for unit in inserted:
            self.inserted[id(unit)] = (run.run_id, unit)
        for unit in updated:
            if id(unit) not in self.inserted:
                self.updated[id(unit)] = (run.run_id, unit)

    @property
    def empty(self) -> bool:
        return not (self.graphs or self.inserted or self.updated or self.ended or self.starts)


class WorkflowRunner:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        epoch: int,
        owner: str,
        executor: TaskExecutor,
        on_lost: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.epoch = epoch
        self.owner = owner
        self.executor = executor
        self.on_lost = on_lost
        self.max_tasks = settings.workflow_max_tasks
        self.max_parts = settings.for_each_max_parts
        self.max_result_bytes = settings.result_max_bytes
        self.lease = settings.run_lease
        self.poll_every = settings.leader_poll_interval
        self.runs: dict[str, WorkflowRun] = {}
        self._lock = threading.Lock()
        self._claimed: list[ClaimedRun] = []
        self._outcomes: list[TryOutcome] = []
        self._handed = 0  # tries handed to the executor whose outcome has not arrived
        self._arrived = threading.Condition(self._lock)
        self._cleaned: list[tuple[str, list[str]]] = []
        self._cleaning: set[str] = set()
        self._batch = Batch()
        self._connection: Connection | None = None
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._adopted = False
        self._starting = True
        self._term_started = time.monotonic()
        self._last_poll = 0.0
        self._thread = threading.Thread(target=self._loop, name="f8a-jobs-workflows", daemon=True)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def start(self) -> None:
        self._thread.start()

    def stop_starting(self) -> None:
        """Start no more tries; tries in flight are still recorded until ``stop``."""
        self._starting = False
        self.wakeup()

    def stop(self) -> None:
        """Record what has ended (one last step, if the term still holds) and stop."""
        self._starting = False
        if self._thread.is_alive() and not self._stopped.is_set():
            self.wakeup()
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def wakeup(self) -> None:
        if not self._wake.is_set():
            self._wake.set()

    def poke(self) -> None:
        """Runs changed (a cancel request, say): read them at the next step."""
        self._last_poll = 0.0
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

    def _loop(self) -> None:
        try:
            while not self._stopped.is_set():
                self._wake.wait(self._wait_time())
                self._wake.clear()
                if self._stopped.is_set():
                    break
                self._gather()
                self._step_once()
        finally:
            if self._connection is not None:
                self._connection.close()

    def _step_once(self) -> None:
        try:
            self.step()
        except LostLeadership as lost:
            log.warning("%s: running no more workflow tasks", lost)
            self._stopped.set()
            self.on_lost()
        except Exception as error:
            log.warning("advancing workflows failed (%s); retrying", error, exc_info=True)
            self._stopped.wait(1.0)

    def _gather(self) -> None:
        """Some tries ended and others are in flight: give those a moment (``COALESCE``)."""
        with self._lock:
            if self._outcomes and self._handed > 0:
                self._arrived.wait_for(lambda: self._handed <= 0, timeout=COALESCE)

    def _wait_time(self) -> float:
        timers = [run.next_timer() for run in list(self.runs.values())]
        upcoming = min((moment for moment in timers if moment is not None), default=None)
        wait = self.poll_every
        if upcoming is not None:
            wait = min(wait, max(0.0, (upcoming - utcnow()).total_seconds()))
        return wait

    def step(self) -> None:
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
            run = self.runs.get(outcome.run_id)
            if run is not None and run.finished(outcome, now) and outcome.state == SUCCEEDED:
                batch.flows.extend(outcome.flows)
        if time.monotonic() - self._last_poll >= self.poll_every:
            self._poll(now)
        for run in self.runs.values():
            run.tick(now)
        self._admit(batch, now)
        self._end_runs(batch, cleaned, now)
        for run in self.runs.values():
            batch.collect(run)
        if not batch.empty or batch.flows:
            self._write(batch)
        self._batch = Batch()
        self._after(batch)

    def _admit(self, batch: Batch, now: datetime) -> None:
        room = self.executor.free() if self._starting else 0
        worker = self.executor.claim_worker
        for run in self.runs.values():
            if room <= 0:
                break
            starts = run.admit(room, now, self._resolve)
            for start in starts:
                unit = run.units[(start.task, start.part)]
                unit.owner, unit.epoch, unit.heartbeat_at = self.owner, self.epoch, now
                unit.worker = worker
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

    def _end_runs(self, batch: Batch, cleaned: list[tuple[str, list[str]]], now: datetime) -> None:
        errors_of = dict(cleaned)
        for run_id, run in list(self.runs.items()):
            if not run.over:
                continue
            if run_id in errors_of:
                self._cleaning.discard(run_id)
                batch.ended.append(self._ended(run, now, errors_of[run_id]))
            elif run_id not in self._cleaning:
                if any(self._cleans(run, unit) for unit in run.executed_units()):
                    self._cleaning.add(run_id)
                    batch.cleanups.append(run)
                else:
                    batch.ended.append(self._ended(run, now, []))

    def _ended(self, run: WorkflowRun, now: datetime, cleanup_errors: list[str]) -> dict[str, Any]:
        status, error = run.status()
        if cleanup_errors:
            error = "; ".join(filter(None, [error, *cleanup_errors]))
        return {
            "run_id": run.run_id,
            "job_id": run.job_id,
            "status": status,
            "error": error,
            "result": {"tasks": run.summary()},
            "finished_at": now,
        }

    def _write(self, batch: Batch) -> None:
        if self._connection is None:  # one connection for every write: no checkout, no ping
            self._connection = self.engine.connect()
        connection = self._connection
        try:
            with connection.begin():
                lifecycle.fence(connection, self.epoch)
                for claimed_run, graph in batch.graphs:
                    lifecycle.record_graph(connection, claimed_run, graph)
                run_of = {key: run_id for key, (run_id, _) in batch.inserted.items()}
                run_of.update({key: run_id for key, (run_id, _) in batch.updated.items()})
                store.write_units(
                    connection,
                    run_of,
                    [unit for _, unit in batch.inserted.values()],
                    [unit for _, unit in batch.updated.values()],
                )
                insert_rows(connection, flow_outbox, batch.flows, skip_conflicts=True)
                lifecycle.finish_workflows(connection, self.epoch, batch.ended)
            wakeups.publish_requested(connection)
            self._count(batch)
        except LostLeadership:
            raise
        except Exception:
            self._keep(batch)
            self._connection = None  # it may be broken: the next write takes a fresh one
            connection.invalidate()
            raise

    @staticmethod
    def _count(batch: Batch) -> None:
        states = Counter(
            unit.state for _, unit in [*batch.inserted.values(), *batch.updated.values()]
        )
        for state, count in states.items():
            metrics.task_changed(state, count)
        for row in batch.ended:
            metrics.run_ended("", row["status"], None, None)

    def _keep(self, batch: Batch) -> None:
        """A write failed: what it held is written with the next step's."""
        batch.updated = {
            key: value for key, value in batch.updated.items() if key not in batch.inserted
        }
        self._batch = batch

    def _after(self, batch: Batch) -> None:
        for row in batch.ended:
            self.runs.pop(row["run_id"], None)
        if batch.ended:
            log.info("workflow runs ended: %s", ", ".join(row["run_id"] for row in batch.ended))
        if batch.starts:
            with self._lock:
                self._handed += len(batch.starts)
            self.executor.run_tasks(batch.starts, self.add)
        for run in batch.cleanups:
            self.executor.call(f"cleanup:{run.run_id}", self._cleanup_work(run))

    # --- opening runs -------------------------------------------------------------------------

    def _open(self, claimed: ClaimedRun, batch: Batch, now: datetime) -> None:
        try:
            if claimed.resumed:
                self._resume(claimed, now)
                return
            workflow = WorkflowSpec.from_json(claimed.workflow or {})
            with self.engine.connect() as connection:
                nodes = expand(claimed.job_id, workflow, job_lookup(connection), self.max_tasks)
            check_acyclic(nodes)
        except InvalidInput as error:
            batch.ended.append(
                {
                    "run_id": claimed.run_id,
                    "job_id": claimed.job_id,
                    "status": "failed",
                    "error": f"the workflow cannot start: {error.detail}",
                    "result": None,
                    "finished_at": now,
                }
            )
            return
        deadline = now + timedelta(seconds=workflow.timeout) if workflow.timeout else None
        run = WorkflowRun(
            claimed.run_id,
            claimed.job_id,
            claimed.scheduled_for,
            nodes,
            workflow.max_concurrent,
            deadline,
            workflow.timeout,
        )
        run.max_parts = self.max_parts
        run.begin(now)
        batch.graphs.append((claimed, graph_json(nodes, workflow)))
        self.runs[run.run_id] = run

    def _resume(self, claimed: ClaimedRun, now: datetime) -> None:
        with self.engine.connect() as connection:
            rows = lifecycle.workflow_rows(connection, [claimed.run_id])
            units = store.load_units(connection, [claimed.run_id])
        for row in rows:
            self._restore(row, units[row.run_id], now, row.started_at or now)

    def _adopt(self, now: datetime) -> None:
        """A new term takes every workflow run under way and resumes it from its rows."""
        with self.engine.begin() as connection:
            rows = lifecycle.adopt_workflows(connection, self.epoch, self.owner)
            units = store.load_units(connection, [row.run_id for row in rows])
        for row in rows:
            self._restore(row, units[row.run_id], now, row.started_at or now)
        if rows:
            log.info("resuming %d workflow runs", len(rows))
        self._adopted = True

    def _restore(self, row: Any, units: list[Unit], now: datetime, started: datetime) -> None:
        graph = row.graph
        timeout = graph.get("timeout")
        run = WorkflowRun(
            row.run_id,
            row.job_id,
            row.scheduled_for,
            graph_nodes(graph),
            graph["max_concurrent"],
            started + timedelta(seconds=timeout) if timeout else None,
            timeout,
        )
        run.max_parts = self.max_parts
        run.restore(units, now)
        self.runs[run.run_id] = run

    # --- polling: cancel requests, tries of processes that are gone ----------------------------

    def _poll(self, now: datetime) -> None:
        self._last_poll = time.monotonic()
        if not self.runs:
            return
        with self.engine.connect() as connection:
            for run_id in lifecycle.cancel_requested(connection, list(self.runs)):
                self.runs[run_id].cancel(now)
            if time.monotonic() - self._term_started >= self.lease:
                self._retry_orphans(connection, now)

    def _retry_orphans(self, connection: Connection, now: datetime) -> None:
        """Tries whose process stopped heartbeating run again: those another process or an
        earlier term of this one started, and those a remote worker took (their outcomes
        will not reach this runner). A try whose outcome waits on its row is not lost."""
        remote = self.executor.remote
        suspects = [
            (run, unit)
            for run in self.runs.values()
            for unit in run.units.values()
            if unit.state == RUNNING
            and unit.key in run.running
            and (remote or unit.owner != self.owner or unit.epoch != self.epoch)
        ]
        if not suspects:
            return
        stale_before = now - timedelta(seconds=self.lease)
        rows = {
            (row.run_id, row.task, row.part): row
            for row in connection.execute(
                select(run_tasks.c.run_id, run_tasks.c.task, run_tasks.c.part)
                .add_columns(run_tasks.c.heartbeat_at, run_tasks.c.worker)
                .add_columns(run_tasks.c.reported.is_not(None).label("reported"))
                .where(run_tasks.c.run_id.in_({run.run_id for run, _ in suspects}))
                .where(run_tasks.c.state == RUNNING)
            )
        }
        for run, unit in suspects:
            row = rows.get((run.run_id, unit.task, unit.part))
            ours = unit.owner == self.owner and unit.epoch == self.epoch
            if row is not None and (row.reported or (ours and not row.worker)):
                continue  # its outcome waits to be applied; or it is ours, here or in the broker
            if row is None or row.heartbeat_at is None or row.heartbeat_at < stale_before:
                who = row.worker if row is not None and row.worker else unit.owner
                run.interrupted(unit.key, ORPHANED.format(owner=who, lease=self.lease), now)

    # --- cleanup ------------------------------------------------------------------------------

    @staticmethod
    def _cleans(run: WorkflowRun, unit: Unit) -> bool:
        handler = run.nodes[unit.task].handler
        return bool(handler) and callable(getattr(get_handler(handler or ""), "cleanup", None))

    def _cleanup_work(self, run: WorkflowRun) -> Callable[[], None]:
        """Cleanups of the tasks whose ``execute`` ran, last completed first (DoJobber)."""
        plan = []
        for unit in run.executed_units():
            node = run.nodes[unit.task]
            if unit.part == WHOLE and unit.task in run.parts:
                continue  # its parts are cleaned up one by one
            if self._cleans(run, unit):
                kwargs = {**resolve_results(run, node.kwargs), **item_kwargs(unit)}
                plan.append((unit.task, node.handler or "", node.job_id, kwargs))

        def work() -> None:
            errors = []
            for task, handler, job_id, kwargs in plan:
                try:
                    cleanup(handler, job_id, kwargs, self.engine)
                except Exception as error:
                    log.warning("cleanup of task %r failed: %s", task, error)
                    errors.append(
                        f"cleanup of task {task!r} failed: {type(error).__name__}: {error}"
                    )
            with self._lock:
                self._cleaned.append((run.run_id, errors))
            self.wakeup()

        return work
