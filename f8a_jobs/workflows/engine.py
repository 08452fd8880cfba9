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
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from f8a_jobs.json_values import storable_text
from f8a_jobs.runs import CANCELLED as RUN_CANCELLED
from f8a_jobs.runs import FAILED as RUN_FAILED
from f8a_jobs.runs import SUCCEEDED as RUN_SUCCEEDED
from f8a_jobs.runs.policy import INTERRUPTIONS
from f8a_jobs.workflows import (
    CANCELLED,
    DONE,
    FAILED,
    FINAL,
    PENDING,
    READY,
    RESULT_KEY,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    UPSTREAM_FAILED,
    WHOLE,
)
from f8a_jobs.workflows.expand import JOB_END, Node
from f8a_jobs.workflows.spec import referenced_task

ERROR_LIMIT = 8_000
TRACEBACK_LIMIT = 64_000
Key = tuple[str, int]  # (task name, part)


@dataclass(slots=True)
class Unit:
    """The state of a task (part ``WHOLE``) or of one ``for_each`` part: one ``run_tasks`` row."""

    task: str
    part: int
    state: str = PENDING
    tries: int = 0
    ready_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    finished_seq: int | None = None
    executed: bool = False
    epoch: int | None = None
    owner: str | None = None
    heartbeat_at: datetime | None = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    item: Any = None  # a for_each part's item
    worker: str | None = None  # remote tries: "" in the broker, then the worker running it
    reported: Any = None  # a remote try's outcome until it is applied (always None here)

    @property
    def key(self) -> Key:
        return self.task, self.part

    def row(self, run_id: str) -> dict[str, Any]:
        return {"run_id": run_id, **{name: getattr(self, name) for name in Unit.__slots__}}


@dataclass(slots=True)
class Start:
    """A try to run: the unit, and the kwargs it runs with (``$result``s filled in)."""

    run_id: str
    job_id: str
    scheduled_for: datetime
    task: str
    part: int
    num_parts: int | None
    try_number: int
    handler: str
    kwargs: dict[str, Any]
    deadline: datetime | None
    queue: str | None = None  # the broker queue of a remote try (None: the default)
    timeout: float | None = None  # the task's timeout (a remote try's time limit)


@dataclass(slots=True)
class TryOutcome:
    """How a try ended: ``succeeded``, ``satisfied`` (its check passed) or ``failed``."""

    run_id: str
    task: str
    part: int
    try_number: int
    state: str
    started_at: datetime | None
    finished_at: datetime
    executed: bool = False
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    flows: list[dict[str, Any]] = field(default_factory=list)
    worker: str | None = None  # the remote worker that ran it


class WorkflowRun:
    def __init__(
        self,
        run_id: str,
        job_id: str,
        scheduled_for: datetime,
        nodes: list[Node],
        max_concurrent: int,
        deadline: datetime | None,
        timeout: float | None = None,
    ) -> None:
        self.run_id = run_id
        self.job_id = job_id
        self.scheduled_for = scheduled_for
        self.nodes = {node.name: node for node in nodes}
        self.max_concurrent = max_concurrent
        self.deadline = deadline
        self.timeout = timeout
        self.dependents: dict[str, list[str]] = {name: [] for name in self.nodes}
        for node in nodes:
            for dependency in node.depends_on:
                self.dependents[dependency].append(node.name)
        self.units: dict[Key, Unit] = {}
        self.parts: dict[str, list[Unit]] = {}
        self.open_parts: dict[str, int] = {}  # parts of each for_each task not final yet
        self.unmet: dict[str, int] = {node.name: len(node.depends_on) for node in nodes}
        self.ready: deque[Key] = deque()
        self.timers: list[tuple[datetime, int, str, Key]] = []  # (when, tiebreak, why, unit)
        self.running: set[Key] = set()
        self.dirty: dict[Key, Unit] = {}
        self.inserted: list[Unit] = []  # parts created since the last write
        self.failure: str | None = None  # why the run fails (nothing new starts)
        self.cancelled = False
        self.finished_count = 0
        self.max_parts = 100_000
        self._tiebreak = itertools.count()

    # --- building -------------------------------------------------------------------------

    def begin(self, now: datetime) -> None:
        """A new run: every task pending, the roots ready."""
        for name in self.nodes:
            unit = Unit(name, WHOLE)
            self.units[unit.key] = unit
            self.inserted.append(unit)
        for name, count in self.unmet.items():
            if count == 0:
                self._make_ready(name, now)

    def restore(self, units: Iterable[Unit], now: datetime) -> None:
        """A run resumed from its rows (a new term, or a retry of a finished run)."""
        for unit in units:
            self.units[unit.key] = unit
            if unit.part != WHOLE:
                self.parts.setdefault(unit.task, []).append(unit)
            if unit.finished_seq is not None:
                self.finished_count = max(self.finished_count, unit.finished_seq)
        for name, parts in self.parts.items():
            parts.sort(key=lambda unit: unit.part)
            self.open_parts[name] = sum(part.state not in FINAL for part in parts)
        for name, node in self.nodes.items():
            self.unmet[name] = sum(not self._met(dependency) for dependency in node.depends_on)
            unit = self.units[(name, WHOLE)]
            if unit.state == FAILED and node.fail_workflow_on_error and self.failure is None:
                self.failure = f"task {name!r} failed: {unit.error}"
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
        for unit in self.units.values():
            if unit.state == PENDING and unit.part == WHOLE and self.unmet[unit.task] == 0:
                self._make_ready(unit.task, now)
            if unit.state == RUNNING and (unit.part != WHOLE or unit.task not in self.parts):
                self.running.add(unit.key)
                self._task_deadline(unit)
        self._check_whole_tasks(now)

    # --- the run's progress -----------------------------------------------------------------

    def admit(self, room: int, now: datetime, resolve: Resolver) -> list[Start]:
        """Start ready units, oldest ready first, while the run and the executor have room."""
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
            start = self._start(unit, now, resolve)
            if start is not None:
                starts.append(start)
        return starts

    @property
    def stopping(self) -> bool:
        return self.failure is not None or self.cancelled

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

    def next_timer(self) -> datetime | None:
        candidates = [self.timers[0][0]] if self.timers else []
        if self.deadline is not None and not self.stopping:
            candidates.append(self.deadline)
        return min(candidates, default=None)

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

    @property
    def over(self) -> bool:
        """Nothing runs and nothing more will: the run can be recorded."""
        if self.running:
            return False
        return all(unit.state in FINAL for unit in self.units.values())

    def status(self) -> tuple[str, str | None]:
        """The run's status and error, once it is over."""
        if self.cancelled:
            return RUN_CANCELLED, "the run was cancelled"
        if self.failure is not None:
            return RUN_FAILED, self.failure
        return RUN_SUCCEEDED, None

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for unit in self.units.values():
            if unit.part == WHOLE:
                counts[unit.state] = counts.get(unit.state, 0) + 1
        return counts

    def executed_units(self) -> list[Unit]:
        """Units whose ``execute`` ran, in reverse order of completion (cleanup unwinds)."""
        done = [unit for unit in self.units.values() if unit.executed]
        return sorted(done, key=lambda unit: unit.finished_seq or 0, reverse=True)

    def take_dirty(self) -> tuple[list[Unit], list[Unit]]:
        """The rows to insert and those to update since the last call."""
        inserted, self.inserted = self.inserted, []
        new = {unit.key for unit in inserted}
        updated = [unit for key, unit in self.dirty.items() if key not in new]
        self.dirty = {}
        return inserted, updated

    def result_of(self, name: str) -> Any:
        node = self.nodes[name]
        if name in self.parts:
            return [part.result for part in self.parts[name]]
        if node.kind == JOB_END:
            prefix = f"{name}/"
            return {leaf.removeprefix(prefix): self.result_of(leaf) for leaf in node.depends_on}
        return self.units[(name, WHOLE)].result

    # --- transitions ------------------------------------------------------------------------

    def _set(self, unit: Unit, **values: Any) -> None:
        for name, value in values.items():
            setattr(unit, name, value)
        self.dirty[unit.key] = unit

    def _met(self, dependency: str) -> bool:
        unit = self.units.get((dependency, WHOLE))
        if unit is None:
            return False
        if unit.state in DONE:
            return True
        return unit.state == FAILED and not self.nodes[dependency].fail_workflow_on_error

    def _make_ready(self, name: str, now: datetime) -> None:
        unit = self.units[(name, WHOLE)]
        node = self.nodes[name]
        if node.handler is None:  # a group, or the end of an inlined job: nothing to run
            self._settle(unit, SUCCEEDED, now, result=None)
            return
        self._set(unit, state=READY, ready_at=now)
        self.ready.append(unit.key)

    def _start(self, unit: Unit, now: datetime, resolve: Resolver) -> Start | None:
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
        )
        self.running.add(unit.key)
        self._task_deadline(unit)
        parts = self.parts.get(unit.task)
        return Start(
            run_id=self.run_id,
            job_id=node.job_id,
            scheduled_for=self.scheduled_for,
            task=unit.task,
            part=unit.part,
            num_parts=len(parts) if parts is not None else None,
            try_number=unit.tries,
            handler=node.handler or "",
            kwargs={**kwargs, **item_kwargs(unit)},
            deadline=now + timedelta(seconds=node.timeout) if node.timeout else None,
            queue=node.queue,
            timeout=node.timeout,
        )

    def _split(self, unit: Unit, items: Any, now: datetime) -> None:
        """A ``for_each`` task became ready: one part per item, each ready now."""
        problem = None
        if not isinstance(items, list):
            problem = f"for_each gave {type(items).__name__}, not a list"
        elif len(items) > self.max_parts:
            problem = (
                f"for_each gave more than {self.max_parts} items (F8A_JOBS_FOR_EACH_MAX_PARTS)"
            )
        if problem is not None:
            self._set(unit, tries=1)
            self._settle(unit, FAILED, now, error=problem)
            return
        self._set(unit, state=RUNNING, tries=1, started_at=now)
        parts = [
            Unit(unit.task, index, state=READY, ready_at=now, item=item)
            for index, item in enumerate(items)
        ]
        self.parts[unit.task] = parts
        self.open_parts[unit.task] = len(parts)
        for part in parts:
            self.units[part.key] = part
            self.inserted.append(part)
            self.ready.append(part.key)
        self._check_whole_tasks(now)

    def _task_deadline(self, unit: Unit) -> None:
        limit = self.nodes[unit.task].timeout
        if limit and unit.started_at is not None:
            moment = unit.started_at + timedelta(seconds=limit)
            self._timer(moment, f"timeout:{unit.tries}", unit.key)

    def _timer(self, moment: datetime, why: str, key: Key) -> None:
        heapq.heappush(self.timers, (moment, next(self._tiebreak), why, key))

    def _failed_try(self, unit: Unit, error: str | None, trace: str | None, now: datetime) -> None:
        node = self.nodes[unit.task]
        if unit.tries < node.tries and not self.stopping:
            delay = node.retry_delay * node.retry_backoff ** (unit.tries - 1)
            due = now + timedelta(seconds=delay)
            self._set(
                unit,
                state=RETRYING,
                ready_at=due,
                finished_at=now,
                error=_text(error, ERROR_LIMIT),
                traceback=_text(trace, TRACEBACK_LIMIT),
            )
            self._timer(due, "retry", unit.key)
            return
        self._settle(unit, FAILED, now, error=error, trace=trace)

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
            error=_text(error, ERROR_LIMIT),
            traceback=_text(trace, TRACEBACK_LIMIT),
        )
        if unit.part != WHOLE:
            self.open_parts[unit.task] -= 1
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
        names = [only] if only else list(self.parts)
        for name in names:
            whole = self.units[(name, WHOLE)]
            parts = self.parts[name]
            if whole.state != RUNNING or self.open_parts[name]:
                continue
            bad = [part for part in parts if part.state not in DONE]
            whole.executed = any(part.executed for part in parts)
            if bad:
                first = bad[0]
                error = f"{len(bad)} of {len(parts)} parts failed; part {first.part}: {first.error}"
                self._settle(whole, FAILED, now, error=error)
            else:
                self._settle(whole, SUCCEEDED, now, result=[part.result for part in parts])

    def _stop_all(self, state: str, reason: str, now: datetime) -> None:
        self.ready.clear()
        for unit in list(self.units.values()):
            if unit.state in (PENDING, READY, RETRYING):
                final = CANCELLED if unit.state == RETRYING else state
                self._settle(unit, final, now, error=reason)
        self._check_whole_tasks(now)

    def _stop_reason(self) -> str:
        return "the run was cancelled" if self.cancelled else f"the run failed: {self.failure}"


Resolver = Callable[[WorkflowRun, Any], Any]


def resolve_results(run: WorkflowRun, value: Any) -> Any:
    """``value`` with each ``{"$result": "task.key"}`` replaced by that result (a missing key
    raises ``LookupError`` saying which)."""
    if isinstance(value, dict):
        if set(value) == {RESULT_KEY}:
            return _result_at(run, value[RESULT_KEY])
        return {key: resolve_results(run, item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_results(run, item) for item in value]
    return value


def _result_at(run: WorkflowRun, reference: str) -> Any:
    task = referenced_task(reference, run.nodes)
    if task is None:
        raise LookupError(f"'$result': no task {reference!r}")
    value = run.result_of(task)
    for key in reference[len(task) + 1 :].split(".") if reference != task else []:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise LookupError(f"'$result': {reference!r}: the result of {task!r} has no {key!r}")
    return value


def item_kwargs(unit: Unit) -> dict[str, Any]:
    """A for_each item as kwargs: an object is merged, any other value is ``item``."""
    if unit.part == WHOLE:
        return {}
    return unit.item if isinstance(unit.item, dict) else {"item": unit.item}


def _text(value: str | None, limit: int) -> str | None:
    return storable_text(value, limit)
