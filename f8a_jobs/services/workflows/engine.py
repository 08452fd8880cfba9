"""The workflow engine's core, in memory and without I/O: finished tries in, tries to start out.

A ``WorkflowRun`` holds one run's expanded graph and the state of each *unit*: a task's own row
(part ``WHOLE``) or one part of a ``for_each`` task. It keeps what ``graphlib`` would (unmet
dependency counts), plus what a scheduler needs: a FIFO of ready units (the order they became
ready, so a retry goes to the back: DoJobber's round robin), a heap of retries and deadlines,
and the units running. Every change marks the unit dirty; the runner writes dirty units in one
transaction, and only then hands the started ones to an executor. Waiting is data: a retry
delay, a concurrency slot or an upstream task is a state and a time, never a sleeping thread.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from f8a_jobs.core.json_values import storable_text
from f8a_jobs.core.policy import INTERRUPTIONS
from f8a_jobs.core.states import DONE, WHOLE, TaskState
from f8a_jobs.services.runs.model import ERROR_LIMIT, TRACEBACK_LIMIT, Unit
from f8a_jobs.services.workflows.results import Resolver, item_kwargs
from f8a_jobs.services.workflows.state import Key, RunState
from f8a_jobs.services.workflows.tries import Start, TryClaim, TryOutcome

PENDING, READY, RUNNING = TaskState.PENDING, TaskState.READY, TaskState.RUNNING
RETRYING, FAILED, CANCELLED = TaskState.RETRYING, TaskState.FAILED, TaskState.CANCELLED
SUCCEEDED, UPSTREAM_FAILED = TaskState.SUCCEEDED, TaskState.UPSTREAM_FAILED


class WorkflowRun(RunState):
    """One run's engine: how its units change as tries start, end and time passes."""

    # --- building -------------------------------------------------------------------------

    def begin(self, now: datetime) -> None:
        """A new run: every task pending, the roots ready."""
        for name in self.nodes:
            unit = Unit(self.run_id, name, WHOLE)
            self.units[unit.key] = unit
            self.inserted.append(unit)
        for name, count in self.unmet.items():
            if count == 0:
                self._make_ready(name, now)

    def restore(self, units: Iterable[Unit], now: datetime) -> None:
        """A run resumed from its rows (a new term, or a retry of a finished run)."""
        units = list(units)
        for unit in units:
            self.units[unit.key] = unit
            if unit.finished_seq is not None:
                self.finished_count = max(self.finished_count, unit.finished_seq)
        self.parts.restore(unit for unit in units if unit.part != WHOLE)
        for name, node in self.nodes.items():
            self.unmet[name] = sum(not self._met(dependency) for dependency in node.depends_on)
            unit = self.units[(name, WHOLE)]
            if unit.state == FAILED and node.fail_workflow_on_error and self.failure is None:
                self.failure = f"task {name!r} failed: {unit.error}"
        self._restore_waiting(now)
        for unit in self.units.values():
            if unit.state == PENDING and unit.part == WHOLE and self.unmet[unit.task] == 0:
                self._make_ready(unit.task, now)
            if unit.state == RUNNING and (unit.part != WHOLE or unit.task not in self.parts):
                self.running.add(unit.key)
                self._task_deadline(unit)
        self._check_whole_tasks(now)

    def _restore_waiting(self, now: datetime) -> None:
        """Ready units queue again in the order they became ready; retries wait for their time."""
        waiting = sorted(
            (unit for unit in self.units.values() if unit.state in (READY, RETRYING)),
            key=lambda unit: (unit.ready_at or now, unit.task, unit.part),
        )
        for unit in waiting:
            if unit.state == READY and unit.part == WHOLE and unit.task in self.parts:
                continue  # parts were made: they are what waits
            if unit.state == READY:
                self.ready.append(unit.key)
            else:
                self._timer(unit.ready_at or now, "retry", unit.key)

    # --- the run's progress -----------------------------------------------------------------

    def admit(self, room: int, now: datetime, resolve: Resolver, claim: TryClaim) -> list[Start]:
        """Start ready units, oldest ready first, while the run and the executor have room;
        each started unit carries ``claim``."""
        starts: list[Start] = []
        while (
            self.ready
            and len(starts) < room
            and len(self.running) < self.max_concurrent
            and not self.stopping
        ):
            unit = self.units[self.ready.popleft()]
            if unit.state != READY:
                continue
            start = self._start(unit, now, resolve, claim)
            if start is not None:
                starts.append(start)
        return starts

    def finished(self, outcome: TryOutcome, now: datetime) -> bool:
        """Apply a try's end; False when it is stale (timed out, cancelled, run again)."""
        unit = self.units.get((outcome.task, outcome.part))
        if unit is None or unit.state != RUNNING or unit.tries != outcome.try_number:
            return False
        self.running.discard(unit.key)
        unit.started_at = outcome.started_at or unit.started_at
        unit.executed = unit.executed or outcome.executed
        unit.worker = outcome.worker or unit.worker
        unit.reported = None
        if outcome.state in DONE:
            self._settle(unit, outcome.state, now, result=outcome.result)
        else:
            self._failed_try(unit, outcome.error, outcome.traceback, now)
        return True

    def interrupted(self, key: Key, reason: str, now: datetime) -> None:
        """A try's process died: run it again as a new try, not counted against ``tries``
        (up to ``INTERRUPTIONS`` times: a task that kills its process each time then fails)."""
        unit = self.units[key]
        if unit.state != RUNNING:
            return
        self.running.discard(key)
        if unit.tries >= self.nodes[unit.task].tries + INTERRUPTIONS or self.stopping:
            self._settle(unit, FAILED, now, error=reason)
            return
        self._set(unit, state=READY, ready_at=now, error=reason, owner=None, reported=None)
        self.ready.append(key)

    def withdrawn(self, key: Key, try_number: int, error: str, now: datetime) -> None:
        """A cancelled run's try that no worker took was withdrawn from the broker: it ends
        ``cancelled``, never having run (no outcome will come)."""
        unit = self.units.get(key)
        if unit is None or unit.state != RUNNING or unit.tries != try_number:
            return
        self.running.discard(key)
        self._settle(unit, CANCELLED, now, error=error)

    def tick(self, now: datetime) -> None:
        """Retries whose delay is over become ready; tasks and a run past their time fail."""
        if self.deadline is not None and now >= self.deadline and not self.stopping:
            reason = f"the run exceeded the job's timeout of {self.timeout:g} s (timeout)"
            self.fail_run(reason, now, stop_running=True)
        while self.timers and self.timers[0][0] <= now:
            _, _, why, key = heapq.heappop(self.timers)
            unit = self.units[key]
            if why == "retry" and unit.state == RETRYING:
                if self.stopping:
                    self._settle(unit, CANCELLED, now, error=self._stop_reason())
                else:
                    self._set(unit, state=READY, ready_at=now)
                    self.ready.append(key)
            elif unit.state == RUNNING and why == f"timeout:{unit.tries}":
                limit = self.nodes[unit.task].timeout or 0
                self.running.discard(key)
                error = (
                    f"timed out: try {unit.tries} ran longer than the task's timeout of {limit:g} s"
                )
                self._failed_try(unit, error, None, now)

    def cancel(self, now: datetime) -> None:
        """Cancel what has not started; running tries end, and the run ends ``cancelled``."""
        if self.over:
            return
        self.cancelled = True
        self._stop_all(CANCELLED, "the run was cancelled", now)

    def fail_run(self, reason: str, now: datetime, stop_running: bool = False) -> None:
        """The run fails: tasks not started are ``upstream_failed``; running tries go on, or
        with ``stop_running`` (the run's own timeout) fail too, their late results ignored."""
        if self.failure is None:
            self.failure = reason
        if stop_running:
            for key in list(self.running):
                self.running.discard(key)
                self._settle(self.units[key], FAILED, now, error=reason)
        self._stop_all(UPSTREAM_FAILED, reason, now)

    # --- transitions ------------------------------------------------------------------------

    def _make_ready(self, name: str, now: datetime) -> None:
        unit = self.units[(name, WHOLE)]
        node = self.nodes[name]
        if node.handler is None:  # a group, or the end of an inlined job: nothing to run
            self._settle(unit, SUCCEEDED, now, result=None)
            return
        self._set(unit, state=READY, ready_at=now)
        self.ready.append(unit.key)

    def _start(self, unit: Unit, now: datetime, resolve: Resolver, claim: TryClaim) -> Start | None:
        node = self.nodes[unit.task]
        try:
            if node.for_each is not None and unit.part == WHOLE:
                self._split(unit, resolve(self, node.for_each), now)
                return None
            kwargs = resolve(self, node.kwargs)
        except LookupError as error:  # a $result path the result lacks, a failed $filter
            self._set(unit, tries=unit.tries + 1)
            self._failed_try(unit, str(error), None, now)
            return None
        self._set(
            unit,
            state=RUNNING,
            tries=unit.tries + 1,
            started_at=now,
            finished_at=None,
            error=None,
            traceback=None,
            owner=claim.owner,
            epoch=claim.epoch,
            heartbeat_at=now,
            worker=claim.worker,
        )
        self.running.add(unit.key)
        self._task_deadline(unit)
        return Start(
            run_id=self.run_id,
            job_id=node.job_id,
            scheduled_for=self.scheduled_for,
            task=unit.task,
            part=unit.part,
            num_parts=self.parts.count(unit.task),
            try_number=unit.tries,
            handler=node.handler or "",
            kwargs={**kwargs, **item_kwargs(unit)},
            deadline=now + timedelta(seconds=node.timeout) if node.timeout else None,
            queue=node.queue,
            timeout=node.timeout,
            secret_kwargs=node.secret_kwargs,
        )

    def _split(self, unit: Unit, items: Any, now: datetime) -> None:
        """A ``for_each`` task became ready: one part per item, each ready now."""
        problem = self.parts.problem(items)
        if problem is not None:
            self._set(unit, tries=1)
            self._settle(unit, FAILED, now, error=problem)
            return
        self._set(unit, state=RUNNING, tries=1, started_at=now)
        for part in self.parts.make(unit.task, items, now):
            self.units[part.key] = part
            self.inserted.append(part)
            self.ready.append(part.key)
        self._check_whole_tasks(now)

    def _task_deadline(self, unit: Unit) -> None:
        limit = self.nodes[unit.task].timeout
        if limit and unit.started_at is not None:
            moment = unit.started_at + timedelta(seconds=limit)
            self._timer(moment, f"timeout:{unit.tries}", unit.key)

    def _failed_try(self, unit: Unit, error: str | None, trace: str | None, now: datetime) -> None:
        due = None if self.stopping else self.nodes[unit.task].retry_at(unit.tries, now)
        if due is None:
            self._settle(unit, FAILED, now, error=error, trace=trace)
            return
        self._set(
            unit,
            state=RETRYING,
            ready_at=due,
            finished_at=now,
            error=storable_text(error, ERROR_LIMIT),
            traceback=storable_text(trace, TRACEBACK_LIMIT),
        )
        self._timer(due, "retry", unit.key)

    def _settle(
        self,
        unit: Unit,
        state: str,
        now: datetime,
        result: Any = None,
        error: str | None = None,
        trace: str | None = None,
    ) -> None:
        """A unit reached a final state: its task may be over, its dependents may be ready."""
        self.finished_count += 1
        self._set(
            unit,
            state=state,
            finished_at=now,
            finished_seq=self.finished_count,
            result=result,
            error=storable_text(error, ERROR_LIMIT),
            traceback=storable_text(trace, TRACEBACK_LIMIT),
        )
        if unit.part != WHOLE:
            self.parts.settled(unit.task)
            self._check_whole_tasks(now, unit.task)
            return
        node = self.nodes[unit.task]
        if state == FAILED and node.fail_workflow_on_error and not self.stopping:
            self.fail_run(f"task {unit.task!r} failed: {error}", now)
            return
        if state in DONE or state == FAILED:
            for name in self.dependents[unit.task]:
                self.unmet[name] -= 1
                if self.unmet[name] == 0 and not self.stopping:
                    dependent = self.units[(name, WHOLE)]
                    if dependent.state == PENDING:
                        self._make_ready(name, now)

    def _check_whole_tasks(self, now: datetime, only: str | None = None) -> None:
        """A ``for_each`` task is over when all its parts are: succeeded, or failed."""
        for name in [only] if only else list(self.parts.of):
            whole = self.units[(name, WHOLE)]
            ended = self.parts.ended(name) if whole.state == RUNNING else None
            if ended is not None:
                whole.executed = self.parts.executed(name)
                state, result, error = ended
                self._settle(whole, state, now, result=result, error=error)

    def _stop_all(self, state: str, reason: str, now: datetime) -> None:
        self.ready.clear()
        for unit in list(self.units.values()):
            if unit.state in (PENDING, READY, RETRYING):
                final = CANCELLED if unit.state == RETRYING else state
                self._settle(unit, final, now, error=reason)
        self._check_whole_tasks(now)

    def _stop_reason(self) -> str:
        return "the run was cancelled" if self.cancelled else f"the run failed: {self.failure}"
