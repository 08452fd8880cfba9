"""What a handler's run holds: its identity, and the flows it emits until the run is recorded.

Flows are keyed by (run, argument index), so a run that is run again writes the same keys and
the outbox keeps one copy. They are written with the run's final state, in one commit: a run
that fails, or whose claim was lost, leaves no flows behind. Up to ``SPILL_AT`` flows wait in
memory and go out in the writer's grouped commit; a run that emits more (a large ``$filter``)
streams them into a transaction of its own, which then records the run itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from f8a_jobs import wakeups
from f8a_jobs.flows.outbox import Flow, flow_row
from f8a_jobs.jobs import schedule_of_run
from f8a_jobs.runs import lifecycle
from f8a_jobs.runs.lifecycle import ClaimedRun, Outcome
from f8a_jobs.schedules import rundate, utcnow
from f8a_jobs.storage.bulk import insert_rows
from f8a_jobs.storage.tables import flow_outbox

SPILL_AT = 1000


class RunContext:
    task_name = part_num = num_parts = None  # a plain run is no workflow task

    def __init__(self, run: ClaimedRun, engine: Engine) -> None:
        self.run = run
        self.engine = engine
        self.flows: list[dict[str, Any]] = []
        self.emitted = 0
        self._connection: Connection | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def scheduled_for(self) -> datetime:
        return self.run.scheduled_for

    @property
    def rundate(self) -> str:
        """Read only when a handler asks for it: it costs a query."""
        return rundate(schedule_of_run(self.engine, self.run.run_id), self.run.scheduled_for)

    @property
    def spilled(self) -> bool:
        return self._connection is not None

    def emit_flows(self, flows: Iterable[Flow]) -> int:
        """Keep ``flows`` for this run's commit; returns how many this call emitted."""
        before = self.emitted
        now = utcnow()  # one creation time per call: the rows commit together anyway
        for flow in flows:
            self.flows.append(flow_row(self.run.job_id, self.run.run_id, self.emitted, flow, now))
            self.emitted += 1
            if len(self.flows) >= SPILL_AT:
                self._spill()
        return self.emitted - before

    def _spill(self) -> None:
        if self._connection is None:
            self._connection = self.engine.connect()
            self._connection.begin()
        insert_rows(self._connection, flow_outbox, self.flows)
        self.flows = []

    def finish_alone(self, outcome: Outcome) -> bool:
        """Record a spilled run in its own transaction, with the rest of its flows."""
        if self._connection is None:
            raise RuntimeError("finish_alone is for runs whose flows were spilled")
        connection, self._connection = self._connection, None
        try:
            outcome.flows = self.flows
            recorded = bool(lifecycle.finish(connection, [outcome]))
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
