"""What a handler's run holds (``self.run``): its identity, and the flows it emits until the
run (or the task's try) is recorded. Both kinds implement ``handlers.base.Context``.

A plain run's flows are keyed by (run, argument index), so a run that is run again writes the
same keys and the outbox keeps one copy. They are written with the run's final state, in one
commit: a run that fails, or whose claim was lost, leaves no flows behind. Up to ``SPILL_AT``
flows wait in memory and go out in the writer's grouped commit; a run that emits more (a large
``$filter``) streams them into a transaction of its own, which then records the run itself.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.flow import Flow, check_storable
from f8a_jobs.core.schedules import rundate
from f8a_jobs.execution.recording import record_outcomes
from f8a_jobs.services.flows import outbox
from f8a_jobs.services.runs import ClaimedRun, Outcome
from f8a_jobs.services.runs.queries import schedule_of_run
from f8a_jobs.services.workflows.tries import Start
from f8a_jobs.storage import wakeups

SPILL_AT = 1000


class Context:
    """What any run of a handler may ask for (Datatailr's reserved arguments)."""

    task_name: str | None = None  # a plain run is no workflow task
    part_num: int | None = None
    num_parts: int | None = None

    def __init__(self, engine: Engine, job_id: str, run_id: str, scheduled_for: datetime) -> None:
        self.engine = engine
        self.job_id = job_id
        self.run_id = run_id
        self.scheduled_for = scheduled_for
        self.flows: list[dict[str, Any]] = []

    @functools.cached_property
    def rundate(self) -> str:
        """The slot's local date (its job's schedule), read only when asked for: a query."""
        return rundate(schedule_of_run(self.engine, self.run_id), self.scheduled_for)


class RunContext(Context):
    """A plain run's context."""

    def __init__(self, run: ClaimedRun, engine: Engine) -> None:
        super().__init__(engine, run.job_id, run.run_id, run.scheduled_for)
        self.emitted = 0
        self._connection: Connection | None = None

    @property
    def spilled(self) -> bool:
        return self._connection is not None

    def emit_flows(self, flows: Iterable[Flow]) -> int:
        """Keep ``flows`` for this run's commit; returns how many this call emitted."""
        before = self.emitted
        now = utcnow()  # one creation time per call: the rows commit together anyway
        for flow in flows:
            self.flows.append(outbox.flow_row(self.job_id, self.run_id, self.emitted, flow, now))
            self.emitted += 1
            if len(self.flows) >= SPILL_AT:
                self._spill()
        return self.emitted - before

    def _spill(self) -> None:
        if self._connection is None:
            self._connection = self.engine.connect()
            self._connection.begin()
        outbox.insert(self._connection, self.flows)
        self.flows = []

    def finish_alone(self, outcome: Outcome) -> bool:
        """Record a spilled run in its own transaction, with the rest of its flows."""
        if self._connection is None:
            raise RuntimeError("finish_alone is for runs whose flows were spilled")
        connection, self._connection = self._connection, None
        try:
            outcome.flows = self.flows
            recorded = bool(record_outcomes(connection, [outcome]))
            if recorded:
                connection.commit()
                wakeups.publish_requested(connection)
            else:
                connection.rollback()
            return recorded
        finally:
            connection.close()

    def discard(self) -> None:
        """Drop what the run emitted (it failed): nothing of it reaches the outbox."""
        self.flows = []
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.rollback()
            connection.close()


class TaskContext(Context):
    """A workflow task's try's context."""

    def __init__(self, start: Start, engine: Engine) -> None:
        super().__init__(engine, start.job_id, start.run_id, start.scheduled_for)
        self.start = start
        self.task_name = start.task
        self.num_parts = start.num_parts
        self.part_num = start.part if start.num_parts is not None else None

    def emit_flows(self, flows: Iterable[Flow]) -> int:
        """Flows of a task reach the outbox with the task's success; their key is the task's,
        so a task tried again writes the same keys. A flow the database would refuse fails
        the try here: the runner writes many runs' flows in one commit, which it must not
        lose."""
        key = flow_key(self.start)
        before = len(self.flows)
        now = utcnow()
        for flow in flows:
            check_storable(flow)
            self.flows.append(outbox.flow_row(self.job_id, key, len(self.flows), flow, now))
        return len(self.flows) - before


def flow_key(start: Start) -> str:
    """32 hex digits standing for the task's part in the outbox's ``run_id`` column."""
    digest = hashlib.blake2b(f"{start.run_id}/{start.task}/{start.part}".encode(), digest_size=16)
    return digest.hexdigest()
