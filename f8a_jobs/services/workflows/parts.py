"""The parts of a run's ``for_each`` tasks: one unit per item, made when the task starts (each
ready at once); the task is over when all its parts are, failed if any part failed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from f8a_jobs.core.states import DONE, FINAL, TaskState
from f8a_jobs.services.runs.model import Unit

Ended = tuple[str, Any, str | None]  # the task's state, result and error


class Parts:
    def __init__(self, run_id: str, max_parts: int) -> None:
        self.run_id = run_id
        self.max_parts = max_parts
        self.of: dict[str, list[Unit]] = {}
        self.open: dict[str, int] = {}  # parts of each task not final yet

    def __contains__(self, task: str) -> bool:
        return task in self.of

    def problem(self, items: Any) -> str | None:
        """Why ``items`` cannot be split into parts (None: they can)."""
        return split_problem(items, self.max_parts)

    def make(self, task: str, items: list[Any], now: datetime) -> list[Unit]:
        parts = [
            Unit(self.run_id, task, index, state=TaskState.READY, ready_at=now, item=item)
            for index, item in enumerate(items)
        ]
        self.of[task] = parts
        self.open[task] = len(parts)
        return parts

    def restore(self, units: Iterable[Unit]) -> None:
        """The parts among a resumed run's units."""
        for unit in units:
            self.of.setdefault(unit.task, []).append(unit)
        for task, parts in self.of.items():
            parts.sort(key=lambda unit: unit.part)
            self.open[task] = sum(part.state not in FINAL for part in parts)

    def count(self, task: str) -> int | None:
        parts = self.of.get(task)
        return len(parts) if parts is not None else None

    def settled(self, task: str) -> None:
        self.open[task] -= 1

    def results(self, task: str) -> list[Any]:
        return [part.result for part in self.of[task]]

    def executed(self, task: str) -> bool:
        return any(part.executed for part in self.of[task])

    def ended(self, task: str) -> Ended | None:
        """Once every part of ``task`` is final: how the task ended."""
        if self.open[task]:
            return None
        parts = self.of[task]
        bad = [part for part in parts if part.state not in DONE]
        if not bad:
            return TaskState.SUCCEEDED, self.results(task), None
        first = bad[0]
        error = f"{len(bad)} of {len(parts)} parts failed; part {first.part}: {first.error}"
        return TaskState.FAILED, None, error


def split_problem(items: Any, max_parts: int) -> str | None:
    """Why ``items`` cannot be split into at most ``max_parts`` parts (None: they can)."""
    if not isinstance(items, list):
        return f"for_each gave {type(items).__name__}, not a list"
    if len(items) > max_parts:
        return f"for_each gave more than {max_parts} items (F8A_JOBS_FOR_EACH_MAX_PARTS)"
    return None
