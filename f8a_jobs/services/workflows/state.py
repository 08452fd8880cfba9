"""What a workflow run holds in memory, and what its runner reads of it: the expanded graph,
each unit's row, the ready queue, the timers, the units running and those changed since the
last write. ``engine.WorkflowRun`` says how it changes.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from f8a_jobs.core.states import DONE, FINAL, WHOLE, RunStatus, TaskState
from f8a_jobs.services.runs.model import Unit
from f8a_jobs.services.workflows.expand import JOB_END, Node
from f8a_jobs.services.workflows.parts import Parts

Key = tuple[str, int]  # (task name, part)
# Read once, for the hot loops: an enum member is a class-attribute lookup per use.
FAILED = TaskState.FAILED


class ReadyQueue:
    """Units ready to start: the highest priority first, then the order they became ready."""

    def __init__(self, priority_of: Callable[[Key], int]) -> None:
        self._heap: list[tuple[int, int, Key]] = []
        self._order = itertools.count()
        self._priority_of = priority_of

    def __bool__(self) -> bool:
        return bool(self._heap)

    def append(self, key: Key) -> None:
        heapq.heappush(self._heap, (-self._priority_of(key), next(self._order), key))

    def popleft(self) -> Key:
        return heapq.heappop(self._heap)[2]

    def clear(self) -> None:
        self._heap.clear()

    @property
    def best(self) -> int:
        """The highest priority waiting (the runner serves runs in this order)."""
        return -self._heap[0][0] if self._heap else -1


class RunState:
    """One run's units and queues; the engine's transitions change them through ``_set``."""

    def __init__(
        self,
        run_id: str,
        job_id: str,
        scheduled_for: datetime,
        nodes: list[Node],
        max_concurrent: int,
        deadline: datetime | None,
        timeout: float | None = None,
        max_parts: int = 100_000,
        started_at: datetime | None = None,
    ) -> None:
        self.run_id = run_id
        self.job_id = job_id
        self.scheduled_for = scheduled_for
        self.started_at = started_at  # the run's start (its duration's), not a task's
        self.nodes = {node.name: node for node in nodes}
        self.max_concurrent = max_concurrent
        self.deadline = deadline
        self.timeout = timeout
        self.dependents: dict[str, list[str]] = {name: [] for name in self.nodes}
        for node in nodes:
            for dependency in node.depends_on:
                self.dependents[dependency].append(node.name)
        self.units: dict[Key, Unit] = {}
        self.parts = Parts(run_id, max_parts)
        self.unmet: dict[str, int] = {node.name: len(node.depends_on) for node in nodes}
        self.ready = ReadyQueue(lambda key: self.nodes[key[0]].priority)
        self.timers: list[tuple[datetime, int, str, Key]] = []  # (when, tiebreak, why, unit)
        self.running: set[Key] = set()
        self.dirty: dict[Key, Unit] = {}
        self.inserted: list[Unit] = []  # units created since the last write
        self.failure: str | None = None  # why the run fails (nothing new starts)
        self.cancelled = False
        self.finished_count = 0
        self._tiebreak = itertools.count()

    @property
    def stopping(self) -> bool:
        return self.failure is not None or self.cancelled

    def next_timer(self) -> datetime | None:
        candidates = [self.timers[0][0]] if self.timers else []
        if self.deadline is not None and not self.stopping:
            candidates.append(self.deadline)
        return min(candidates, default=None)

    @property
    def over(self) -> bool:
        """Nothing runs and nothing more will: the run can be recorded."""
        if self.running:
            return False
        return all(unit.state in FINAL for unit in self.units.values())

    def status(self) -> tuple[str, str | None]:
        """The run's status and error, once it is over."""
        if self.cancelled:
            return RunStatus.CANCELLED, "the run was cancelled"
        if self.failure is not None:
            return RunStatus.FAILED, self.failure
        return RunStatus.SUCCEEDED, None

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
            return self.parts.results(name)
        if node.kind == JOB_END:
            prefix = f"{name}/"
            return {leaf.removeprefix(prefix): self.result_of(leaf) for leaf in node.depends_on}
        return self.units[(name, WHOLE)].result

    # --- changes every transition makes ----------------------------------------------------

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

    def _timer(self, moment: datetime, why: str, key: Key) -> None:
        heapq.heappush(self.timers, (moment, next(self._tiebreak), why, key))
